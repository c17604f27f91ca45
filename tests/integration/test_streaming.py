"""Streaming end to end: order, size, async generators, failures and cancellation mid-stream."""

from __future__ import annotations

import asyncio

import pytest

import snakepit
from snakepit.testing import assert_streaming_response, isolated_pool

STREAMS = "snakepit.testing.adapters:Streams"


@pytest.mark.usefixtures("both_transports")
class TestStreaming:
    async def test_chunks_arrive_in_order_and_the_stream_ends(self) -> None:
        """A generator's chunks arrive exactly and in order, then the stream ends."""
        async with isolated_pool() as pool:
            await assert_streaming_response(
                pool.stream("count", {"n": 500}), [{"i": i} for i in range(500)]
            )

    async def test_large_binary_chunks(self) -> None:
        """Megabyte-sized bytes chunks stream intact."""
        async with isolated_pool(STREAMS) as pool:
            size = 1 << 20
            await assert_streaming_response(
                pool.stream("blobs", {"n": 4, "size": size}),
                [bytes([i]) * size for i in range(4)],
            )

    async def test_async_generator_tool(self) -> None:
        """An async generator tool streams like a sync one."""
        async with isolated_pool(STREAMS) as pool:
            await assert_streaming_response(pool.stream("ticks", {"n": 5}), list(range(5)))

    async def test_error_mid_stream_comes_after_the_chunks_sent(self) -> None:
        """A tool that raises mid-stream delivers its chunks, then a ToolError with the traceback."""
        async with isolated_pool(STREAMS) as pool:
            got: list[object] = []

            async def consume() -> None:
                async for chunk in pool.stream("fail_after", {"n": 3}):
                    got.append(chunk)

            with pytest.raises(snakepit.ToolError, match="stream broke after 3") as info:
                await consume()
            assert got == [0, 1, 2]
            assert info.value.remote_type == "RuntimeError"
            assert [c async for c in pool.stream("ticks", {"n": 2})] == [0, 1]

    async def test_concurrent_streams_do_not_mix(self) -> None:
        """Several streams at once on a pool of 2 each get their own chunks in order."""
        async with isolated_pool(size=2) as pool:

            async def collect(n: int) -> list[object]:
                return [c async for c in pool.stream("count", {"n": n})]

            results = await asyncio.gather(*(collect(n) for n in (50, 100, 150, 200)))
            for n, chunks in zip((50, 100, 150, 200), results, strict=True):
                assert chunks == [{"i": i} for i in range(n)]

    async def test_cancelled_consumer_releases_the_worker(self) -> None:
        """Cancelling the task that reads a long stream frees the worker for other calls."""
        async with isolated_pool() as pool:
            first = asyncio.Event()

            async def consume() -> None:
                async for _ in pool.stream("count", {"n": 10_000_000}, timeout=None):
                    first.set()

            task = asyncio.ensure_future(consume())
            await asyncio.wait_for(first.wait(), 10)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert await pool.execute("ping", timeout=10) == {"status": "pong"}
            assert pool.stats().busy == 0
