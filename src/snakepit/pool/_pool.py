"""``Pool``: the supervised pool of worker processes that users call.

The pool owns its workers, the scheduler (which decides), the restart
tracker, the process registry and the event bus. Decisions are made by the
pure ``Scheduler``; this module applies them: it resolves waiting callers'
futures, starts and stops processes, and publishes what happened.

Life of a call: ``execute`` validates the tool and arguments against the
workers' specs, asks the scheduler for a worker (dispatch now, queue, or
reject), runs the call on that worker with its deadline, and releases the
slot, which may dispatch the next queued call. A deadline overrun kills the
worker (it may be stuck in native code); a crash fails only the calls on
that worker; both are replaced by the supervisor.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import random
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

from snakepit.bridge.host_tools import HostToolRegistry
from snakepit.bridge.memory import InMemorySessionStore, validate_session_id
from snakepit.bridge.service import HostBridge
from snakepit.clock import Clock, SystemClock
from snakepit.codec import Encoding
from snakepit.config import PoolConfig
from snakepit.errors import (
    ExecutionTimeoutError,
    PoolClosedError,
    PoolSaturatedError,
    SessionNotFoundError,
    SnakepitError,
    ToolNotFoundError,
    WorkerCrashedError,
    WorkerStartupError,
)
from snakepit.events import (
    EventBus,
    PoolClosed,
    PoolClosing,
    PoolDegraded,
    PoolRecovered,
    PoolStarted,
    RequestCompleted,
    RequestDispatched,
    RequestFailed,
    RequestQueued,
    SessionDeleted,
    SessionExpired,
    WorkerRecycled,
    WorkerRestarting,
    WorkerUnhealthy,
)
from snakepit.pool._types import PoolStats, WorkerFactory, WorkerInfo, WorkerLike
from snakepit.pool.restarts import RestartPolicy, RestartTracker
from snakepit.pool.scheduler import Dispatch, Queued, Rejected, Scheduler, Ticket
from snakepit.worker.handle import WorkerHandle, WorkerOptions, WorkerState
from snakepit.worker.registry import ProcessRegistry
from snakepit.worker.runtime import make_runtime_dir, remove_runtime_dir

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from snakepit.events import Event
    from snakepit.pool._session import Session, Sessions
    from snakepit.worker.transport import ToolSpec

__all__ = ["Pool"]

log = logging.getLogger("snakepit.pool")


class _Default:
    def __repr__(self) -> str:
        return "<pool default>"


DEFAULT: Final[Any] = _Default()
_pool_ids = itertools.count(1)
PoolState = Literal["new", "starting", "running", "closing", "closed"]


def _handle_factory(
    worker_id: str, options: WorkerOptions, *, events: EventBus, clock: Clock, source: str
) -> WorkerLike:
    return WorkerHandle(worker_id, options, events=events, clock=clock, source=source)


class _Slot:
    """A place for one worker; its occupant changes on restart and recycling."""

    __slots__ = ("generation", "index", "restart_task", "worker")

    def __init__(self, index: int) -> None:
        self.index = index
        self.generation = 0
        self.worker: WorkerLike | None = None
        self.restart_task: asyncio.Task[None] | None = None


class Pool:
    """A supervised pool of worker processes.

    Use it as an async context manager::

        async with snakepit.Pool(adapter="snakepit.examples.showcase:Showcase", size=4) as pool:
            await pool.execute("add", {"a": 1, "b": 2})

    Options are :class:`~snakepit.PoolConfig` fields, as keywords or a config.

    Args:
        config: a ``PoolConfig`` (keyword options override its fields).
        clock: the clock timers read (tests pass a fake one).
        worker_factory: builds workers (default: real processes); tests may inject fakes.
        **options: ``PoolConfig`` fields.

    Raises:
        ValueError: an option is invalid (named, with its value and what is allowed).
    """

    def __init__(
        self,
        config: PoolConfig | None = None,
        /,
        *,
        clock: Clock | None = None,
        worker_factory: WorkerFactory | None = None,
        **options: Any,
    ) -> None:
        self.config = PoolConfig.from_options(config, options)
        self.name = self.config.name or f"pool{next(_pool_ids)}"
        self.events = EventBus(self.name)
        self._clock = clock or SystemClock()
        self._factory = worker_factory or _handle_factory
        self._state: PoolState = "new"
        self._scheduler = Scheduler(
            name=self.name, max_queue=self.config.max_queue, affinity=self.config.affinity
        )
        self._restarts = RestartTracker(
            RestartPolicy(
                max_restarts=self.config.max_restarts,
                window=self.config.restart_window,
                backoff_initial=self.config.backoff_initial,
                backoff_max=self.config.backoff_max,
            ),
            rng=random.Random(),
        )
        self._slots = [_Slot(i + 1) for i in range(self.config.size)]
        self._workers: dict[str, WorkerLike] = {}
        self._slot_of: dict[str, _Slot] = {}
        self._tools: dict[str, ToolSpec] = {}
        self._affinity: dict[str, str] = {}
        # Workers the pool stopped on purpose: their exit is replaced at once, not counted as a crash.
        self._intentional: set[str] = set()
        self._drain_waiters: dict[str, list[asyncio.Future[None]]] = {}
        self._request_ids = itertools.count(1)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._timer_wake: asyncio.Event | None = None
        self._idle: asyncio.Event | None = None
        self._closed_event: asyncio.Event | None = None
        self._runtime_dir: Path | None = None
        self._registry: ProcessRegistry | None = None
        self._store = InMemorySessionStore(
            self._clock,
            ttl=self.config.session_ttl,
            max_sessions=self.config.max_sessions,
            events=self.events,
            name=self.name,
        )
        self._host_tools = HostToolRegistry(self.name)
        self._bridge: HostBridge | None = None
        self._sessions: Sessions | None = None
        self.events.add_listener(self._on_session_gone, (SessionExpired, SessionDeleted))
        self._counters = dict.fromkeys(
            (
                "requests",
                "completed",
                "errors",
                "timeouts",
                "crashes",
                "restarts",
                "recycled",
                "saturated",
            ),
            0,
        )

    # -- lifecycle -----------------------------------------------------------------------------

    async def __aenter__(self) -> Pool:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Start every worker (concurrently, bounded) and return when all are ready.

        Raises:
            WorkerStartupError: a worker failed to start (the first failure: worker, exit code,
                stderr tail); the others are stopped before this is raised.
            PoolClosedError: the pool was already started or closed.
        """
        if self._state != "new":
            raise PoolClosedError(
                f"pool {self.name!r} was already started ({self._state}); create a new Pool",
                pool=self.name,
            )
        self._state = "starting"
        began = self._clock.monotonic()
        self._timer_wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._closed_event = asyncio.Event()
        self._runtime_dir = make_runtime_dir(self.name, self.config.runtime_dir)
        self._registry = ProcessRegistry(
            f"{self.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}",
            Path(self.config.registry_dir) if self.config.registry_dir else None,
        )
        await asyncio.to_thread(self._registry.open)
        gate = asyncio.Semaphore(self.config.startup_concurrency)

        async def start_slot(slot: _Slot) -> None:
            async with gate:
                await self._start_worker(slot)

        try:
            self._bridge = HostBridge(
                self._store,
                self._host_tools,
                name=self.name,
                transport=self.config.transport,
                max_message_bytes=self.config.max_message_mb * 1024 * 1024,
                allow_pickle=self.config.serialization == "pickle",
            )
            await self._bridge.start(self._runtime_dir)
            async with asyncio.TaskGroup() as group:
                for slot in self._slots:
                    group.create_task(start_slot(slot))
        except BaseException as exc:
            await self._teardown(grace=0.0)
            self._state = "closed"
            if isinstance(exc, BaseExceptionGroup):
                first = next(
                    (e for e in exc.exceptions if isinstance(e, WorkerStartupError)),
                    exc.exceptions[0],
                )
                raise first from None
            raise
        self._state = "running"
        self._spawn(self._queue_timer(), "queue-timer")
        self._spawn(self._store.run_expiry(), "session-expiry")
        if self.config.heartbeat_interval or self.config.ttl or self.config.memory_limit_mb:
            self._spawn(self._maintenance(), "maintenance")
        self.events.publish(
            PoolStarted(
                source=self.name,
                at=self._clock.monotonic(),
                size=self.config.size,
                startup_seconds=self._clock.monotonic() - began,
            )
        )

    async def close(self, grace: float | None = None) -> None:
        """Drain running calls (up to ``drain_timeout``), then stop every worker.

        Queued calls fail with ``PoolClosedError``. Workers get SIGTERM, then SIGKILL
        after ``grace`` (default ``shutdown_grace``). Idempotent: a second call waits for
        the first to finish.
        """
        if self._state in ("closing", "closed"):
            if self._closed_event is not None:
                await self._closed_event.wait()
            return
        if self._state == "new":
            self._state = "closed"
            return
        self._state = "closing"
        self.events.publish(PoolClosing(source=self.name, at=self._clock.monotonic()))
        for ticket in self._scheduler.clear_queue():
            self._fail_ticket(ticket, self._closed_error())
        if self._scheduler.busy_workers and self._idle is not None:
            self._idle.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), self.config.drain_timeout)
        await self._teardown(self.config.shutdown_grace if grace is None else grace)
        self._state = "closed"
        self.events.publish(PoolClosed(source=self.name, at=self._clock.monotonic()))
        self.events.close()
        assert self._closed_event is not None
        self._closed_event.set()

    async def _teardown(self, grace: float) -> None:
        current = asyncio.current_task()
        for task in list(self._tasks):
            if task is not current:
                task.cancel()
        workers = list(self._workers.values())
        if workers:
            await asyncio.gather(*(w.stop(grace) for w in workers), return_exceptions=True)
        pending = [t for t in self._tasks if t is not current and not t.done()]
        if pending:
            await asyncio.wait(pending)
        if self._registry is not None:
            self._registry.close()
        await self._store.close()
        if self._bridge is not None:
            await self._bridge.stop(grace=None)  # the workers, its only clients, are gone
        if self._runtime_dir is not None:
            remove_runtime_dir(self._runtime_dir)

    def _closed_error(self) -> PoolClosedError:
        return PoolClosedError(
            f"pool {self.name!r} is {self._state}; create a new Pool to run more calls",
            pool=self.name,
        )

    def _check_running(self) -> None:
        if self._state != "running":
            if self._state in ("new", "starting"):
                raise PoolClosedError(
                    f"pool {self.name!r} is not started; use 'async with Pool(...)' or "
                    "await pool.start() first",
                    pool=self.name,
                )
            raise self._closed_error()

    # -- workers -------------------------------------------------------------------------------

    def _options(self) -> WorkerOptions:
        c = self.config
        assert self._runtime_dir is not None
        return WorkerOptions(
            adapter=c.adapter,
            runtime_dir=self._runtime_dir,
            python=c.python,
            env=c.env,
            cwd=c.cwd,
            transport=c.transport,
            startup_timeout=c.startup_timeout,
            threads=max(c.threads, c.max_concurrency),
            shutdown_grace=c.shutdown_grace,
            max_message_bytes=c.max_message_mb * 1024 * 1024,
            encoding=Encoding.PICKLE if c.serialization == "pickle" else Encoding.JSON,
            extra_env=self._bridge.worker_env() if self._bridge is not None else {},
        )

    async def _start_worker(self, slot: _Slot) -> WorkerLike:
        slot.generation += 1
        worker_id = f"w{slot.index}" if slot.generation == 1 else f"w{slot.index}-{slot.generation}"
        worker = self._factory(
            worker_id, self._options(), events=self.events, clock=self._clock, source=self.name
        )
        self._workers[worker_id] = worker
        self._slot_of[worker_id] = slot
        try:
            await worker.start()
        except BaseException:
            self._workers.pop(worker_id, None)
            self._slot_of.pop(worker_id, None)
            raise
        if not self._tools:
            self._tools = dict(worker.tools)
        if self._registry is not None and worker.pid:
            self._registry.add(worker_id, worker.pid)
        old = slot.worker
        slot.worker = worker
        self._spawn(self._monitor(worker), f"monitor-{worker_id}")
        for dispatch in self._scheduler.add_worker(worker_id, self.config.max_concurrency):
            self._resolve(dispatch)
        if old is not None and old is not worker and old.state is not WorkerState.EXITED:
            self._spawn(self._retire(old), f"retire-{old.id}")
        return worker

    async def _monitor(self, worker: WorkerLike) -> None:
        """Wait for a worker to exit; then take it out of service and, if unexpected, replace it."""
        code = await worker.wait_exited()
        expected = worker.id in self._intentional
        self._intentional.discard(worker.id)
        slot = self._slot_of.pop(worker.id, None)
        self._workers.pop(worker.id, None)
        for rejected in self._scheduler.remove_worker(worker.id):
            self._fail_ticket(rejected.ticket, rejected.error)
        if self._registry is not None:
            self._registry.remove(worker.id)
        if slot is None or slot.worker is not worker or self._state != "running":
            return  # replaced already (recycling), or the pool is closing
        if expected:
            self._spawn(self._replace(slot, delay=0.0), f"replace-{slot.index}")
            return
        self._counters["crashes"] += 1
        log.warning("worker %s (pid %s) exited unexpectedly: code %s", worker.id, worker.pid, code)
        delay = self._restarts.record_failure(f"w{slot.index}", self._clock.monotonic())
        if delay is None:
            self.events.publish(
                PoolDegraded(
                    source=self.name,
                    at=self._clock.monotonic(),
                    reason=(
                        f"more than {self.config.max_restarts} unexpected worker exits within "
                        f"{self.config.restart_window}s; not restarting slot w{slot.index}"
                    ),
                    live_workers=len(self._workers),
                )
            )
            slot.worker = None
            return
        self._spawn(self._replace(slot, delay=delay), f"replace-{slot.index}")

    async def _replace(self, slot: _Slot, delay: float) -> None:
        attempt = self._restarts.consecutive_failures(f"w{slot.index}")
        self.events.publish(
            WorkerRestarting(
                source=self.name,
                at=self._clock.monotonic(),
                worker_id=f"w{slot.index}",
                attempt=attempt,
                delay=delay,
            )
        )
        if delay > 0:
            await self._clock.sleep(delay)
        while self._state == "running":
            try:
                await self._start_worker(slot)
            except WorkerStartupError as exc:
                log.error("replacement for slot w%d failed to start: %s", slot.index, exc)
                retry = self._restarts.record_failure(f"w{slot.index}", self._clock.monotonic())
                if retry is None:
                    self.events.publish(
                        PoolDegraded(
                            source=self.name,
                            at=self._clock.monotonic(),
                            reason=f"replacements keep failing to start: {exc.message}",
                            live_workers=len(self._workers),
                        )
                    )
                    slot.worker = None
                    return
                await self._clock.sleep(retry)
                continue
            self._counters["restarts"] += 1
            self._restarts.record_success(f"w{slot.index}", self._clock.monotonic())
            return

    def _live_count(self) -> int:
        return sum(1 for w in self._workers.values() if w.state is WorkerState.READY)

    def _recycle(self, worker: WorkerLike, reason: str) -> None:
        """Stop sending work to ``worker``, start its replacement, stop it once it is idle."""
        slot = self._slot_of.get(worker.id)
        if slot is None or slot.worker is not worker or not self._scheduler.has_worker(worker.id):
            return
        if not self._scheduler.is_accepting(worker.id):
            return  # already draining
        self._counters["recycled"] += 1
        self.events.publish(
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
        self._spawn(self._replace_recycled(slot), f"recycle-{worker.id}")

    async def _replace_recycled(self, slot: _Slot) -> None:
        try:
            await self._start_worker(slot)  # retires the old occupant once the new one serves
        except WorkerStartupError as exc:
            log.error("replacement for recycled slot w%d failed: %s", slot.index, exc)
            old = slot.worker
            if old is not None:
                await self._retire(old)

    async def _retire(self, worker: WorkerLike) -> None:
        """Wait until ``worker`` runs nothing, then stop it gracefully."""
        self._intentional.add(worker.id)
        while self._scheduler.has_worker(worker.id) and self._scheduler.in_flight(worker.id):
            waiter = asyncio.get_running_loop().create_future()
            self._drain_waiters.setdefault(worker.id, []).append(waiter)
            await waiter
        self._scheduler.remove_worker(worker.id)
        await worker.stop()

    def _kill(self, worker: WorkerLike, reason: str, *, failure: bool) -> None:
        """Kill a worker that cannot be trusted (deadline overrun, failed heartbeat).

        ``failure`` says whether the exit counts toward the restart intensity (a worker
        that stopped answering does; one killed for a caller's deadline does not).
        """
        if worker.state is WorkerState.EXITED:
            return
        if not failure:
            self._intentional.add(worker.id)
        self.events.publish(
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

    def _broken(self, worker: WorkerLike) -> None:
        """A call saw the channel break: if the process still runs, it cannot be trusted."""
        if worker.state is WorkerState.READY:
            self._kill(worker, "its channel broke while the process still ran", failure=True)

    # -- background loops ----------------------------------------------------------------------

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=f"{self.name}:{name}")
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error(
                "pool %s: background task %s failed",
                self.name,
                task.get_name(),
                exc_info=task.exception(),
            )

    async def _queue_timer(self) -> None:
        """Fail queued calls whose ``queue_timeout`` passed (reads the injected clock)."""
        assert self._timer_wake is not None
        wake = self._timer_wake
        while True:
            deadline = self._scheduler.next_deadline()
            wake.clear()
            if deadline is None:
                await wake.wait()
                continue
            delay = deadline - self._clock.monotonic()
            if delay > 0:
                sleeper = asyncio.ensure_future(self._clock.sleep(delay))
                waker = asyncio.ensure_future(wake.wait())
                try:
                    await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    sleeper.cancel()
                    waker.cancel()
                continue
            for rejected in self._scheduler.expire(self._clock.monotonic()):
                self._fail_ticket(rejected.ticket, rejected.error)

    async def _maintenance(self) -> None:
        """Heartbeats, TTL and memory checks, every ``heartbeat_interval`` (or 1 s) of the clock."""
        c = self.config
        interval = c.heartbeat_interval or min(x for x in (c.ttl, 1.0) if x)
        while True:
            await self._clock.sleep(interval)
            now = self._clock.monotonic()
            workers = [w for w in self._workers.values() if w.state is WorkerState.READY]
            if c.ttl is not None:
                for w in workers:
                    if w.ready_at is not None and now - w.ready_at >= c.ttl:
                        self._recycle(w, f"ttl ({c.ttl}s)")
            if c.memory_limit_mb is not None:
                for w, rss in await asyncio.to_thread(_rss_of, workers):
                    if rss is not None and rss > c.memory_limit_mb * 1024 * 1024:
                        self._recycle(
                            w, f"memory ({rss / 2**20:.0f} MiB > {c.memory_limit_mb} MiB)"
                        )
            if c.heartbeat_interval is not None and workers:
                await asyncio.gather(*(self._heartbeat(w) for w in workers))

    async def _heartbeat(self, worker: WorkerLike) -> None:
        try:
            await worker.ping(timeout=self.config.heartbeat_timeout)
        except (ExecutionTimeoutError, WorkerCrashedError) as exc:
            if worker.state is WorkerState.READY:
                self._kill(worker, f"heartbeat failed: {type(exc).__name__}", failure=True)

    # -- scheduling ----------------------------------------------------------------------------

    def _resolve(self, dispatch: Dispatch) -> None:
        fut: asyncio.Future[str] | None = dispatch.ticket.payload
        if fut is None or fut.done():
            # The caller went away between dispatch and now: give the slot back.
            for again in self._scheduler.release(dispatch.worker_id, self._clock.monotonic()):
                self._resolve(again)
            return
        fut.set_result(dispatch.worker_id)

    def _fail_ticket(self, ticket: Ticket, error: SnakepitError) -> None:
        fut: asyncio.Future[str] | None = ticket.payload
        if fut is not None and not fut.done():
            fut.set_exception(error)

    async def _acquire(self, ticket: Ticket) -> str:
        decision = self._scheduler.submit(ticket, self._clock.monotonic())
        if isinstance(decision, Dispatch):
            return decision.worker_id
        if isinstance(decision, Rejected):
            if isinstance(decision.error, PoolSaturatedError):
                self._counters["saturated"] += 1
            raise decision.error
        assert isinstance(decision, Queued)
        fut: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        ticket.payload = fut
        self.events.publish(
            RequestQueued(
                source=self.name,
                at=self._clock.monotonic(),
                request_id=ticket.id,
                tool=ticket.tool,
                session_id=ticket.session_id,
            )
        )
        if ticket.queue_deadline is not None and self._timer_wake is not None:
            self._timer_wake.set()
        try:
            return await fut
        except asyncio.CancelledError:
            dispatched = fut.done() and not fut.cancelled() and fut.exception() is None
            if not self._scheduler.cancel(ticket) and dispatched:
                self._release(fut.result())  # a worker was handed over as we were cancelled
            raise

    def _release(self, worker_id: str) -> None:
        known = self._scheduler.has_worker(worker_id)
        if known:
            for dispatch in self._scheduler.release(worker_id, self._clock.monotonic()):
                self._resolve(dispatch)
        if not known or not self._scheduler.in_flight(worker_id):
            for waiter in self._drain_waiters.pop(worker_id, []):
                if not waiter.done():
                    waiter.set_result(None)
        if self._scheduler.busy_workers == 0 and self._idle is not None:
            self._idle.set()
        if not known:
            return
        worker = self._workers.get(worker_id)
        limit = self.config.max_requests
        if worker is not None and limit is not None and worker.requests >= limit:
            self._recycle(worker, f"max_requests ({limit})")

    def _ticket(self, tool: str, session_id: str | None) -> Ticket:
        c = self.config
        now = self._clock.monotonic()
        return Ticket(
            id=next(self._request_ids),
            tool=tool,
            session_id=session_id,
            preferred_worker=self._affinity.get(session_id) if session_id else None,
            queue_deadline=now + c.queue_timeout if c.queue_timeout is not None else None,
        )

    def _validate(self, tool: str, args: Any) -> dict[str, Any]:
        if not isinstance(tool, str) or not tool:
            raise ToolNotFoundError(
                f"tool must be a non-empty string, got {tool!r}",
                tool=tool,
                available=sorted(self._tools),
            )
        if args is None:
            args = {}
        elif not isinstance(args, dict):
            from snakepit.errors import InvalidArgumentsError

            raise InvalidArgumentsError(
                f"arguments of tool {tool!r} must be a dict of keyword arguments, got "
                f"{type(args).__name__}",
                tool=tool,
                argument=None,
            )
        spec = self._tools.get(tool)
        if spec is None:
            raise ToolNotFoundError(
                f"pool {self.name!r} ({self.config.adapter}) has no tool {tool!r}; available: "
                f"{', '.join(sorted(self._tools)) or 'none'}",
                tool=tool,
                available=sorted(self._tools),
            )
        spec.check_args(args, worker="(host)")
        checked: dict[str, Any] = args
        return checked

    def _deadline(self, timeout: Any) -> float | None:
        if timeout is DEFAULT:
            return self.config.timeout
        if timeout is not None and (
            not isinstance(timeout, int | float) or isinstance(timeout, bool) or timeout <= 0
        ):
            raise ValueError(f"timeout must be a number of seconds > 0 or None, got {timeout!r}")
        return timeout

    def _count_failure(self, ticket: Ticket, worker_id: str | None, exc: BaseException) -> None:
        self._counters["errors"] += 1
        self.events.publish(
            RequestFailed(
                source=self.name,
                at=self._clock.monotonic(),
                request_id=ticket.id,
                tool=ticket.tool,
                worker_id=worker_id,
                error=type(exc).__name__,
                message=str(exc).split("\n", 1)[0],
            )
        )

    # -- calls ---------------------------------------------------------------------------------

    async def execute(
        self,
        tool: str,
        args: dict[str, Any] | None = None,
        *,
        timeout: float | None = DEFAULT,
        session_id: str | None = None,
    ) -> Any:
        """Run ``tool`` with keyword ``args`` on a worker and return its result.

        Args:
            tool: the tool's name.
            args: keyword arguments (JSON values and bytes).
            timeout: seconds before the call fails and its worker is replaced
                (default: the pool's ``timeout``; None: no deadline).
            session_id: run within this session (affinity to its last worker).

        Raises:
            ToolNotFoundError, InvalidArgumentsError, SerializationError: a bad request.
            ToolError: the tool raised in the worker (remote type and traceback attached).
            ExecutionTimeoutError: past ``timeout``; the worker was killed and is replaced.
            WorkerCrashedError: the worker died during the call; it is replaced.
            PoolSaturatedError, QueueTimeoutError, WorkerBusyError,
            SessionWorkerUnavailableError: no worker could take the call.
            SessionQuotaError: ``session_id`` is new and ``max_sessions`` sessions are live.
            ValueError: ``session_id`` is malformed (``[A-Za-z0-9_.:-]{1,128}``).
            PoolClosedError: the pool is not running.
        """
        self._check_running()
        args = self._validate(tool, args)
        deadline = self._deadline(timeout)
        if session_id is not None:
            await self._store.get_or_create(session_id)  # creates or touches it; may hit the quota
        ticket = self._ticket(tool, session_id)
        self._counters["requests"] += 1
        try:
            worker_id = await self._acquire(ticket)
        except SnakepitError as exc:
            self._count_failure(ticket, None, exc)
            raise
        worker = self._workers[worker_id]
        started = self._clock.monotonic()
        self.events.publish(
            RequestDispatched(
                source=self.name,
                at=started,
                request_id=ticket.id,
                tool=tool,
                worker_id=worker_id,
                queued_seconds=started - ticket.enqueued_at,
            )
        )
        try:
            result = await worker.execute(
                tool, args, timeout=deadline, session_id=session_id, request_id=ticket.id
            )
        except ExecutionTimeoutError as exc:
            self._counters["timeouts"] += 1
            self._count_failure(ticket, worker_id, exc)
            self._kill(
                worker,
                f"call {ticket.id} ({tool!r}) ran past its {deadline}s deadline",
                failure=False,
            )
            raise
        except WorkerCrashedError as exc:
            self._count_failure(ticket, worker_id, exc)
            self._broken(worker)
            raise
        except SnakepitError as exc:
            self._count_failure(ticket, worker_id, exc)
            raise
        finally:
            self._release(worker_id)
        if session_id is not None:
            await self._pin(session_id, worker_id)
        self._counters["completed"] += 1
        self.events.publish(
            RequestCompleted(
                source=self.name,
                at=self._clock.monotonic(),
                request_id=ticket.id,
                tool=tool,
                worker_id=worker_id,
                seconds=self._clock.monotonic() - started,
            )
        )
        return result

    async def stream(
        self,
        tool: str,
        args: dict[str, Any] | None = None,
        *,
        timeout: float | None = DEFAULT,
        session_id: str | None = None,
    ) -> AsyncIterator[Any]:
        """Run a streaming tool and yield its chunks in order.

        The worker is held until the stream ends or the iterator is closed;
        ``timeout`` bounds the whole stream. Raises as :meth:`execute`.
        """
        self._check_running()
        args = self._validate(tool, args)
        deadline = self._deadline(timeout)
        if session_id is not None:
            await self._store.get_or_create(session_id)  # creates or touches it; may hit the quota
        ticket = self._ticket(tool, session_id)
        self._counters["requests"] += 1
        try:
            worker_id = await self._acquire(ticket)
        except SnakepitError as exc:
            self._count_failure(ticket, None, exc)
            raise
        worker = self._workers[worker_id]
        self.events.publish(
            RequestDispatched(
                source=self.name,
                at=self._clock.monotonic(),
                request_id=ticket.id,
                tool=tool,
                worker_id=worker_id,
            )
        )
        started = self._clock.monotonic()
        chunks = worker.stream(
            tool, args, timeout=deadline, session_id=session_id, request_id=ticket.id
        )
        try:
            async for chunk in chunks:
                yield chunk
        except ExecutionTimeoutError as exc:
            self._counters["timeouts"] += 1
            self._count_failure(ticket, worker_id, exc)
            self._kill(
                worker,
                f"stream {ticket.id} ({tool!r}) ran past its {deadline}s deadline",
                failure=False,
            )
            raise
        except WorkerCrashedError as exc:
            self._count_failure(ticket, worker_id, exc)
            self._broken(worker)
            raise
        except SnakepitError as exc:
            self._count_failure(ticket, worker_id, exc)
            raise
        finally:
            with contextlib.suppress(Exception):
                await chunks.aclose()  # type: ignore[attr-defined]
            self._release(worker_id)
        if session_id is not None:
            await self._pin(session_id, worker_id)
        self._counters["completed"] += 1
        self.events.publish(
            RequestCompleted(
                source=self.name,
                at=self._clock.monotonic(),
                request_id=ticket.id,
                tool=tool,
                worker_id=worker_id,
                seconds=self._clock.monotonic() - started,
            )
        )

    def session(self, session_id: str | None = None) -> Session:
        """A handle on one session: its calls (affinity to its worker) and its variables.

        Use it directly or as ``async with pool.session("user-1") as s:``. The session
        is created in the pool's store on first use (a call, ``initialize()`` or
        ``variables.register``) and expires after ``session_ttl`` seconds unused.

        Args:
            session_id: ``[A-Za-z0-9_.:-]{1,128}``; None for a fresh generated id.

        Raises:
            ValueError: ``session_id`` is malformed.
        """
        from snakepit.pool._session import Session

        if session_id is None:
            session_id = f"s-{uuid.uuid4().hex[:12]}"
        return Session(self, validate_session_id(session_id))

    @property
    def sessions(self) -> Sessions:
        """The pool's live sessions: ``await pool.sessions.list()``, ``.get(id)``, ``.delete(id)``."""
        if self._sessions is None:
            from snakepit.pool._session import Sessions

            self._sessions = Sessions(self)
        return self._sessions

    def register_host_tool(
        self, name: str, fn: Callable[..., Any], *, description: str | None = None
    ) -> None:
        """Make ``fn`` callable from worker code: ``ctx.call_host_tool(name, {...})``.

        ``fn`` is called with the keyword arguments the worker sends; a sync
        ``fn`` runs on a thread, an ``async`` one on the pool's loop. Its return
        value goes back to the worker (JSON values and bytes); what it raises
        arrives in the worker as ``HostToolError`` with the host traceback.

        Args:
            name: ``[A-Za-z_][A-Za-z0-9_.-]{0,127}``, unique in this pool.
            fn: a function or coroutine function.
            description: reported by ``ListHostTools``; default: the docstring's first line.

        Raises:
            ValueError: the name is malformed or already registered.
            TypeError: ``fn`` is not callable.
        """
        self._host_tools.register(name, fn, description=description)

    def unregister_host_tool(self, name: str) -> bool:
        """Remove a host tool; True when it was registered."""
        return self._host_tools.unregister(name)

    @property
    def host_tools(self) -> list[str]:
        """The names of the registered host tools, sorted."""
        return self._host_tools.names()

    async def _pin(self, session_id: str, worker_id: str) -> None:
        self._affinity[session_id] = worker_id
        with contextlib.suppress(SessionNotFoundError):  # deleted while the call ran
            await self._store.set_affinity(session_id, worker_id)

    def _on_session_gone(self, event: Event) -> None:
        self._affinity.pop(getattr(event, "session_id", ""), None)

    async def recover(self) -> None:
        """Leave the degraded state: forget the restart history and refill empty slots.

        Raises:
            PoolClosedError: the pool is not running.
            WorkerStartupError: a slot's worker still cannot start.
        """
        self._check_running()
        self._restarts.reset()
        empty = [slot for slot in self._slots if slot.worker is None]
        for slot in empty:
            await self._start_worker(slot)
        self.events.publish(
            PoolRecovered(
                source=self.name, at=self._clock.monotonic(), live_workers=self._live_count()
            )
        )

    # -- observation ---------------------------------------------------------------------------

    @property
    def state(self) -> str:
        return self._state

    @property
    def tools(self) -> dict[str, ToolSpec]:
        """The tools the workers serve, by name (known once the pool has started)."""
        return dict(self._tools)

    def affinity_worker(self, session_id: str) -> str | None:
        """The worker a session last ran on, if any."""
        return self._affinity.get(session_id)

    def forget_session(self, session_id: str) -> None:
        self._affinity.pop(session_id, None)

    def stats(self) -> PoolStats:
        """A frozen snapshot of the pool's counters and occupancy."""
        s = self._scheduler
        live = self._live_count()
        return PoolStats(
            name=self.name,
            state=self._state,
            size=self.config.size,
            live_workers=live,
            busy=s.busy_workers,
            idle=s.idle_count,
            queued=s.queued,
            degraded=self._restarts.degraded,
            **self._counters,
        )

    def workers(self) -> list[WorkerInfo]:
        """One ``WorkerInfo`` per worker process the pool holds now."""
        out = []
        for worker_id, w in sorted(self._workers.items()):
            slot = self._slot_of.get(worker_id)
            known = self._scheduler.has_worker(worker_id)
            out.append(
                WorkerInfo(
                    id=worker_id,
                    slot=slot.index if slot else 0,
                    pid=w.pid,
                    state=w.state.value,
                    address=w.address,
                    requests=w.requests,
                    in_flight=self._scheduler.in_flight(worker_id) if known else 0,
                    accepting=self._scheduler.is_accepting(worker_id) if known else False,
                )
            )
        return out

    def __repr__(self) -> str:
        s = self._scheduler
        flag = " DEGRADED" if self._restarts.degraded else ""
        return (
            f"<Pool {self.name} {self._state}{flag} [busy {s.busy_workers}, idle {s.idle_count}"
            f" | queued {s.queued}] workers={self._live_count()}/{self.config.size}>"
        )


def _rss_of(workers: list[WorkerLike]) -> list[tuple[WorkerLike, int | None]]:
    import psutil

    out: list[tuple[WorkerLike, int | None]] = []
    for w in workers:
        try:
            out.append((w, psutil.Process(w.pid).memory_info().rss if w.pid else None))
        except psutil.Error:
            out.append((w, None))
    return out
