"""Assertions for gRPC workers and streams (the seed's Snakepit test extensions)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence

__all__ = ["assert_grpc_server_ready", "assert_streaming_response"]


async def assert_grpc_server_ready(
    address: str, *, timeout: float = 5.0, service: str = "", token: str | None = None
) -> None:
    """Assert that a gRPC server at ``address`` answers the standard health check with SERVING.

    Waits for the channel to connect (event-driven, bounded by ``timeout``), then checks.

    Raises:
        AssertionError: not reachable or not SERVING within ``timeout``, naming the address.
    """
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    metadata = (("snakepit-token", token),) if token else None
    async with grpc.aio.insecure_channel(address) as channel:
        try:
            async with asyncio.timeout(timeout):
                await channel.channel_ready()
                reply = await health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(service=service), metadata=metadata
                )
        except (TimeoutError, grpc.aio.AioRpcError) as exc:
            raise AssertionError(
                f"gRPC server at {address} is not ready within {timeout}s: {exc!r}"
            ) from None
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    assert status == "SERVING", f"gRPC server at {address} reports {status} for {service!r}"


async def assert_streaming_response(
    stream: AsyncIterator[Any], expected_chunks: Sequence[Any], *, timeout: float = 5.0
) -> None:
    """Assert that ``stream`` yields exactly ``expected_chunks``, in order, then ends.

    Each chunk (and the end) must arrive within ``timeout`` seconds of the previous one.

    Raises:
        AssertionError: a chunk differs, is missing, is extra, or is late; the message says which.
    """
    iterator = stream.__aiter__()
    try:
        for index, expected in enumerate(expected_chunks):
            try:
                chunk = await asyncio.wait_for(iterator.__anext__(), timeout)
            except StopAsyncIteration:
                raise AssertionError(
                    f"stream ended after {index} chunks; expected {len(expected_chunks)} "
                    f"(next expected: {expected!r})"
                ) from None
            except TimeoutError:
                raise AssertionError(
                    f"chunk {index} did not arrive within {timeout}s (expected {expected!r})"
                ) from None
            assert chunk == expected, f"chunk {index}: expected {expected!r}, got {chunk!r}"
        try:
            extra = await asyncio.wait_for(iterator.__anext__(), timeout)
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise AssertionError(
                f"stream did not end within {timeout}s after {len(expected_chunks)} chunks"
            ) from None
        raise AssertionError(f"stream yielded more than {len(expected_chunks)} chunks: {extra!r}")
    finally:
        aclose = getattr(iterator, "aclose", None)
        if aclose is not None:
            await aclose()
