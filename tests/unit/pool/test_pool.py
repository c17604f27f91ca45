"""The pool's logic with in-process workers: no processes, no sockets, driven by a fake clock."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import pytest

import snakepit
from snakepit.events import (
    PoolDegraded,
    RequestDispatched,
    RequestQueued,
    WorkerReady,
    WorkerRestarting,
)
from snakepit.testing.mock import MockWorker, in_process_workers
from snakepit.testing.pools import pool_mailbox
from supertester import FakeClock, Mailbox

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

MOCK = "snakepit.testing.adapters:MockAdapter"
BOUND = 5.0


class Harness:
    def __init__(self, pool: snakepit.Pool, workers: list[MockWorker], clock: FakeClock) -> None:
        self.pool = pool
        self.workers = workers
        self.clock = clock
        self.box: Mailbox[object] = pool_mailbox(pool)

    def live(self) -> list[MockWorker]:
        return [w for w in self.workers if w.state.value == "ready"]


@pytest.fixture
async def harness(request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    options = getattr(request, "param", {})
    workers: list[MockWorker] = []
    clock = FakeClock()
    pool = snakepit.Pool(
        adapter=MOCK,
        worker_factory=in_process_workers(workers),
        clock=clock,
        heartbeat_interval=None,
        **{"size": 2, **options},
    )
    async with pool:
        yield Harness(pool, workers, clock)


class TestDispatch:
    async def test_calls_spread_over_all_workers(self, harness: Harness) -> None:
        """Concurrent calls are spread across every worker of the pool."""
        results = await asyncio.gather(
            *(harness.pool.execute("add", {"a": i, "b": 0}) for i in range(20))
        )
        assert results == list(range(20))
        assert all(w.requests > 0 for w in harness.workers)

    async def test_stream_and_errors_pass_through(self, harness: Harness) -> None:
        """Streams yield in order; tool errors are ToolError with the remote type."""
        assert [c async for c in harness.pool.stream("count", {"n": 3})] == [
            {"i": 0},
            {"i": 1},
            {"i": 2},
        ]
        with pytest.raises(snakepit.ToolError) as info:
            await harness.pool.execute("fail", {"message": "x"})
        assert info.value.remote_type == "ValueError"


class TestBackpressure:
    @pytest.mark.parametrize("harness", [{"size": 1, "max_queue": 2}], indirect=True)
    async def test_queue_fills_then_saturates(self, harness: Harness) -> None:
        """With one busy worker, max_queue calls wait and the next is rejected at once."""
        harness.workers[0].hang_next()
        busy = asyncio.ensure_future(harness.pool.execute("ping", timeout=None))
        await harness.box.assert_receive(RequestDispatched, BOUND)
        waiting = [asyncio.ensure_future(harness.pool.execute("ping")) for _ in range(2)]
        for _ in waiting:
            await harness.box.assert_receive(RequestQueued, BOUND)
        with pytest.raises(snakepit.PoolSaturatedError):
            await harness.pool.execute("ping")
        harness.workers[0].crash()
        with pytest.raises(snakepit.WorkerCrashedError):
            await busy
        restarting = await harness.box.assert_receive(WorkerRestarting, BOUND)
        await harness.clock.advance(restarting.delay)
        assert await asyncio.gather(*waiting) == [{"status": "pong"}] * 2

    @pytest.mark.parametrize("harness", [{"size": 1, "queue_timeout": 10.0}], indirect=True)
    async def test_queue_timeout_is_measured_on_the_clock(self, harness: Harness) -> None:
        """A queued call fails with QueueTimeoutError exactly when the clock passes its deadline."""
        harness.workers[0].hang_next()
        busy = asyncio.ensure_future(harness.pool.execute("ping", timeout=None))
        await harness.box.assert_receive(RequestDispatched, BOUND)
        queued = asyncio.ensure_future(harness.pool.execute("ping"))
        await harness.box.assert_receive(RequestQueued, BOUND)
        await harness.clock.wait_for_sleepers(1)
        await harness.clock.advance(9.9)
        assert not queued.done()
        await harness.clock.advance(0.2)
        with pytest.raises(snakepit.QueueTimeoutError):
            await queued
        busy.cancel()
        await asyncio.gather(busy, return_exceptions=True)


class TestSupervision:
    async def test_crashed_worker_is_replaced_after_backoff(self, harness: Harness) -> None:
        """A crash is replaced once the backoff delay has passed on the clock, not before."""
        harness.workers[0].crash(exit_code=3)
        restarting = await harness.box.assert_receive(WorkerRestarting, BOUND)
        assert restarting.delay > 0
        await harness.box.refute_receive(WorkerReady, within=0.01)
        await harness.clock.advance(restarting.delay)
        ready = await harness.box.assert_receive(WorkerReady, BOUND)
        assert ready.worker_id == "w1-2"
        assert harness.pool.stats().crashes == 1
        assert harness.pool.stats().live_workers == 2

    @pytest.mark.parametrize("harness", [{"max_restarts": 2}], indirect=True)
    async def test_restart_intensity_degrades_instead_of_spinning(self, harness: Harness) -> None:
        """Beyond max_restarts crashes in the window the pool stops restarting and says so."""
        for _ in range(2):
            harness.live()[0].crash()
            restarting = await harness.box.assert_receive(WorkerRestarting, BOUND)
            await harness.clock.advance(restarting.delay)
            await harness.box.assert_receive(WorkerReady, BOUND)
        harness.live()[0].crash()
        degraded = await harness.box.assert_receive(PoolDegraded, BOUND)
        assert degraded.live_workers == 1
        assert harness.pool.stats().degraded
        await harness.box.refute_receive(WorkerRestarting, within=0.01)

    @pytest.mark.parametrize("harness", [{"size": 1, "max_requests": 2}], indirect=True)
    async def test_recycled_worker_is_replaced_without_failing_calls(
        self, harness: Harness
    ) -> None:
        """After max_requests the worker is swapped for a fresh one and no call fails."""
        for _ in range(6):
            assert await harness.pool.execute("ping") == {"status": "pong"}
        assert harness.pool.stats().errors == 0
        assert harness.pool.stats().recycled >= 2
        assert len(harness.workers) >= 3

    async def test_close_fails_queued_calls_and_stops_workers(self, harness: Harness) -> None:
        """close() rejects queued calls with PoolClosedError and stops every worker."""
        await harness.pool.close()
        assert all(w.state.value == "exited" for w in harness.workers)
        with pytest.raises(snakepit.PoolClosedError):
            await harness.pool.execute("ping")

    async def test_startup_failure_stops_the_started_workers(self) -> None:
        """If one worker fails to start, the others are stopped and the error is raised."""
        workers: list[MockWorker] = []
        pool = snakepit.Pool(
            adapter=MOCK,
            size=3,
            heartbeat_interval=None,
            worker_factory=in_process_workers(workers, fail_start=lambda wid: wid == "w2"),
        )
        with pytest.raises(snakepit.WorkerStartupError, match="w2"):
            await pool.start()
        assert all(w.state.value == "exited" for w in workers)
        assert pool.state == "closed"
