"""What only the local transport does: no gRPC in the worker, the channel on stdin, flow control."""

from __future__ import annotations

import asyncio
import contextlib

from snakepit._wire import STREAM_CREDITS
from snakepit.events import EventBus, WorkerReady
from snakepit.testing import isolated_pool, with_python_server

PROBE = "snakepit.testing.adapters:Probe"
BOUND = 10.0


class TestLocalWorker:
    async def test_a_local_worker_imports_no_grpc_and_hides_its_channel(self) -> None:
        """A local worker never imports gRPC, and its fd 0 is /dev/null (a tool's subprocess
        cannot inherit the channel), while a gRPC worker does import it."""
        async with isolated_pool(PROBE, transport="local") as pool:
            assert await pool.execute("modules", {"prefix": "grpc"}) == []
            assert await pool.execute("stdin_kind") == "chr"
        async with isolated_pool(PROBE, transport="grpc") as pool:
            assert "grpc" in await pool.execute("modules", {"prefix": "grpc"})

    async def test_ready_names_a_local_address_and_closing_the_channel_ends_the_worker(
        self,
    ) -> None:
        """WorkerReady names the local channel; when the host's end closes (the host died),
        the worker exits by itself with code 0."""
        bus = EventBus("t")
        with bus.subscribe(WorkerReady) as ready:
            async with with_python_server(events=bus, transport="local") as w:
                event = ready.get_nowait()
                assert isinstance(event, WorkerReady)
                assert event.address == f"local:{w.pid}" == w.address
                await w.transport.close()
                assert await asyncio.wait_for(w.wait_exited(), BOUND) == 0

    async def test_a_slow_consumer_bounds_what_the_worker_produces(self) -> None:
        """An endless stream read one chunk at a time: the worker's producer stays within the
        credit window (a few batches), it does not run ahead without limit."""
        size = 256 * 1024  # four chunks fill a batch's megabyte
        bound = (STREAM_CREDITS + 2) * 4 + 2
        async with isolated_pool(PROBE, max_concurrency=2, threads=2) as pool:
            stream = pool.stream("endless", {"size": size})
            try:
                for _ in range(3):
                    assert len(await anext(stream)) == size
                    counts = [await pool.execute("produced_count") for _ in range(20)]
                    assert max(counts) <= bound, counts
            finally:
                await stream.aclose()  # type: ignore[attr-defined]
            assert await pool.execute("produced_count") <= bound + 3

    async def test_a_call_cancelled_while_queued_in_the_worker_is_over_at_once(self) -> None:
        """With the only tool thread held, a second stream waits in the worker's queue; once
        abandoned it never runs, so Settle does not name it (no needless recycle) and Ping
        no longer counts it, as over gRPC."""
        streams = "snakepit.testing.adapters:Streams"
        async with with_python_server(
            streams, threads=1, shutdown_grace=0.2, transport="local"
        ) as w:
            held = w.stream("stall_after", {"n": 1}, request_id=1)
            assert await anext(held) == 0
            queued = w.stream("blobs", {"n": 3, "size": 1}, request_id=2)
            waiting = asyncio.ensure_future(anext(queued))
            await w.ping()  # lets the task send its frame; the next ping is read after it
            assert (await w.ping()).requests == 2
            waiting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await waiting
            await queued.aclose()  # type: ignore[attr-defined]
            assert await w.settle([2], wait=BOUND, timeout=2 * BOUND) == []
            assert (await w.ping()).active == 1
            await held.aclose()  # type: ignore[attr-defined]
