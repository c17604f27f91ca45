"""The supervisor: keeps a pool's worker slots filled.

A pool has ``size`` slots (``w1``..``wN``). Each holds one worker at a time;
its occupant changes when a worker crashes (replaced after backoff), is
killed for a deadline or a failed heartbeat (replaced at once), or is
recycled (the replacement starts first; the old worker is stopped once it
has finished its calls). Each slot has at most one replacement under way.

Unexpected exits count toward the restart intensity. Beyond it the pool is
*degraded*: it stops restarting instead of spinning, and calls that no
worker can serve fail at once with ``PoolDegradedError``. After
``restart_window`` of the clock it tries once more (half-open), and
``Pool.recover()`` does so on demand.

Decisions about requests stay in the pure ``Scheduler``; this module tells
it which workers exist and which accept work.
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import TYPE_CHECKING, Any

from snakepit.errors import (
    ExecutionTimeoutError,
    PoolDegradedError,
    WorkerCrashedError,
    WorkerStartupError,
)
from snakepit.events import (
    PoolDegraded,
    PoolRecovered,
    WorkerRecycled,
    WorkerRestarting,
    WorkerUnhealthy,
)
from snakepit.pool.restarts import RestartPolicy, RestartTracker
from snakepit.worker._handle import WorkerState

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine

    from snakepit.clock import Clock
    from snakepit.config import PoolConfig
    from snakepit.errors import SnakepitError
    from snakepit.events import EventBus
    from snakepit.pool._types import WorkerFactory, WorkerLike
    from snakepit.pool.scheduler import Dispatch, Scheduler, Ticket
    from snakepit.worker._handle import WorkerOptions
    from snakepit.worker._registry import ProcessRegistry

__all__ = ["Slot", "Supervisor"]

log = logging.getLogger("snakepit.pool")


class Slot:
    """A place for one worker; its occupant changes on restart and recycling."""

    __slots__ = ("generation", "index", "replacing", "worker")

    def __init__(self, index: int) -> None:
        self.index = index
        self.generation = 0
        self.worker: WorkerLike | None = None
        self.replacing: asyncio.Task[None] | None = None

    @property
    def name(self) -> str:
        return f"w{self.index}"

    @property
    def busy_replacing(self) -> bool:
        return self.replacing is not None and not self.replacing.done()


class Supervisor:
    """Starts, watches, replaces, recycles and kills the workers of one pool."""

    def __init__(
        self,
        *,
        name: str,
        config: PoolConfig,
        clock: Clock,
        events: EventBus,
        scheduler: Scheduler,
        factory: WorkerFactory,
        options: Callable[[int], WorkerOptions],
        spawn: Callable[[Coroutine[Any, Any, Any], str], asyncio.Task[Any]],
        resolve: Callable[[Dispatch], None],
        reject: Callable[[Ticket, SnakepitError], None],
        counters: dict[str, int],
    ) -> None:
        self.name = name
        self.config = config
        self._clock = clock
        self._events = events
        self._scheduler = scheduler
        self._factory = factory
        self._options = options
        self._spawn = spawn
        self._resolve = resolve
        self._reject = reject
        self._counters = counters
        self.slots = [Slot(i + 1) for i in range(config.size)]
        self.workers: dict[str, WorkerLike] = {}
        self.slot_of: dict[str, Slot] = {}
        self.registry: ProcessRegistry | None = None
        self.running = False
        self.restarts = RestartTracker(
            RestartPolicy(
                max_restarts=config.max_restarts,
                window=config.restart_window,
                backoff_initial=config.backoff_initial,
                backoff_max=config.backoff_max,
            ),
            rng=random.Random(),
        )
        # Workers stopped on purpose: their exit is not a crash.
        self._intentional: set[str] = set()
        self._drain_waiters: dict[str, list[asyncio.Future[None]]] = {}
        self._probation: asyncio.Task[None] | None = None

    # -- observation ---------------------------------------------------------------------------

    def live_count(self) -> int:
        return sum(1 for w in self.workers.values() if w.state is WorkerState.READY)

    @property
    def degraded(self) -> bool:
        return self.restarts.degraded

    def unservable(self) -> PoolDegradedError | None:
        """The error for a call no worker can ever take now (degraded, nothing live or coming)."""
        if not self.degraded or self._scheduler.worker_ids:
            return None
        if any(slot.busy_replacing for slot in self.slots):
            return None
        return PoolDegradedError(
            f"pool {self.name!r} is degraded with no live worker: restarts stopped after more "
            f"than {self.config.max_restarts} unexpected exits within "
            f"{self.config.restart_window}s; fix the cause, then call pool.recover() (it also "
            f"retries by itself after restart_window)",
            pool=self.name,
        )

    # -- starting ------------------------------------------------------------------------------

    async def start_all(self) -> None:
        """Start every slot's worker, at most ``startup_concurrency`` at once.

        Raises:
            WorkerStartupError: the first worker that failed (the caller tears down the rest).
        """
        gate = asyncio.Semaphore(self.config.startup_concurrency)
        self.running = True  # a worker that dies right after its start is replaced like any

        async def start(slot: Slot) -> None:
            async with gate:
                await self.start_worker(slot)

        try:
            async with asyncio.TaskGroup() as group:
                for slot in self.slots:
                    group.create_task(start(slot))
        except BaseExceptionGroup as group_error:
            first = next(
                (e for e in group_error.exceptions if isinstance(e, WorkerStartupError)),
                group_error.exceptions[0],
            )
            raise first from None

    async def start_worker(self, slot: Slot) -> WorkerLike:
        """Start a new occupant for ``slot``; the previous one, if alive, is retired."""
        slot.generation += 1
        worker_id = slot.name if slot.generation == 1 else f"{slot.name}-{slot.generation}"
        worker = self._factory(
            worker_id,
            self._options(slot.index),
            events=self._events,
            clock=self._clock,
            source=self.name,
        )
        self.workers[worker_id] = worker
        self.slot_of[worker_id] = slot
        try:
            await worker.start()
        except BaseException:
            self.workers.pop(worker_id, None)
            self.slot_of.pop(worker_id, None)
            if worker.state is not WorkerState.EXITED:
                worker.kill()  # never leave a started process behind
            raise
        if self.registry is not None and worker.pid:
            self.registry.add(worker_id, worker.pid)
        old = slot.worker
        slot.worker = worker
        self._spawn(self._monitor(worker), f"monitor-{worker_id}")
        for dispatch in self._scheduler.add_worker(worker_id, self.config.max_concurrency):
            self._resolve(dispatch)
        if old is not None and old is not worker and old.state is not WorkerState.EXITED:
            self._spawn(self._retire(old), f"retire-{old.id}")
        return worker

    def _replace_later(self, slot: Slot, delay: float) -> None:
        """Start a replacement for ``slot`` after ``delay``, unless one is already under way."""
        if slot.busy_replacing or not self.running:
            return
        slot.replacing = self._spawn(self._replace(slot, delay), f"replace-{slot.name}")

    async def _replace(self, slot: Slot, delay: float) -> None:
        self._events.publish(
            WorkerRestarting(
                source=self.name,
                at=self._clock.monotonic(),
                worker_id=slot.name,
                attempt=self.restarts.consecutive_failures(slot.name),
                delay=delay,
            )
        )
        if delay > 0:
            await self._clock.sleep(delay)
        while self.running:
            try:
                await self.start_worker(slot)
            except WorkerStartupError as exc:
                log.error("replacement for slot %s failed to start: %s", slot.name, exc)
                retry = self.restarts.record_failure(slot.name, self._clock.monotonic())
                if retry is None:
                    self._degrade(slot, f"replacements keep failing to start: {exc.message}")
                    return
                await self._clock.sleep(retry)
                continue
            self._counters["restarts"] += 1
            self.restarts.record_success(slot.name, self._clock.monotonic())
            return

    # -- exits ---------------------------------------------------------------------------------

    async def _monitor(self, worker: WorkerLike) -> None:
        """Wait for a worker to exit; take it out of service; replace it if it held its slot."""
        code = await worker.wait_exited()
        expected = worker.id in self._intentional
        self._intentional.discard(worker.id)
        slot = self.slot_of.pop(worker.id, None)
        self.workers.pop(worker.id, None)
        self._forget(worker.id)
        if self.registry is not None:
            self.registry.remove(worker.id)
        if slot is None or slot.worker is not worker or not self.running:
            return  # replaced already (recycling), or the pool is closing
        if expected:
            self._replace_later(slot, 0.0)
            return
        self._counters["crashes"] += 1
        log.warning("worker %s (pid %s) exited unexpectedly: code %s", worker.id, worker.pid, code)
        delay = self.restarts.record_failure(slot.name, self._clock.monotonic())
        if delay is None:
            self._degrade(
                slot,
                f"more than {self.config.max_restarts} unexpected worker exits within "
                f"{self.config.restart_window}s; not restarting slot {slot.name}",
            )
            return
        self._replace_later(slot, delay)

    def _forget(self, worker_id: str) -> None:
        """Take a worker out of the scheduler; calls waiting for it strictly fail typed."""
        for rejected in self._scheduler.remove_worker(worker_id):
            self._reject(rejected.ticket, rejected.error)
        for waiter in self._drain_waiters.pop(worker_id, []):
            if not waiter.done():
                waiter.set_result(None)

    def _degrade(self, slot: Slot, reason: str) -> None:
        slot.worker = None
        self._events.publish(
            PoolDegraded(
                source=self.name,
                at=self._clock.monotonic(),
                reason=reason,
                live_workers=self.live_count(),
            )
        )
        error = self.unservable()
        if error is not None:  # nothing left to serve the queue: fail it now, not never
            for ticket in self._scheduler.clear_queue():
                self._reject(ticket, error)
        if self._probation is None or self._probation.done():
            self._probation = self._spawn(self._retry_after_window(), "probation")

    async def _retry_after_window(self) -> None:
        """Half-open: after ``restart_window`` of the clock, try the empty slots once more."""
        await self._clock.sleep(self.config.restart_window)
        try:
            await self.recover()
        except WorkerStartupError as exc:
            log.error("pool %s is still degraded: %s", self.name, exc)

    async def recover(self) -> None:
        """Forget the restart history and refill empty slots.

        Raises:
            WorkerStartupError: a slot's worker still cannot start (the pool degrades again
                once failures pass the intensity).
        """
        self.restarts.reset()
        for slot in self.slots:
            if slot.worker is None and not slot.busy_replacing:
                await self.start_worker(slot)
        self._events.publish(
            PoolRecovered(
                source=self.name, at=self._clock.monotonic(), live_workers=self.live_count()
            )
        )

    # -- recycling and killing -----------------------------------------------------------------

    def dispatched(self, worker: WorkerLike) -> None:
        """A call was handed to ``worker``: if it is the last ``max_requests`` allows, the
        worker stops accepting now, so nothing more is ever handed to it."""
        limit = self.config.max_requests
        if limit is not None and worker.requests + 1 >= limit:
            self.recycle(worker, f"max_requests ({limit})")

    def released(self, worker_id: str) -> None:
        """A call on ``worker_id`` finished: wake a retirement waiting for it."""
        if not self._scheduler.in_flight(worker_id):
            for waiter in self._drain_waiters.pop(worker_id, []):
                if not waiter.done():
                    waiter.set_result(None)

    def recycle(self, worker: WorkerLike, reason: str) -> None:
        """Stop sending work to ``worker``, start its replacement, stop it once it is idle."""
        slot = self.slot_of.get(worker.id)
        if slot is None or slot.worker is not worker or slot.busy_replacing:
            return
        if not self._scheduler.has_worker(worker.id) or not self._scheduler.is_accepting(worker.id):
            return  # already draining
        self._counters["recycled"] += 1
        self._events.publish(
            WorkerRecycled(
                source=self.name,
                at=self._clock.monotonic(),
                worker_id=worker.id,
                pid=worker.pid or 0,
                reason=reason,
            )
        )
        for dispatch in self._scheduler.set_accepting(worker.id, False):
            self._resolve(dispatch)
        slot.replacing = self._spawn(self._replace_recycled(slot, worker), f"recycle-{worker.id}")

    async def _replace_recycled(self, slot: Slot, old: WorkerLike) -> None:
        try:
            await self.start_worker(slot)  # retires the old occupant once the new one serves
        except WorkerStartupError as exc:
            log.error("replacement for recycled %s failed: %s", old.id, exc)
            await self._retire(old)  # its exit then goes through the usual restart path

    async def _retire(self, worker: WorkerLike) -> None:
        """Wait until ``worker`` runs nothing, then stop it gracefully."""
        self._intentional.add(worker.id)
        while self._scheduler.has_worker(worker.id) and self._scheduler.in_flight(worker.id):
            waiter = asyncio.get_running_loop().create_future()
            self._drain_waiters.setdefault(worker.id, []).append(waiter)
            await waiter
        self._forget(worker.id)
        await worker.stop()

    def kill(self, worker: WorkerLike, reason: str, *, failure: bool) -> None:
        """Kill a worker that cannot be trusted (deadline overrun, failed heartbeat, broken channel).

        ``failure`` says whether the exit counts toward the restart intensity (a worker
        that stopped answering does; one killed for a caller's deadline does not).
        """
        if worker.state is WorkerState.EXITED:
            return
        if not failure:
            self._intentional.add(worker.id)
        self._events.publish(
            WorkerUnhealthy(
                source=self.name,
                at=self._clock.monotonic(),
                worker_id=worker.id,
                pid=worker.pid or 0,
                reason=reason,
            )
        )
        if self._scheduler.has_worker(worker.id):
            for dispatch in self._scheduler.set_accepting(worker.id, False):
                self._resolve(dispatch)
        worker.kill()

    def broken(self, worker: WorkerLike) -> None:
        """A call saw the channel break: if the process still runs, it cannot be trusted."""
        if worker.state is WorkerState.READY:
            self.kill(worker, "its channel broke while the process still ran", failure=True)

    # -- maintenance ---------------------------------------------------------------------------

    async def maintain(self) -> None:
        """Heartbeats, TTL and memory checks, every ``heartbeat_interval`` (or 1 s) of the clock."""
        c = self.config
        interval = c.heartbeat_interval or min(x for x in (c.ttl, 1.0) if x)
        while True:
            await self._clock.sleep(interval)
            now = self._clock.monotonic()
            ready = [w for w in self.workers.values() if w.state is WorkerState.READY]
            if c.ttl is not None:
                for w in ready:
                    if w.ready_at is not None and now - w.ready_at >= c.ttl:
                        self.recycle(w, f"ttl ({c.ttl}s)")
            if c.memory_limit_mb is not None:
                limit = c.memory_limit_mb * 1024 * 1024
                for w, rss in await asyncio.to_thread(_rss_of, ready):
                    if rss is not None and rss > limit:
                        self.recycle(w, f"memory ({rss / 2**20:.0f} MiB > {c.memory_limit_mb} MiB)")
            if c.heartbeat_interval is not None and ready:
                await asyncio.gather(*(self._heartbeat(w) for w in ready))

    async def _heartbeat(self, worker: WorkerLike) -> None:
        try:
            await worker.ping(timeout=self.config.heartbeat_timeout)
        except (ExecutionTimeoutError, WorkerCrashedError) as exc:
            if worker.state is WorkerState.READY:
                self.kill(worker, f"heartbeat failed: {type(exc).__name__}", failure=True)

    # -- stopping ------------------------------------------------------------------------------

    async def stop_all(self, grace: float) -> None:
        """Stop every worker (SIGTERM, then SIGKILL after ``grace``); no more replacements."""
        self.running = False
        workers = list(self.workers.values())
        if workers:
            await asyncio.gather(*(w.stop(grace) for w in workers), return_exceptions=True)


def _rss_of(workers: list[WorkerLike]) -> list[tuple[WorkerLike, int | None]]:
    import psutil

    out: list[tuple[WorkerLike, int | None]] = []
    for w in workers:
        try:
            out.append((w, psutil.Process(w.pid).memory_info().rss if w.pid else None))
        except psutil.Error:
            out.append((w, None))
    return out
