"""Settle, over real gRPC: which abandoned requests still hold a tool thread in the worker."""

from __future__ import annotations

from snakepit.testing import with_python_server

STREAMS = "snakepit.testing.adapters:Streams"
BOUND = 10.0  # seconds: an upper bound on waits, never a delay


class TestSettle:
    async def test_settle_names_only_the_requests_whose_thread_still_runs(self) -> None:
        """Two streams closed early: the generator that stops at its next chunk frees its
        thread (Settle returns as soon as it has, however long it may wait); the one blocked
        between chunks does not, and only its request is named."""
        async with with_python_server(STREAMS, threads=2, shutdown_grace=0.2) as w:
            cooperative = w.stream("blobs", {"n": 10**6, "size": 1}, request_id=8)
            assert await anext(cooperative) == b"\x00"
            await cooperative.aclose()
            assert await w.settle([8], wait=BOUND, timeout=2 * BOUND) == []

            stalled = w.stream("stall_after", {"n": 1}, request_id=7)
            assert await anext(stalled) == 0
            await stalled.aclose()
            assert await w.settle([7, 8, 9], wait=0.1, timeout=BOUND) == [7]
            # The other thread still serves; the stuck one stays on record.
            assert [c async for c in w.stream("blobs", {"n": 1, "size": 1}, request_id=10)] == [
                b"\x00"
            ]
            assert await w.settle([7], wait=0.0, timeout=BOUND) == [7]
