"""The one place that applies the scheduler's and the supervision's decisions to real workers.

The :class:`~snakepit.pool._scheduler.Scheduler` decides which call runs where and
the :class:`~snakepit.pool._supervision.Supervision` what to do about workers;
both are pure. The :class:`Engine` carries their decisions out through
:meth:`Engine.apply`: it hands workers to waiting callers or fails them typed,
starts, replaces, recycles, retires and kills worker processes, and publishes
what happened (only a new call's own dispatch or rejection is answered in
:meth:`Engine.acquire`, as its return value or exception). Queue timeouts come
from a ``DeadlineTimer`` here; what else feeds decisions (each worker's exit,
heartbeats, the TTL and memory checks, replacements) runs in ``_routines``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from snakepit._tasks import DeadlineTimer
from snakepit.errors import (
    PoolSaturatedError,
    WorkerStartupError,
)
from snakepit.events import (
    PoolDegraded,
    PoolRecovered,
    RequestQueued,
    WorkerRecycled,
    WorkerUnhealthy,
)
from snakepit.pool import _routines as routines
from snakepit.pool._actions import (
    CountCrash,
    CountRestart,
    Degrade,
    Kill,
    Recycle,
    Restart,
    Retire,
)
from snakepit.pool._scheduler import Dispatch, Queued, Rejected, Scheduler
from snakepit.pool._supervision import Supervision
from snakepit.worker._handle import WorkerState

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from snakepit._tasks import TaskOwner
    from snakepit.clock import Clock
    from snakepit.config import PoolConfig
    from snakepit.errors import SnakepitError
    from snakepit.events import EventBus
    from snakepit.pool._actions import Action, SlotState
    from snakepit.pool._scheduler import Ticket
    from snakepit.pool._types import WorkerFactory, WorkerLike
    from snakepit.worker._handle import WorkerOptions
    from snakepit.worker._registry import ProcessRegistry

__all__ = ["Engine"]

log = logging.getLogger("snakepit.pool")


class Engine:
    """Applies one pool's scheduling and supervision decisions.

    Args:
        name: the pool's name.
        config: the pool's options.
        clock: the clock timers read.
        events: the pool's bus.
        factory: builds a worker for an id and its options.
        options: the options of a worker for a slot number.
        tasks: the pool's task owner (monitors, replacements and timers run in it).
        counters: the pool's counters (``stats()``), updated here.
    """

    def __init__(
        self,
        *,
        name: str,
        config: PoolConfig,
        clock: Clock,
        events: EventBus,
        factory: WorkerFactory,
        options: Callable[[int], WorkerOptions],
        tasks: TaskOwner,
        counters: dict[str, int],
    ) -> None:
        self.name = name
        self.config = config
        self.clock = clock
        self.events = events
        self._factory = factory
        self._options = options
        self.tasks = tasks
        self.counters = counters
        self.scheduler = Scheduler(name=name, max_queue=config.max_queue, affinity=config.affinity)
        self.supervision = Supervision(name=name, config=config, scheduler=self.scheduler)
        self.workers: dict[str, WorkerLike] = {}
        self.registry: ProcessRegistry | None = None
        self._drain_waiters: dict[str, list[asyncio.Future[None]]] = {}
        self._idle: asyncio.Event | None = None  # while draining: set once no call runs
        self._probation: asyncio.Task[None] | None = None
        self._queue_timer = DeadlineTimer(clock, self.scheduler.next_deadline, self._expire_queue)

    # -- the one applier -----------------------------------------------------------------------

    def apply(self, decisions: Iterable[Dispatch | Rejected | Action]) -> None:
        """Carry out decisions of the scheduler and of the supervision, in order."""
        for decision in decisions:
            if isinstance(decision, Dispatch):
                fut: asyncio.Future[str] | None = decision.ticket.payload
                if fut is None or fut.done():
                    # The caller went away between dispatch and now: give the slot back.
                    now = self.clock.monotonic()
                    self.apply(self.scheduler.release(decision.worker_id, now))
                else:
                    fut.set_result(decision.worker_id)
            elif isinstance(decision, Rejected):
                failed: asyncio.Future[str] | None = decision.ticket.payload
                if failed is not None and not failed.done():
                    failed.set_exception(decision.error)
            elif isinstance(decision, Restart):
                slot = self.supervision.slot(decision.slot)
                self.tasks.spawn(routines.replace(self, slot, decision), f"replace-{slot.name}")
            elif isinstance(decision, Recycle):
                self._recycle(decision)
            elif isinstance(decision, Retire):
                worker = self.workers.get(decision.worker_id)
                if worker is not None and worker.state is not WorkerState.EXITED:
                    self.tasks.spawn(routines.retire(self, worker), f"retire-{worker.id}")
            elif isinstance(decision, Kill):
                self._kill(decision)
            elif isinstance(decision, Degrade):
                self._degrade(decision)
            elif isinstance(decision, CountRestart):
                self.counters["restarts"] += 1
            elif isinstance(decision, CountCrash):
                self.counters["crashes"] += 1
                log.warning(
                    "worker %s (pid %s) exited unexpectedly: code %s",
                    decision.worker_id,
                    decision.pid,
                    decision.code,
                )

    def _recycle(self, decision: Recycle) -> None:
        worker = self.workers[decision.worker_id]  # supervision recycles only workers it holds
        slot = self.supervision.slot_of[decision.worker_id]
        self.counters["recycled"] += 1
        self.events.publish(
            WorkerRecycled(
                source=self.name,
                at=self.clock.monotonic(),
                worker_id=worker.id,
                pid=worker.pid or 0,
                reason=decision.reason,
            )
        )
        self.apply(self.scheduler.set_accepting(worker.id, False))
        self.tasks.spawn(routines.replace(self, slot, None), f"recycle-{worker.id}")

    def _kill(self, decision: Kill) -> None:
        worker = self.workers.get(decision.worker_id)
        if worker is None:
            return
        self.events.publish(
            WorkerUnhealthy(
                source=self.name,
                at=self.clock.monotonic(),
                worker_id=worker.id,
                pid=worker.pid or 0,
                reason=decision.reason,
            )
        )
        if self.scheduler.has_worker(worker.id):
            self.apply(self.scheduler.set_accepting(worker.id, False))
        worker.kill()

    def _degrade(self, decision: Degrade) -> None:
        self.events.publish(
            PoolDegraded(
                source=self.name,
                at=self.clock.monotonic(),
                reason=decision.reason,
                live_workers=self.live_count(),
            )
        )
        error = self.supervision.unservable()
        if error is not None:  # nothing left to serve the queue: fail it now, not never
            self.fail_queue(error)
        if self._probation is None or self._probation.done():
            self._probation = self.tasks.spawn(routines.retry_after_window(self), "probation")

    # -- calls ---------------------------------------------------------------------------------

    async def acquire(self, ticket: Ticket) -> str:
        """The id of the worker ``ticket`` runs on, once the scheduler hands one over.

        Raises:
            SnakepitError: the scheduler rejected the call (saturated, queue timeout, affinity).
            asyncio.CancelledError: the caller was cancelled (its place or worker is given back).
        """
        decision = self.scheduler.submit(ticket, self.clock.monotonic())
        if isinstance(decision, Dispatch):
            return decision.worker_id
        if isinstance(decision, Rejected):
            if isinstance(decision.error, PoolSaturatedError):
                self.counters["saturated"] += 1
            raise decision.error
        assert isinstance(decision, Queued)
        fut: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        ticket.payload = fut
        self.events.publish(
            RequestQueued(
                source=self.name,
                at=self.clock.monotonic(),
                request_id=ticket.id,
                tool=ticket.tool,
                session_id=ticket.session_id,
            )
        )
        if ticket.queue_deadline is not None:
            self._queue_timer.wake_for(ticket.queue_deadline)
        try:
            return await fut
        except asyncio.CancelledError:
            dispatched = fut.done() and not fut.cancelled() and fut.exception() is None
            if not self.scheduler.cancel(ticket) and dispatched:
                self.release(fut.result())  # a worker was handed over as we were cancelled
            raise

    def release(self, worker_id: str) -> None:
        """A call on ``worker_id`` ended: its place goes to the queue, or to a retirement.

        A worker that has exited (its call just failed with it) takes no more calls: its
        exit is on its way to the monitor, and a call handed to it meanwhile would fail too.
        """
        if self.scheduler.has_worker(worker_id):
            worker = self.workers.get(worker_id)
            if worker is None or worker.state is WorkerState.EXITED:
                self.apply(self.scheduler.set_accepting(worker_id, False))
            self.apply(self.scheduler.release(worker_id, self.clock.monotonic()))
            if not self.scheduler.in_flight(worker_id):
                self._wake_drain(worker_id)
        if self._idle is not None and not self.scheduler.busy_workers:
            self._idle.set()

    def fail_queue(self, error: SnakepitError) -> None:
        """Fail every queued call with ``error``."""
        self.apply(Rejected(ticket, error) for ticket in self.scheduler.clear_queue())

    def _expire_queue(self) -> None:
        rejected = self.scheduler.expire(self.clock.monotonic())
        self.counters["queue_timeouts"] += len(rejected)
        self.apply(rejected)

    async def drain(self, timeout: float) -> None:
        """Wait until no call runs, at most ``timeout`` seconds."""
        if not self.scheduler.busy_workers:
            return
        self._idle = asyncio.Event()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout)

    def live_count(self) -> int:
        return sum(1 for w in self.workers.values() if w.state is WorkerState.READY)

    # -- starting ------------------------------------------------------------------------------

    async def start_all(self, registry: ProcessRegistry) -> None:
        """Start every slot's worker, at most ``startup_concurrency`` at once.

        Raises:
            WorkerStartupError: the first worker that failed (the caller tears down the rest).
        """
        self.registry = registry
        gate = asyncio.Semaphore(self.config.startup_concurrency)
        self.supervision.start()  # a worker that dies right after its start is replaced

        async def start(slot: SlotState) -> None:
            async with gate:
                await self.start_worker(slot)

        try:
            async with asyncio.TaskGroup() as group:
                for slot in self.supervision.slots:
                    group.create_task(start(slot))
        except BaseExceptionGroup as group_error:
            first = next(
                (e for e in group_error.exceptions if isinstance(e, WorkerStartupError)),
                group_error.exceptions[0],
            )
            raise first from None

    def start_timers(self) -> None:
        """Run the queue-timeout timer, and the maintenance loop if any check is set."""
        self.tasks.spawn(self._queue_timer.run(), "queue-timer")
        if self.supervision.maintenance_interval() is not None:
            self.tasks.spawn(routines.maintain(self), "maintenance")

    async def start_worker(self, slot: SlotState) -> WorkerLike:
        """Start a new occupant for ``slot``; supervision says what its readiness means.

        Raises:
            WorkerStartupError: the worker did not become ready (it is killed).
        """
        worker_id = self.supervision.new_worker_id(slot)
        worker = self._factory(
            worker_id,
            self._options(slot.index),
            events=self.events,
            clock=self.clock,
            source=self.name,
        )
        self.workers[worker_id] = worker
        try:
            await worker.start()
        except BaseException:
            self.workers.pop(worker_id, None)
            if worker.state is not WorkerState.EXITED:
                worker.kill()  # never leave a started process behind
            raise
        if self.registry is not None and worker.pid:
            self.registry.add(worker_id, worker.pid)
        self.tasks.spawn(routines.monitor(self, worker), f"monitor-{worker_id}")
        self.apply(self.scheduler.add_worker(worker_id, self.config.max_concurrency))
        self.apply(self.supervision.occupy(slot, worker_id, self.clock.monotonic()))
        return worker

    async def recover(self) -> None:
        """Forget the restart history and refill empty slots.

        Raises:
            WorkerStartupError: a slot's worker still cannot start (the pool degrades again
                once failures pass the intensity).
        """
        self.supervision.reset()
        for slot in self.supervision.slots:
            if self.supervision.vacant(slot):
                await self.start_worker(slot)
        self.events.publish(
            PoolRecovered(
                source=self.name, at=self.clock.monotonic(), live_workers=self.live_count()
            )
        )

    # -- exits and retirement ------------------------------------------------------------------

    def worker_exited(self, worker: WorkerLike, code: int | None) -> None:
        """``worker`` exited with ``code``: out of service and the registry; supervision says
        what follows (a restart, nothing, or degrading)."""
        self.workers.pop(worker.id, None)
        self.forget(worker.id)
        if self.registry is not None:
            self.registry.remove(worker.id)
        self.apply(self.supervision.exited(worker.id, worker.pid, code, self.clock.monotonic()))

    def replacement_ended(self, slot: SlotState) -> None:
        """``slot``'s replacement routine is over, however it ended."""
        self.supervision.replacement_ended(slot)

    async def wait_idle(self, worker_id: str) -> None:
        """Wait until ``worker_id`` runs no call (or is no longer scheduled)."""
        while self.scheduler.has_worker(worker_id) and self.scheduler.in_flight(worker_id):
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._drain_waiters.setdefault(worker_id, []).append(waiter)
            await waiter

    def forget(self, worker_id: str) -> None:
        """Take a worker out of the scheduler; calls waiting for it strictly fail typed."""
        self.apply(self.scheduler.remove_worker(worker_id))
        self._wake_drain(worker_id)

    def _wake_drain(self, worker_id: str) -> None:
        for waiter in self._drain_waiters.pop(worker_id, []):
            if not waiter.done():
                waiter.set_result(None)

    # -- stopping ------------------------------------------------------------------------------

    def closing(self) -> None:
        """No replacement starts from here on."""
        self.supervision.stop()

    async def stop_all(self, grace: float) -> None:
        """Stop every worker (SIGTERM, then SIGKILL after ``grace``); no more replacements."""
        self.closing()
        workers = list(self.workers.values())
        if workers:
            await asyncio.gather(*(w.stop(grace) for w in workers), return_exceptions=True)
