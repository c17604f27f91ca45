"""One owner for background tasks, and the deadline timer, on a fake clock (no processes)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from snakepit._tasks import DeadlineTimer, TaskOwner
from supertester import FakeClock

BOUND = 5.0


class TestTaskOwner:
    async def test_a_failed_task_is_logged_and_its_siblings_run_on(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        owner = TaskOwner("pool", "p1", logging.getLogger("test.tasks"))
        release: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        async def fail() -> None:
            raise RuntimeError("boom")

        sibling = owner.spawn(_wait(release), "sibling")
        failing = owner.spawn(fail(), "failing")
        with caplog.at_level(logging.ERROR, logger="test.tasks"):
            await asyncio.wait({failing}, timeout=BOUND)  # the owner's callback ran first
        assert "pool p1: background task p1:failing failed" in caplog.text
        assert not sibling.done()
        assert len(owner) == 1
        release.set_result(None)
        await owner.join(timeout=BOUND)
        assert len(owner) == 0

    async def test_cancel_spares_the_caller_and_join_waits_for_the_rest(self) -> None:
        owner = TaskOwner("worker", "w1", logging.getLogger("test.tasks"))
        forever: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        other = owner.spawn(_wait(forever), "other")

        async def closer() -> bool:
            owner.cancel()
            await owner.join(timeout=BOUND)
            current = asyncio.current_task()
            return current is not None and not current.cancelling()

        assert await owner.spawn(closer(), "closer")
        assert other.cancelled()

    async def test_aclose_cancels_and_waits_and_an_owner_needs_no_logger(self) -> None:
        owner = TaskOwner("store", "s1")
        forever: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        tasks = [owner.spawn(_wait(forever), f"t{i}") for i in range(2)]
        await owner.aclose()
        assert all(t.cancelled() for t in tasks)
        assert len(owner) == 0

    async def test_aclose_gives_up_on_a_task_that_outlives_its_cancellation(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A task that ignores its cancellation bounds aclose's wait, and is named in a log."""
        owner = TaskOwner("pool", "p1")
        started, release = asyncio.Event(), asyncio.Event()

        async def stubborn() -> None:
            started.set()
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                await release.wait()  # its cleanup outlasts the cancellation

        task = owner.spawn(stubborn(), "stubborn")
        await started.wait()
        await owner.aclose(timeout=0)
        assert not task.done()
        assert "p1:stubborn still runs" in caplog.text
        release.set()
        await asyncio.wait_for(task, 5.0)


async def _wait(fut: asyncio.Future[None]) -> None:
    await fut


class TestDeadlineTimer:
    async def test_fires_at_each_deadline_and_wakes_for_an_earlier_one(self) -> None:
        clock = FakeClock()
        deadlines = [10.0]
        fired: asyncio.Queue[float] = asyncio.Queue()

        def fire() -> None:
            now = clock.monotonic()
            while deadlines and deadlines[0] <= now:
                fired.put_nowait(deadlines.pop(0))

        timer = DeadlineTimer(clock, lambda: deadlines[0] if deadlines else None, fire)
        task = asyncio.ensure_future(timer.run())
        await clock.wait_for_sleepers(1, timeout=BOUND)
        assert timer.planned == 10.0
        deadlines.insert(0, 4.0)
        timer.wake_for(4.0)  # else nothing would come due at 4
        await clock.advance(4.0)
        assert await asyncio.wait_for(fired.get(), BOUND) == 4.0
        await clock.advance(6.0)
        assert await asyncio.wait_for(fired.get(), BOUND) == 10.0
        timer.stop()
        await asyncio.wait_for(task, BOUND)
        assert timer.planned is None

    async def test_cancelled_it_leaves_no_sleeper_behind(self) -> None:
        clock = FakeClock()
        timer = DeadlineTimer(clock, lambda: 5.0, lambda: None)
        task = asyncio.ensure_future(timer.run())
        await clock.wait_for_sleepers(1, timeout=BOUND)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert clock.sleepers == 0
        assert timer.planned is None

    async def test_an_awaited_fire_on_wall_clock_deadlines_and_a_stop_while_it_runs(
        self,
    ) -> None:
        """The Redis store's loop: a coroutine fires, deadlines are wall-clock seconds, and a
        stop that comes while a pass awaits ends the loop once the pass is over."""
        clock = FakeClock()
        wall = clock.time()
        passes: list[float] = []
        entered = asyncio.Event()
        held: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        async def fire() -> None:
            passes.append(clock.time())
            if len(passes) == 2:
                entered.set()
                await held

        timer = DeadlineTimer(clock, lambda: wall + 7.0, fire, now=clock.time)
        task = asyncio.ensure_future(timer.run())
        await clock.wait_for_sleepers(1, timeout=BOUND)
        assert passes == [wall] and timer.planned == wall + 7.0
        await clock.advance(7.0)
        await asyncio.wait_for(entered.wait(), BOUND)
        timer.stop()
        held.set_result(None)
        await asyncio.wait_for(task, BOUND)
        assert passes == [wall, wall + 7.0]
        assert clock.sleepers == 0
