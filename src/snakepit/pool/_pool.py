"""``Pool``: the supervised pool of worker processes that users call.

The pool owns the scheduler (which decides), the supervisor (which keeps
the worker slots filled), the session store and host bridge, the process
registry and the event bus. This module applies the scheduler's decisions
to callers: it resolves waiting callers' futures, runs each call on the
worker it was given, and reports what happened.

Life of a call: ``execute`` validates the tool and arguments against the
workers' specs (and that the codec can carry them), asks the scheduler for a
worker (dispatch now, queue, or reject), runs the call on that worker with
its deadline, and releases the slot, which may dispatch the next queued
call. A deadline overrun kills the worker (it may be stuck in native code);
a crash fails only the calls on that worker; the supervisor replaces both.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import os
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal, ParamSpec, TypeVar

from snakepit import codec
from snakepit.bridge._host_tools import HostToolRegistry
from snakepit.bridge._memory import InMemorySessionStore, validate_session_id
from snakepit.bridge._service import HostBridge
from snakepit.bridge._types import short_repr
from snakepit.clock import Clock, SystemClock
from snakepit.codec import Encoding
from snakepit.config import PoolConfig
from snakepit.errors import (
    ExecutionTimeoutError,
    InvalidArgumentsError,
    InvalidValueError,
    PoolClosedError,
    PoolSaturatedError,
    QueueTimeoutError,
    RequestError,
    SessionNotFoundError,
    SessionStoreUnavailableError,
    SnakepitError,
    ToolError,
    ToolNotFoundError,
    WorkerCrashedError,
    brief,
)
from snakepit.events import (
    EventBus,
    PoolClosed,
    PoolClosing,
    PoolStarted,
    RequestCancelled,
    RequestCompleted,
    RequestDispatched,
    RequestFailed,
    RequestQueued,
    SessionDeleted,
    SessionExpired,
)
from snakepit.pool._placement import placements_for
from snakepit.pool._status import StatusPublisher, remove_dead_statuses
from snakepit.pool._supervisor import Supervisor
from snakepit.pool._types import PoolStats, WorkerFactory, WorkerInfo, WorkerLike
from snakepit.pool.scheduler import Dispatch, Queued, Rejected, Scheduler, Ticket
from snakepit.worker._attached import AttachedWorkerHandle
from snakepit.worker._forkserver import ForkServer, effective_start_method
from snakepit.worker._handle import WorkerHandle, WorkerOptions, WorkerState
from snakepit.worker._registry import ProcessRegistry
from snakepit.worker._runtime import make_runtime_dir, remove_runtime_dir, sweep_runtime_dirs
from snakepit.worker._transport import MAX_DEADLINE

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterable, Iterator

    from snakepit.bridge._store import SessionStore
    from snakepit.events import Event
    from snakepit.pool._session import Session, Sessions
    from snakepit.worker._transport import DescribedTool

__all__ = ["Pool"]

log = logging.getLogger("snakepit.pool")


class _Default:
    def __repr__(self) -> str:
        return "<pool default>"


DEFAULT: Final[Any] = _Default()
P = ParamSpec("P")
T = TypeVar("T")
_pool_ids = itertools.count(1)
PoolState = Literal["new", "starting", "running", "closing", "closed"]


def _handle_factory(
    worker_id: str, options: WorkerOptions, *, events: EventBus, clock: Clock, source: str
) -> WorkerLike:
    if options.placement is not None:  # remote or Ray-placed: not our child process
        return AttachedWorkerHandle(
            worker_id, options, options.placement(), events=events, clock=clock, source=source
        )
    return WorkerHandle(worker_id, options, events=events, clock=clock, source=source)


def _sweep_leftovers(registry: ProcessRegistry, runtime_base: str | None) -> None:
    """What dead hosts left: their processes (by the registry), their runtime directories
    and their status files."""
    registry.open()
    sweep_runtime_dirs(runtime_base)
    remove_dead_statuses()


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
        self._status = StatusPublisher(self)  # `snakepit status` reads it from elsewhere
        self._clock = clock or SystemClock()
        self._state: PoolState = "new"
        self._scheduler = Scheduler(
            name=self.name, max_queue=self.config.max_queue, affinity=self.config.affinity
        )
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
                "queue_timeouts",
            ),
            0,
        )
        self._supervisor = Supervisor(
            name=self.name,
            config=self.config,
            clock=self._clock,
            events=self.events,
            scheduler=self._scheduler,
            factory=worker_factory or _handle_factory,
            options=self._options,
            spawn=self._spawn,
            resolve=self._resolve,
            reject=self._fail_ticket,
            counters=self._counters,
        )
        self._tools: dict[str, DescribedTool] = {}
        self._affinity: dict[str, str] = {}
        self._request_ids = itertools.count(1)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._timer_wake: asyncio.Event | None = None
        self._idle: asyncio.Event | None = None
        self._closed_event: asyncio.Event | None = None
        self._runtime_dir: Path | None = None
        self._fork_server: ForkServer | None = None
        self._placements = placements_for(self.config, self.name)
        self._store, self._owns_store = self._make_store()
        self._host_tools = HostToolRegistry(self.name)
        self._bridge: HostBridge | None = None
        self._sessions: Sessions | None = None
        self.events.add_listener(self._on_session_gone, (SessionExpired, SessionDeleted))

    def _make_store(self) -> tuple[SessionStore, bool]:
        """The session store the config names, and whether this pool runs and closes it."""
        spec = self.config.session_store
        if spec is None:
            store: SessionStore = InMemorySessionStore(
                self._clock,
                ttl=self.config.session_ttl,
                max_sessions=self.config.max_sessions,
                events=self.events,
                name=self.name,
            )
            return store, True
        if isinstance(spec, str):
            from snakepit.bridge._redis_store import RedisSessionStore

            store = RedisSessionStore(
                spec,
                clock=self._clock,
                ttl=self.config.session_ttl,
                max_sessions=self.config.max_sessions,
                events=self.events,
                name=self.name,
            )
            return store, True
        return spec, False

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
        try:
            self._runtime_dir = make_runtime_dir(self.name, self.config.runtime_dir)
            registry = ProcessRegistry(
                f"{self.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}",
                Path(self.config.registry_dir) if self.config.registry_dir else None,
                runtime_dir=self._runtime_dir,
            )
            self._supervisor.registry = registry
            await asyncio.to_thread(_sweep_leftovers, registry, self.config.runtime_dir)
            if self._placements is not None:
                await self._placements.open()
            elif (
                effective_start_method(self.config.start_method, self.config.python) == "forkserver"
            ):
                self._fork_server = ForkServer(
                    self.config.adapter,
                    python=self.config.python,
                    registry=registry,
                    startup_timeout=self.config.startup_timeout,
                    label=f"pool {self.name!r}",
                    grpc=self.config.transport != "local",
                )
            # Workers on other nodes reach the bridge over TCP, at this node's address.
            bridge_host = self._placements.bridge_host() if self._placements else None
            self._bridge = HostBridge(
                self._store,
                self._host_tools,
                name=self.name,
                transport="tcp" if bridge_host else self.config.transport,
                tcp_host=bridge_host or "127.0.0.1",
                max_message_bytes=self.config.max_message_mb * 1024 * 1024,
                allow_pickle=self.config.serialization == "pickle",
            )
            await self._bridge.start(self._runtime_dir)
            if self._placements is not None and bridge_host:
                self._placements.attach_bridge(self._bridge.worker_env(), self._bridge.token)
            await self._supervisor.start_all()
        except BaseException:
            await self._teardown(grace=0.0)
            self._finish_close()
            raise
        first = next(iter(self._supervisor.workers.values()))
        self._tools = dict(first.tools)
        self._state = "running"
        self._spawn(self._queue_timer(), "queue-timer")
        if self._owns_store:
            self._spawn(self._store.run_expiry(), "session-expiry")
        if self.config.heartbeat_interval or self.config.ttl or self.config.memory_limit_mb:
            self._spawn(self._supervisor.maintain(), "maintenance")
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
        self._finish_close()

    def _finish_close(self) -> None:
        self._state = "closed"
        self.events.publish(PoolClosed(source=self.name, at=self._clock.monotonic()))
        self.events.close()
        if self._closed_event is not None:
            self._closed_event.set()

    async def _teardown(self, grace: float) -> None:
        self._supervisor.running = False  # no replacement starts from here on
        current = asyncio.current_task()
        for task in list(self._tasks):
            if task is not current:
                task.cancel()
        await self._supervisor.stop_all(grace)
        if self._placements is not None:
            await self._placements.close()
        pending = [t for t in self._tasks if t is not current and not t.done()]
        if pending:
            await asyncio.wait(pending)
        if self._fork_server is not None:
            await self._fork_server.close()
        if self._supervisor.registry is not None:
            self._supervisor.registry.close()
        if self._owns_store:
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

    def _options(self, slot: int = 0) -> WorkerOptions:
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
            launcher=self._fork_server,
            host_token=self._bridge.token if self._bridge is not None else None,
            placement=self._placements.factory(slot) if self._placements is not None else None,
            host=self._bridge.ops if self._bridge is not None else None,
        )

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

    async def recover(self) -> None:
        """Leave the degraded state: forget the restart history and refill empty slots.

        The pool also tries this by itself once ``restart_window`` has passed.

        Raises:
            PoolClosedError: the pool is not running.
            WorkerStartupError: a slot's worker still cannot start.
        """
        self._check_running()
        await self._supervisor.recover()

    # -- scheduling ----------------------------------------------------------------------------

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
                self._counters["queue_timeouts"] += 1
                self._fail_ticket(rejected.ticket, rejected.error)

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
        if self._scheduler.has_worker(worker_id):
            for dispatch in self._scheduler.release(worker_id, self._clock.monotonic()):
                self._resolve(dispatch)
            self._supervisor.released(worker_id)
        if self._state == "closing" and self._idle is not None and not self._scheduler.busy_workers:
            self._idle.set()

    # -- one call --------------------------------------------------------------------------------

    def _validate(self, tool: str, args: Any, *, streaming: bool) -> dict[str, Any]:
        # What the caller passed is echoed cut short: a 1 MiB name makes no 1 MiB message.
        if not isinstance(tool, str) or not tool:
            raise ToolNotFoundError(
                f"tool must be a non-empty string, got {brief(tool)}",
                tool=tool,
                available=sorted(self._tools),
            )
        if args is None:
            args = {}
        elif not isinstance(args, dict):
            raise InvalidArgumentsError(
                f"arguments of tool {short_repr(tool)} must be a dict of keyword arguments, got "
                f"{type(args).__name__}",
                tool=tool,
                argument=None,
            )
        spec = self._tools.get(tool)
        if spec is None:
            raise ToolNotFoundError(
                f"pool {self.name!r} ({self.config.adapter}) has no tool {short_repr(tool)}; "
                f"available: {', '.join(sorted(self._tools)) or 'none'}",
                tool=tool,
                available=sorted(self._tools),
            )
        if spec.streaming != streaming:
            use, other = ("stream", "execute") if spec.streaming else ("execute", "stream")
            raise RequestError(
                f"tool {tool!r} is {'a streaming tool (a generator)' if spec.streaming else 'not a streaming tool (not a generator)'}; "
                f"call it with pool.{use}({tool!r}, ...), not pool.{other}()",
                tool=tool,
            )
        spec.check_args(args, worker="(host)")
        if self.config.serialization == "json":
            codec.validate(args, what=f"args of tool {tool!r}")  # before it waits for a worker
        checked: dict[str, Any] = args
        return checked

    def _deadline(self, timeout: Any, tool: str = "") -> float | None:
        """The call's deadline in seconds, or None for none (see ``execute``'s ``timeout``).

        Raises:
            RequestError: ``timeout`` is not a number > 0, None or ``math.inf`` (NaN included).
        """
        if timeout is DEFAULT:
            timeout = self.config.timeout
        if timeout is None:
            return None
        if (
            not isinstance(timeout, int | float)
            or isinstance(timeout, bool)
            or (isinstance(timeout, float) and math.isnan(timeout))
            or timeout <= 0
        ):
            raise InvalidValueError(
                f"timeout of {brief(tool or 'the call')} must be a number of seconds > 0, or "
                f"None or math.inf for no deadline; got {brief(timeout)}",
                argument="timeout",
                tool=tool,
            )
        if timeout > MAX_DEADLINE:  # math.inf, or longer than any clock can wait for
            return None
        return float(timeout)

    def _failed(self, ticket: Ticket, worker_id: str | None, exc: BaseException) -> None:
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

    def _abandoned(self, ticket: Ticket, worker_id: str | None, exc: BaseException) -> None:
        """A call ended by something other than its own error: a cancellation, a stream
        closed early, or an unexpected exception."""
        if isinstance(exc, Exception):
            self._failed(ticket, worker_id, exc)
        elif self.events.wants(RequestCancelled):
            self.events.publish(
                RequestCancelled(
                    source=self.name,
                    at=self._clock.monotonic(),
                    request_id=ticket.id,
                    tool=ticket.tool,
                    worker_id=worker_id,
                )
            )

    async def _begin(
        self,
        tool: str,
        args: Any,
        timeout: Any,
        session_id: str | None,
        *,
        streaming: bool = False,
        began: float | None = None,
    ) -> tuple[Ticket, WorkerLike, dict[str, Any], float | None]:
        """Validate a call and wait for a worker; the caller must ``_release`` it.

        ``timeout`` runs from ``began`` (default: now) and bounds the queue wait too; the
        deadline returned is what is left of it for the worker.
        """
        self._check_running()
        args = self._validate(tool, args, streaming=streaming)
        deadline = self._deadline(timeout, tool)
        if began is None:
            began = self._clock.monotonic()
        if session_id is not None:
            await self._store.get_or_create(session_id)  # creates or touches it; may hit the quota
        ticket = Ticket(
            id=next(self._request_ids),
            tool=tool,
            session_id=session_id,
            preferred_worker=self._affinity.get(session_id) if session_id else None,
            queue_deadline=_earliest(
                None
                if self.config.queue_timeout is None
                else self._clock.monotonic() + self.config.queue_timeout,
                None if deadline is None else began + deadline,
            ),
        )
        self._counters["requests"] += 1
        try:
            unservable = self._supervisor.unservable()
            if unservable is not None:
                raise unservable
            worker_id = await self._acquire(ticket)
            worker = self._supervisor.workers.get(worker_id)
            if worker is None:  # it exited between being handed over and now
                self._release(worker_id)
                raise WorkerCrashedError(
                    f"worker {worker_id!r} exited before call {ticket.id} ({tool!r}) reached "
                    "it; the call may be retried",
                    worker_id=worker_id,
                    tool=tool,
                )
        except QueueTimeoutError as exc:
            if deadline is not None and ticket.queue_deadline == began + deadline:
                exc = QueueTimeoutError(  # the call's own timeout ran out in the queue
                    f"call {ticket.id} ({tool!r}) waited its whole timeout={deadline}s in the "
                    f"queue of pool {self.name!r} without reaching a worker; raise timeout, "
                    "grow the pool, or send fewer calls at once",
                    **{**exc.details, "timeout": deadline},
                )
            self._failed(ticket, None, exc)
            raise exc from None
        except SnakepitError as exc:
            self._failed(ticket, None, exc)
            raise
        except BaseException as exc:
            self._abandoned(ticket, None, exc)
            raise
        if deadline is not None:
            # What the queue left of the timeout (never zero: gRPC reads 0 as "no deadline").
            deadline = max(deadline - (self._clock.monotonic() - began), 1e-3)
        self._supervisor.dispatched(worker)
        if self.events.wants(RequestDispatched):
            now = self._clock.monotonic()
            self.events.publish(
                RequestDispatched(
                    source=self.name,
                    at=now,
                    request_id=ticket.id,
                    tool=tool,
                    worker_id=worker_id,
                    queued_seconds=now - ticket.enqueued_at,
                )
            )
        return ticket, worker, args, deadline

    @contextlib.contextmanager
    def _running(
        self, ticket: Ticket, worker: WorkerLike, deadline: float | None, *, unary: bool
    ) -> Iterator[None]:
        """What every call does when it fails on its worker, and the release at its end."""
        try:
            yield
        except BaseException as exc:
            self._call_failed(ticket, worker, deadline, exc, unary=unary)
            raise
        finally:
            self._release(worker.id)

    def _call_failed(
        self,
        ticket: Ticket,
        worker: WorkerLike,
        deadline: float | None,
        exc: BaseException,
        *,
        unary: bool,
    ) -> None:
        """Count a call's failure and act on what it says about its worker."""
        if not isinstance(exc, SnakepitError):
            self._abandoned(ticket, worker.id, exc)
        if isinstance(exc, ExecutionTimeoutError):
            self._counters["timeouts"] += 1
            self._failed(ticket, worker.id, exc)
            self._supervisor.kill(
                worker,
                f"call {ticket.id} ({ticket.tool!r}) ran past its {deadline}s deadline",
                failure=False,
            )
        elif isinstance(exc, WorkerCrashedError):
            self._failed(ticket, worker.id, exc)
            self._supervisor.broken(worker)
        elif isinstance(exc, SnakepitError):
            self._failed(ticket, worker.id, exc)
        elif isinstance(exc, asyncio.CancelledError) and unary and self._runs_on_thread(ticket):
            # A synchronous tool cannot be interrupted in its thread: the worker may run
            # it for as long as it takes, so it is replaced rather than handed new calls.
            self._supervisor.kill(
                worker,
                f"call {ticket.id} ({ticket.tool!r}) was cancelled while running",
                failure=False,
            )

    def _runs_on_thread(self, ticket: Ticket) -> bool:
        spec = self._tools.get(ticket.tool)
        return spec is not None and not spec.is_async

    def _must_settle(self, ticket: Ticket) -> bool:
        """An abandoned call may still hold a tool thread (a closing pool stops its workers)."""
        return self._state == "running" and self._runs_on_thread(ticket)

    async def _done(self, ticket: Ticket, worker: WorkerLike, started: float) -> None:
        if ticket.session_id is not None:
            try:
                await self._pin(ticket.session_id, worker.id)
            except BaseException as exc:
                self._abandoned(ticket, worker.id, exc)
                raise
        self._counters["completed"] += 1
        if self.events.wants(RequestCompleted):
            now = self._clock.monotonic()
            self.events.publish(
                RequestCompleted(
                    source=self.name,
                    at=now,
                    request_id=ticket.id,
                    tool=ticket.tool,
                    worker_id=worker.id,
                    seconds=now - started,
                )
            )

    async def execute(
        self,
        tool: str,
        args: dict[str, Any] | None = None,
        *,
        timeout: float | None = DEFAULT,
        session_id: str | None = None,
        retries: int | None = None,
    ) -> Any:
        """Run ``tool`` with keyword ``args`` on a worker and return its result.

        Args:
            tool: the tool's name.
            args: keyword arguments (JSON values and bytes).
            timeout: seconds the whole call may take, queue wait included (default: the
                pool's ``timeout``). Past it while running, the call fails and its worker is
                replaced; past it while queued, ``QueueTimeoutError``. None or ``math.inf``
                means no deadline, and so does any value above ``MAX_DEADLINE`` (10**9 s,
                about 31 years), which no deadline can represent; NaN, 0, negatives and
                non-numbers raise ``InvalidValueError`` (a ``RequestError``).
            session_id: run within this session (affinity to its last worker).
            retries: times to run the call again on a fresh worker if its worker crashes
                (default: ``idempotent_retries`` for an ``@tool(idempotent=True)`` tool, else
                0). Only crashes are retried, within the same ``timeout``.

        Raises:
            ToolNotFoundError, InvalidArgumentsError, SerializationError: a bad request.
            InvalidValueError: ``timeout`` is not a number > 0, None or ``math.inf``.
            ToolError: the tool raised in the worker (remote type and traceback attached).
            ExecutionTimeoutError: past ``timeout``; the worker was killed and is replaced.
            WorkerCrashedError: the worker died during the call (each attempt's, with
                ``retries``); it is replaced. ``attempts`` says how many ran.
            RequestError: ``tool`` is a streaming tool (use :meth:`stream`).
            PoolSaturatedError, QueueTimeoutError, WorkerBusyError,
            SessionWorkerUnavailableError, PoolDegradedError: no worker could take the call.
            SessionQuotaError: ``session_id`` is new and ``max_sessions`` sessions are live.
            InvalidValueError: ``session_id`` is malformed (``[A-Za-z0-9_.:-]{1,128}``) or
                ``retries`` is not an integer >= 0.
            PoolClosedError: the pool is not running.
        """
        began = self._clock.monotonic()
        budget = self._retries(tool, retries)
        crashes: list[WorkerCrashedError] = []
        while True:
            try:
                ticket, worker, checked, deadline = await self._begin(
                    tool, args, timeout, session_id, began=began
                )
                started = self._clock.monotonic()
                with self._running(ticket, worker, deadline, unary=True):
                    result = await worker.execute(
                        tool, checked, timeout=deadline, session_id=session_id, request_id=ticket.id
                    )
            except WorkerCrashedError as exc:
                crashes.append(exc)
                if len(crashes) > budget:
                    raise _after_attempts(crashes, budget) from exc
                log.info("pool %s: retrying %r on a fresh worker after: %s", self.name, tool, exc)
                continue
            await self._done(ticket, worker, started)
            return result

    def _retries(self, tool: str, retries: int | None) -> int:
        if retries is None:
            # A malformed tool name is refused by _validate, with its own message.
            spec = self._tools.get(tool) if isinstance(tool, str) else None
            return self.config.idempotent_retries if spec is not None and spec.idempotent else 0
        if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
            raise InvalidValueError(
                f"retries must be an integer >= 0 or None, got {brief(retries)}",
                argument="retries",
            )
        return retries

    async def stream(
        self,
        tool: str,
        args: dict[str, Any] | None = None,
        *,
        timeout: float | None = DEFAULT,
        session_id: str | None = None,
    ) -> AsyncIterator[Any]:
        """Run a streaming tool and yield its chunks in order.

        The worker is held until the stream ends or the iterator is closed, and never
        past ``timeout``, which bounds the whole stream, queue wait included: if it passes
        while the consumer holds the iterator without reading, the call is ended and the
        worker freed at once, and the next read raises ``ExecutionTimeoutError``. Streams
        are never retried (chunks may already have been consumed).

        A synchronous generator cannot be interrupted in its thread: when a stream ends
        early (closed, cancelled, past its deadline), the worker's slot is held until the
        generator has stopped at its next chunk; if it has not within ``shutdown_grace``,
        the worker is replaced (recycled), so no later call waits behind abandoned work.

        Raises as :meth:`execute`, and ``RequestError`` when ``tool`` is not a streaming
        tool (use :meth:`execute`).
        """
        ticket, worker, args, deadline = await self._begin(
            tool, args, timeout, session_id, streaming=True
        )
        started = self._clock.monotonic()
        chunks = worker.stream(
            tool, args, timeout=deadline, session_id=session_id, request_id=ticket.id
        )
        hold = _StreamHold()
        timer = None
        if deadline is not None:  # real time, like the deadline gRPC enforces
            timer = asyncio.get_running_loop().call_later(
                deadline, self._stream_deadline, hold, ticket, worker, chunks, deadline
            )
        ended = False  # the tool's code is over: its stream ended, it raised, or it was killed
        try:
            hold.reading = True
            async for chunk in chunks:
                if hold.overdue:  # the deadline passed while this chunk was on its way
                    raise _stream_timeout(ticket, worker, deadline, held=False)
                hold.reading = False
                yield chunk
                if hold.expired:
                    raise _stream_timeout(ticket, worker, deadline, held=True)
                hold.reading = True
            ended = True
        except BaseException as exc:
            if not hold.expired:  # else the deadline already counted it
                self._call_failed(ticket, worker, deadline, exc, unary=False)
                ended = isinstance(exc, ToolError | ExecutionTimeoutError | WorkerCrashedError)
            raise
        finally:
            if timer is not None:
                timer.cancel()
            if not hold.expired:  # else the deadline took the slot over
                with contextlib.suppress(Exception):
                    await chunks.aclose()  # type: ignore[attr-defined]
                if ended or not self._must_settle(ticket):
                    self._release(worker.id)
                else:
                    self._spawn(self._settle(ticket, worker), f"settle-{ticket.id}")
        await self._done(ticket, worker, started)

    # -- plain functions (see snakepit._executor) ---------------------------------------------

    @classmethod
    def for_functions(
        cls,
        *,
        initializer: Callable[..., object] | None = None,
        initargs: tuple[Any, ...] = (),
        **options: Any,
    ) -> Pool:
        """A pool whose workers run plain functions: ``await pool.submit(fn, *args)``.

        Its adapter is the built-in function runner and its ``timeout`` defaults to None
        (set one to bound each function). ``initializer(*initargs)`` runs once in every
        worker process; if it raises, ``start()`` raises ``WorkerStartupError``.

        Raises:
            ValueError: an option is invalid.
            TypeError: ``initializer`` is not callable.
            SerializationError: the initializer or its arguments cannot be pickled.
        """
        from snakepit._executor import function_pool_options

        return cls(**function_pool_options(initializer, initargs, options))

    async def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn(*args, **kwargs)`` on a worker and return its value (``for_functions`` pools).

        The function and arguments are pickled (lambdas and closures with cloudpickle).
        What ``fn`` raises is raised here as itself, with the worker's traceback as its
        ``__cause__``; if it cannot be unpickled here, a ``ToolError`` carries it.

        Raises:
            BaseException: what ``fn`` raised.
            SerializationError: the call or its value cannot be pickled.
            ToolNotFoundError: the pool was not made by ``Pool.for_functions``.
            ExecutionTimeoutError, WorkerCrashedError, CapacityError, PoolClosedError:
                as :meth:`execute`.
        """
        from snakepit._executor import callable_name, encode_call, run_function

        value: T = await run_function(self, encode_call(fn, args, kwargs), callable_name(fn))
        return value

    def map(
        self,
        fn: Callable[..., T],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        chunksize: int = 1,
    ) -> AsyncIterator[T]:
        """``async for value in pool.map(fn, xs)``: ``fn`` over the iterables, in order.

        A few calls per worker run ahead of the consumer; closing the iterator cancels
        them. ``timeout`` bounds the whole map, from the first ``__anext__``.

        Raises:
            ValueError: ``chunksize`` < 1 (on iteration).
            TimeoutError: the results took longer than ``timeout``.
            BaseException: the first failing call's error, at its place in the order.
        """
        from snakepit._executor import map_functions

        return map_functions(self, fn, iterables, timeout=timeout, chunksize=chunksize)

    def _stream_deadline(
        self,
        hold: _StreamHold,
        ticket: Ticket,
        worker: WorkerLike,
        chunks: AsyncIterator[Any],
        deadline: float,
    ) -> None:
        """A stream's deadline passed. While a read is under way, gRPC's own deadline ends
        it; otherwise its consumer holds the stream without reading: end it here."""
        hold.overdue = True
        if hold.reading:
            return
        hold.expired = True
        self._counters["timeouts"] += 1
        self._failed(ticket, worker.id, _stream_timeout(ticket, worker, deadline, held=True))
        self._spawn(self._expire(ticket, worker, chunks), f"expire-{ticket.id}")

    async def _expire(self, ticket: Ticket, worker: WorkerLike, chunks: AsyncIterator[Any]) -> None:
        try:
            with contextlib.suppress(Exception):
                await chunks.aclose()  # type: ignore[attr-defined]
        except BaseException:
            self._release(worker.id)
            raise
        if self._must_settle(ticket):
            await self._settle(ticket, worker)
        else:
            self._release(worker.id)

    async def _settle(self, ticket: Ticket, worker: WorkerLike) -> None:
        """Hold an abandoned call's slot until its worker says the tool's thread is free;
        replace the worker if it is not within ``shutdown_grace``."""
        grace = self.config.shutdown_grace
        try:
            try:
                running = await worker.settle(
                    [ticket.id], wait=grace, timeout=grace + self.config.heartbeat_timeout
                )
                reason = (
                    f"call {ticket.id} ({ticket.tool!r}) ended early but its tool thread "
                    f"still ran {grace}s later"
                )
            except SnakepitError as exc:
                running = [ticket.id]
                reason = (
                    f"call {ticket.id} ({ticket.tool!r}) ended early and the worker could not "
                    f"say whether its tool thread still runs ({type(exc).__name__})"
                )
            if ticket.id in running and worker.state is WorkerState.READY:
                self._supervisor.recycle(worker, reason)
        finally:
            self._release(worker.id)

    # -- sessions and host tools ---------------------------------------------------------------

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
            InvalidValueError: the name is malformed or already registered (a ``ValueError``).
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
        try:
            await self._store.set_affinity(session_id, worker_id)
        except SessionNotFoundError:
            pass  # deleted while the call ran
        except SessionStoreUnavailableError as exc:
            # The call succeeded; the pin is a hint, and this pool keeps its own copy.
            log.warning(
                "pool %s: could not record the affinity of %r: %s", self.name, session_id, exc
            )

    def _on_session_gone(self, event: Event) -> None:
        self._affinity.pop(getattr(event, "session_id", ""), None)

    # -- observation ---------------------------------------------------------------------------

    @property
    def state(self) -> str:
        return self._state

    @property
    def tools(self) -> dict[str, DescribedTool]:
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
        return PoolStats(
            name=self.name,
            state=self._state,
            size=self.config.size,
            live_workers=self._supervisor.live_count(),
            busy=s.busy_workers,
            idle=s.idle_count,
            queued=s.queued,
            degraded=self._supervisor.degraded,
            **self._counters,
        )

    def workers(self) -> list[WorkerInfo]:
        """One ``WorkerInfo`` per worker process the pool holds now."""
        out = []
        for worker_id, w in sorted(self._supervisor.workers.items()):
            slot = self._supervisor.slot_of.get(worker_id)
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

    def _worker(self, worker_id: str) -> WorkerLike | None:
        """The worker object behind an id (for snakepit.testing's chaos tools)."""
        return self._supervisor.workers.get(worker_id)

    def __repr__(self) -> str:
        s = self._scheduler
        flag = " DEGRADED" if self._supervisor.degraded else ""
        return (
            f"<Pool {self.name} {self._state}{flag} [busy {s.busy_workers}, idle {s.idle_count}"
            f" | queued {s.queued}] workers={self._supervisor.live_count()}/{self.config.size}>"
        )


def _earliest(*times: float | None) -> float | None:
    known = [t for t in times if t is not None]
    return min(known) if known else None


def _after_attempts(crashes: list[WorkerCrashedError], retries: int) -> WorkerCrashedError:
    """The error of a call whose worker crashed under every attempt it was allowed."""
    last = crashes[-1]
    if retries == 0:
        last.details["attempts"] = 1
        setattr(last, "attempts", 1)  # noqa: B010 - a detail is an attribute too
        return last
    tried = "; ".join(str(c).split("\n", 1)[0] for c in crashes)
    return WorkerCrashedError(
        f"{last.message} (attempt {len(crashes)} of {retries + 1}: the call was run "
        f"{len(crashes)} times, each on a fresh worker, and every worker crashed: {tried})",
        **{**last.details, "attempts": len(crashes), "errors": [str(c) for c in crashes]},
    )


class _StreamHold:
    """Where a stream stands, for its deadline timer."""

    __slots__ = ("expired", "overdue", "reading")

    def __init__(self) -> None:
        self.reading = False  # a read from the worker is under way
        self.overdue = False  # the deadline passed
        self.expired = False  # the deadline ended the call while its consumer held it


def _stream_timeout(
    ticket: Ticket, worker: WorkerLike, deadline: float | None, *, held: bool
) -> ExecutionTimeoutError:
    if held:
        message = (
            f"stream of tool {ticket.tool!r} passed its deadline of {deadline}s while its "
            f"consumer held it without reading; the call was ended and worker {worker.id!r} "
            "freed"
        )
    else:
        message = (
            f"tool {ticket.tool!r} on worker {worker.id!r} ran past its deadline of "
            f"{deadline}s; the worker will be replaced"
        )
    return ExecutionTimeoutError(message, tool=ticket.tool, worker_id=worker.id, timeout=deadline)
