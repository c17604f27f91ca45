"""The worker supervisor with in-process workers: replacement, backoff, intensity, recycling."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import pytest

import snakepit
from snakepit.events import (
    PoolDegraded,
    RequestDispatched,
    WorkerReady,
    WorkerRecycled,
    WorkerRestarting,
)
from snakepit.testing import MockWorker, in_process_workers, pool_mailbox
from supertester import FakeClock

if TYPE_CHECKING:
    from conftest import Harness

    from snakepit.clock import Clock
    from snakepit.events import EventBus
    from snakepit.worker import WorkerOptions

MOCK = "snakepit.testing.adapters:MockAdapter"
BOUND = 5.0


class StopsSlowly(MockWorker):
    """A worker whose ``stop()`` returns only once ``released`` is set, after its exit: a
    real handle still closes its channel then, so the pool sees the exit before the stop
    returns."""

    released: asyncio.Event

    async def stop(self, grace: float | None = None) -> int | None:
        code = await super().stop(grace)
        await self.released.wait()
        return code


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

    async def test_close_waits_for_running_calls_to_finish(self, harness: Harness) -> None:
        """close() lets a running call finish (within drain_timeout) before stopping workers."""
        gate = harness.workers[0].hold_next()
        running = asyncio.ensure_future(harness.pool.execute("ping", timeout=None))
        await harness.box.assert_receive(RequestDispatched, BOUND)
        closing = asyncio.ensure_future(harness.pool.close())
        await harness.box.assert_receive(snakepit.events.PoolClosing, BOUND)
        assert not closing.done()
        gate.set()
        assert await running == {"status": "pong"}
        await asyncio.wait_for(closing, BOUND)
        assert all(w.state.value == "exited" for w in harness.workers)

    async def test_a_recycled_worker_whose_successor_cannot_start_is_replaced(self) -> None:
        """A recycled worker whose successor fails to start retires, and its exit refills
        the slot at once, even while its stop() is still under way."""
        released = asyncio.Event()

        def factory(
            worker_id: str, options: WorkerOptions, *, events: EventBus, clock: Clock, source: str
        ) -> MockWorker:
            worker = StopsSlowly(
                worker_id,
                options,
                events=events,
                clock=clock,
                source=source,
                fail_start=worker_id == "w1-2",
            )
            worker.released = released
            return worker

        pool = snakepit.Pool(
            adapter=MOCK,
            size=1,
            max_requests=1,
            heartbeat_interval=None,
            worker_factory=factory,
            clock=FakeClock(),
        )
        async with pool:
            box = pool_mailbox(pool)
            try:
                assert await pool.execute("ping") == {"status": "pong"}
                recycled = await box.assert_receive(WorkerRecycled, BOUND)
                assert recycled.worker_id == "w1"
                restarting = await box.assert_receive(WorkerRestarting, BOUND)
                assert (restarting.worker_id, restarting.delay) == ("w1", 0.0)
                ready = await box.assert_receive(WorkerReady, BOUND)
                assert ready.worker_id == "w1-3"
            finally:
                released.set()
            assert pool.stats().live_workers == 1
            assert pool.stats().crashes == 0
