"""The host-worker bridge end to end: payload sizes, message limits, the wire contract."""

from __future__ import annotations

import pytest

import snakepit
from snakepit.testing import assert_grpc_server_ready, isolated_pool


@pytest.mark.usefixtures("both_transports")
class TestPayloads:
    @pytest.mark.parametrize("size", [0, 1024, 1 << 20, 16 << 20])
    async def test_bytes_round_trip_at_every_size(self, size: int) -> None:
        """Bytes of 0 B, 1 KiB, 1 MiB and 16 MiB come back identical."""
        async with isolated_pool() as pool:
            payload = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
            assert await pool.execute("echo", {"value": payload}) == payload

    async def test_over_the_message_limit_is_a_clear_error(self) -> None:
        """Arguments larger than max_message_mb are refused before sending, naming the option."""
        async with isolated_pool(max_message_mb=1) as pool:
            with pytest.raises(snakepit.RequestError, match="max_message_mb=1"):
                await pool.execute("echo", {"value": b"x" * (2 << 20)})
            assert await pool.execute("ping") == {"status": "pong"}

    async def test_result_over_the_limit_is_a_clear_error(self) -> None:
        """A result larger than the limit fails as a RequestError naming max_message_mb."""
        async with isolated_pool("snakepit.testing.adapters:Streams", max_message_mb=1) as pool:
            stream = pool.stream("blobs", {"n": 1, "size": 3 << 20})
            with pytest.raises(snakepit.RequestError, match="max_message_mb"):
                await anext(stream)


class TestContract:
    async def test_every_worker_serves_the_health_service(self) -> None:
        """Each gRPC worker of a pool answers the standard gRPC health check with SERVING."""
        async with isolated_pool(size=2, transport="grpc") as pool:
            for worker in pool.workers():
                assert worker.address is not None
                await assert_grpc_server_ready(worker.address)
                await assert_grpc_server_ready(worker.address, service="snakepit.v1.WorkerService")

    async def test_tools_are_described_to_the_host(self) -> None:
        """The pool knows each tool's parameters and streaming flag from Describe."""
        async with isolated_pool() as pool:
            tools = pool.tools
            assert tools["count"].streaming
            assert [p.name for p in tools["add"].params] == ["a", "b"]
            assert tools["echo"].description.startswith("Return ``value`` unchanged")
