"""The engine applies decisions to workers: in-process fake workers on a fake clock, no process."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

import pytest

from snakepit._tasks import TaskOwner
from snakepit.config import PoolConfig
from snakepit.errors import PoolDegradedError, QueueTimeoutError, WorkerStartupError
from snakepit.events import (
    EventBus,
    PoolDegraded,
    WorkerExited,
    WorkerReady,
    WorkerRecycled,
    WorkerRestarting,
    WorkerUnhealthy,
)
from snakepit.pool._engine import Engine
from snakepit.pool._scheduler import Ticket
from snakepit.pool._wiring import COUNTERS
from snakepit.worker import WorkerState
from supertester import FakeClock, Mailbox

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

BOUND = 5.0


class FakeWorker:
    """Just enough of a worker for the engine: it starts, serves nothing, and exits when told."""

    def __init__(self, worker_id: str, *, events: EventBus, clock: FakeClock, fail: bool) -> None:
        self.id = worker_id
        self.pid: int | None = None
        self.address: str | None = None
        self.state = WorkerState.STARTING
        self.requests = 0
        self.tools: dict[str, Any] = {}
        self.ready_at: float | None = None
        self.exit_code: int | None = None
        self._events = events
        self._clock = clock
        self._fail = fail
        self._exited: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()

    async def start(self) -> None:
        if self._fail:
            self.exit(1)
            raise WorkerStartupError(f"worker {self.id!r} failed to start (FakeWorker)")
        self.state = WorkerState.READY
        self.ready_at = self._clock.monotonic()
        self._events.publish(WorkerReady(worker_id=self.id, pid=0, address="", startup_seconds=0.0))

    def exit(self, code: int | None) -> None:
        if self._exited.done():
            return
        self.state = WorkerState.EXITED
        self.exit_code = code
        self._exited.set_result(code)
        self._events.publish(WorkerExited(worker_id=self.id, pid=0, exit_code=code, expected=False))

    async def stop(self, grace: float | None = None) -> int | None:
        self.exit(0)
        return self.exit_code

    def kill(self) -> None:
        self.exit(-9)

    async def wait_exited(self) -> int | None:
        return await asyncio.shield(self._exited)


class Rig:
    def __init__(self, engine: Engine, clock: FakeClock, box: Mailbox[object]) -> None:
        self.engine = engine
        self.clock = clock
        self.box = box
        self.workers: dict[str, FakeWorker] = {}
        self.doomed: set[str] = set()  # worker ids whose start fails

    def ticket(self, n: int, queue_deadline: float | None = None) -> Ticket:
        return Ticket(id=n, tool="ping", queue_deadline=queue_deadline)


@pytest.fixture
async def rig(request: pytest.FixtureRequest) -> AsyncIterator[Rig]:
    """A started engine (size 1 unless parametrized) over FakeWorkers, on a FakeClock."""
    options: dict[str, Any] = {
        "size": 1,
        "heartbeat_interval": None,
        **getattr(request, "param", {}),
    }
    config = PoolConfig(adapter="pkg.mod:Adapter", **options)
    clock = FakeClock()
    events = EventBus("p")
    box: Mailbox[object] = Mailbox(name="engine events")
    tasks = TaskOwner("pool", "p", logging.getLogger("snakepit.pool"))
    rig: Rig

    def factory(worker_id: str, options: Any, **_: Any) -> FakeWorker:
        worker = FakeWorker(worker_id, events=events, clock=clock, fail=worker_id in rig.doomed)
        rig.workers[worker_id] = worker
        return worker

    engine = Engine(
        name="p",
        config=config,
        clock=clock,
        events=events,
        factory=factory,  # type: ignore[arg-type]
        options=lambda slot: None,  # type: ignore[arg-type,return-value]
        tasks=tasks,
        counters=dict.fromkeys(COUNTERS, 0),
    )
    rig = Rig(engine, clock, box)
    await engine.start_all(None)  # type: ignore[arg-type]
    engine.start_timers()
    events.add_listener(box.put)  # what happens from here on
    try:
        yield rig
    finally:
        tasks.cancel()
        await engine.stop_all(0.0)
        await tasks.join()


class TestRestart:
    async def test_a_restart_marks_the_slot_replacing_until_its_worker_serves(
        self, rig: Rig
    ) -> None:
        slot = rig.engine.supervision.slots[0]
        rig.workers["w1"].exit(3)
        restarting = await rig.box.assert_receive(WorkerRestarting, BOUND)
        assert (restarting.worker_id, restarting.attempt) == ("w1", 1)
        assert slot.replacing
        assert rig.engine.counters["crashes"] == 1
        await rig.clock.advance(restarting.delay)
        ready = await rig.box.assert_receive(WorkerReady, BOUND)
        assert ready.worker_id == "w1-2"
        assert not slot.replacing
        assert slot.worker_id == "w1-2"
        assert rig.engine.counters["restarts"] == 1

    async def test_a_retried_start_is_announced_once_with_its_attempt(self, rig: Rig) -> None:
        rig.doomed.add("w1-2")
        rig.workers["w1"].exit(1)
        restarting = await rig.box.assert_receive(WorkerRestarting, BOUND)
        await rig.clock.advance(restarting.delay)
        await rig.box.assert_receive(
            lambda e: isinstance(e, WorkerExited) and e.worker_id == "w1-2", BOUND
        )
        await rig.clock.wait_for_sleepers(1)  # the retry waits out its backoff
        assert rig.engine.supervision.slots[0].replacing
        await rig.clock.advance(rig.clock.next_deadline() or 0.0)
        ready = await rig.box.assert_receive(WorkerReady, BOUND)
        assert ready.worker_id == "w1-3"
        assert rig.engine.counters["restarts"] == 1
        await rig.box.refute_receive(WorkerRestarting, within=0.01)


class TestRecycle:
    async def test_a_recycle_stops_new_work_counts_and_replaces_then_retires(
        self, rig: Rig
    ) -> None:
        engine = rig.engine
        engine.apply(engine.supervision.recycle("w1", "ttl (1s)"))
        recycled = await rig.box.assert_receive(WorkerRecycled, BOUND)
        assert (recycled.worker_id, recycled.reason) == ("w1", "ttl (1s)")
        assert engine.counters["recycled"] == 1
        ready = await rig.box.assert_receive(WorkerReady, BOUND)
        assert ready.worker_id == "w1-2"
        exited = await rig.box.assert_receive(WorkerExited, BOUND)
        assert exited.worker_id == "w1"  # retired once its successor served
        assert list(engine.scheduler.worker_ids) == ["w1-2"]
        assert engine.counters["restarts"] == 0
        await rig.box.refute_receive(WorkerRestarting, within=0.01)


class TestKill:
    async def test_a_kill_says_why_takes_the_worker_out_of_service_and_kills_it(
        self, rig: Rig
    ) -> None:
        engine = rig.engine
        engine.apply(engine.supervision.heartbeat_failed("w1", "ExecutionTimeoutError", ready=True))
        unhealthy = await rig.box.assert_receive(WorkerUnhealthy, BOUND)
        assert unhealthy.reason == "heartbeat failed: ExecutionTimeoutError"
        assert rig.workers["w1"].exit_code == -9
        await rig.box.assert_receive(WorkerRestarting, BOUND)
        assert engine.counters["crashes"] == 1  # a failed heartbeat counts


class _Registry:
    def __init__(self) -> None:
        self.removed: list[str] = []

    def remove(self, worker_id: str) -> None:
        self.removed.append(worker_id)


class TestExit:
    async def test_an_exit_takes_the_worker_out_of_the_engine_and_the_registry(
        self, rig: Rig
    ) -> None:
        engine = rig.engine
        registry = engine.registry = _Registry()  # type: ignore[assignment]
        rig.workers["w1"].exit(3)
        await rig.box.assert_receive(WorkerRestarting, BOUND)
        assert "w1" not in engine.workers
        assert not engine.scheduler.has_worker("w1")
        assert registry.removed == ["w1"]

    async def test_a_worker_that_exited_during_its_call_is_handed_no_queued_call(
        self, rig: Rig
    ) -> None:
        """A call that failed because its worker died releases the worker before the
        monitor has seen the exit: the queued call must wait for a live worker, not go to
        the dead one (where it would fail too)."""
        engine = rig.engine
        assert await engine.acquire(rig.ticket(1)) == "w1"
        queued = asyncio.ensure_future(engine.acquire(rig.ticket(2)))
        await asyncio.wait({queued}, timeout=0)  # one turn of the loop: it is queued
        worker = rig.workers["w1"]
        worker.state = WorkerState.EXITED  # the handle has seen the exit; the monitor not yet
        engine.release("w1")
        await asyncio.wait({queued}, timeout=0)
        assert not queued.done()
        worker.exit(-9)
        restarting = await rig.box.assert_receive(WorkerRestarting, BOUND)
        await rig.clock.wait_for_sleepers(1)
        await rig.clock.advance(restarting.delay)
        assert await asyncio.wait_for(queued, BOUND) == "w1-2"  # the slot's new worker

    async def test_wait_idle_returns_once_the_worker_runs_no_call(self, rig: Rig) -> None:
        engine = rig.engine
        assert await engine.acquire(rig.ticket(1)) == "w1"
        idle = asyncio.ensure_future(engine.wait_idle("w1"))
        done, _ = await asyncio.wait({idle}, timeout=0)  # one turn of the loop, no sleep
        assert not done and engine._drain_waiters["w1"]  # parked: a call still runs on w1
        engine.release("w1")
        await asyncio.wait_for(idle, BOUND)


class TestQueue:
    @pytest.mark.parametrize("rig", [{"size": 2, "max_restarts": 0}], indirect=True)
    async def test_degrade_fails_the_queue_only_once_no_worker_can_serve_it(self, rig: Rig) -> None:
        engine = rig.engine
        assert {await engine.acquire(rig.ticket(1)), await engine.acquire(rig.ticket(2))} == {
            "w1",
            "w2",
        }
        queued = asyncio.ensure_future(engine.acquire(rig.ticket(3)))
        rig.workers["w1"].exit(1)
        await rig.box.assert_receive(PoolDegraded, BOUND)
        assert not queued.done()  # w2 still serves: the call may yet run there
        rig.workers["w2"].exit(1)
        degraded = await rig.box.assert_receive(PoolDegraded, BOUND)
        assert degraded.live_workers == 0
        with pytest.raises(PoolDegradedError, match=r"pool\.recover\(\)"):
            await asyncio.wait_for(queued, BOUND)

    async def test_a_queue_timeout_fails_the_call_and_is_counted(self, rig: Rig) -> None:
        engine = rig.engine
        assert await engine.acquire(rig.ticket(1)) == "w1"
        queued = asyncio.ensure_future(engine.acquire(rig.ticket(2, queue_deadline=5.0)))
        await rig.clock.wait_for_sleepers(1)
        await rig.clock.advance(5.0)
        with pytest.raises(QueueTimeoutError):
            await asyncio.wait_for(queued, BOUND)
        assert engine.counters["queue_timeouts"] == 1
