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
import os
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

from snakepit import codec
from snakepit.bridge.host_tools import HostToolRegistry
from snakepit.bridge.memory import InMemorySessionStore, validate_session_id
from snakepit.bridge.service import HostBridge
from snakepit.clock import Clock, SystemClock
from snakepit.codec import Encoding
from snakepit.config import PoolConfig
from snakepit.errors import (
    ExecutionTimeoutError,
    InvalidArgumentsError,
    PoolClosedError,
    PoolSaturatedError,
    SessionNotFoundError,
    SnakepitError,
    ToolNotFoundError,
    WorkerCrashedError,
)
from snakepit.events import (
    EventBus,
    PoolClosed,
    PoolClosing,
    PoolStarted,
    RequestCompleted,
    RequestDispatched,
    RequestFailed,
    RequestQueued,
    SessionDeleted,
    SessionExpired,
)
from snakepit.pool._supervisor import Supervisor
from snakepit.pool._types import PoolStats, WorkerFactory, WorkerInfo, WorkerLike
from snakepit.pool.scheduler import Dispatch, Queued, Rejected, Scheduler, Ticket
from snakepit.worker.handle import WorkerHandle, WorkerOptions
from snakepit.worker.registry import ProcessRegistry
from snakepit.worker.runtime import make_runtime_dir, remove_runtime_dir

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterator

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
        self._tools: dict[str, ToolSpec] = {}
        self._affinity: dict[str, str] = {}
        self._request_ids = itertools.count(1)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._timer_wake: asyncio.Event | None = None
        self._idle: asyncio.Event | None = None
        self._closed_event: asyncio.Event | None = None
        self._runtime_dir: Path | None = None
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
            )
            self._supervisor.registry = registry
            await asyncio.to_thread(registry.open)
            self._bridge = HostBridge(
                self._store,
                self._host_tools,
                name=self.name,
                transport=self.config.transport,
                max_message_bytes=self.config.max_message_mb * 1024 * 1024,
                allow_pickle=self.config.serialization == "pickle",
            )
            await self._bridge.start(self._runtime_dir)
            await self._supervisor.start_all()
        except BaseException:
            await self._teardown(grace=0.0)
            self._finish_close()
            raise
        first = next(iter(self._supervisor.workers.values()))
        self._tools = dict(first.tools)
        self._state = "running"
        self._spawn(self._queue_timer(), "queue-timer")
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
        pending = [t for t in self._tasks if t is not current and not t.done()]
        if pending:
            await asyncio.wait(pending)
        if self._supervisor.registry is not None:
            self._supervisor.registry.close()
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
        if self.config.serialization == "json":
            codec.validate(args, what=f"args of tool {tool!r}")  # before it waits for a worker
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

    async def _begin(
        self, tool: str, args: Any, timeout: Any, session_id: str | None
    ) -> tuple[Ticket, WorkerLike, dict[str, Any], float | None]:
        """Validate a call and wait for a worker; the caller must ``_release`` it."""
        self._check_running()
        args = self._validate(tool, args)
        deadline = self._deadline(timeout)
        if session_id is not None:
            await self._store.get_or_create(session_id)  # creates or touches it; may hit the quota
        ticket = Ticket(
            id=next(self._request_ids),
            tool=tool,
            session_id=session_id,
            preferred_worker=self._affinity.get(session_id) if session_id else None,
            queue_deadline=(
                self._clock.monotonic() + self.config.queue_timeout
                if self.config.queue_timeout is not None
                else None
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
        except SnakepitError as exc:
            self._failed(ticket, None, exc)
            raise
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
        except ExecutionTimeoutError as exc:
            self._counters["timeouts"] += 1
            self._failed(ticket, worker.id, exc)
            self._supervisor.kill(
                worker,
                f"call {ticket.id} ({ticket.tool!r}) ran past its {deadline}s deadline",
                failure=False,
            )
            raise
        except WorkerCrashedError as exc:
            self._failed(ticket, worker.id, exc)
            self._supervisor.broken(worker)
            raise
        except SnakepitError as exc:
            self._failed(ticket, worker.id, exc)
            raise
        except asyncio.CancelledError:
            spec = self._tools.get(ticket.tool)
            if unary and spec is not None and not spec.is_async:
                # A synchronous tool cannot be interrupted in its thread: the worker may run
                # it for as long as it takes, so it is replaced rather than handed new calls.
                self._supervisor.kill(
                    worker,
                    f"call {ticket.id} ({ticket.tool!r}) was cancelled while running",
                    failure=False,
                )
            raise
        finally:
            self._release(worker.id)

    async def _done(self, ticket: Ticket, worker: WorkerLike, started: float) -> None:
        if ticket.session_id is not None:
            await self._pin(ticket.session_id, worker.id)
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
            SessionWorkerUnavailableError, PoolDegradedError: no worker could take the call.
            SessionQuotaError: ``session_id`` is new and ``max_sessions`` sessions are live.
            ValueError: ``session_id`` is malformed (``[A-Za-z0-9_.:-]{1,128}``).
            PoolClosedError: the pool is not running.
        """
        ticket, worker, args, deadline = await self._begin(tool, args, timeout, session_id)
        started = self._clock.monotonic()
        with self._running(ticket, worker, deadline, unary=True):
            result = await worker.execute(
                tool, args, timeout=deadline, session_id=session_id, request_id=ticket.id
            )
        await self._done(ticket, worker, started)
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
        ticket, worker, args, deadline = await self._begin(tool, args, timeout, session_id)
        started = self._clock.monotonic()
        chunks = worker.stream(
            tool, args, timeout=deadline, session_id=session_id, request_id=ticket.id
        )
        with self._running(ticket, worker, deadline, unary=False):
            try:
                async for chunk in chunks:
                    yield chunk
            finally:
                with contextlib.suppress(Exception):
                    await chunks.aclose()  # type: ignore[attr-defined]
        await self._done(ticket, worker, started)

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
