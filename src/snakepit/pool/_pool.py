"""``Pool``: the supervised pool of worker processes that users start, call and close.

The pool wires its parts together: the engine (which applies the pure
scheduler's and supervision's decisions to real workers), the session store
and host bridge, the process registry, the fork server and the event bus. It
starts and closes them, and runs unary calls: ``execute`` checks the call,
waits for a worker and handles its end through ``_calls``, retrying crashes.
Streams (``_streams``), sessions, host tools and plain functions (``_facade``)
and the read-only views (``_observe``) are mixed in.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from snakepit._tasks import TaskOwner
from snakepit.bridge._host_tools import HostToolRegistry
from snakepit.bridge._service import HostBridge
from snakepit.clock import Clock, SystemClock
from snakepit.config import PoolConfig
from snakepit.errors import (
    PoolClosedError,
    WorkerCrashedError,
)
from snakepit.events import (
    EventBus,
    PoolClosed,
    PoolClosing,
    PoolStarted,
    SessionDeleted,
    SessionExpired,
)
from snakepit.pool._arguments import DEFAULT, call_retries
from snakepit.pool._calls import after_attempts
from snakepit.pool._engine import Engine
from snakepit.pool._facade import Facade
from snakepit.pool._observe import Observation
from snakepit.pool._placement import placements_for
from snakepit.pool._status import StatusPublisher
from snakepit.pool._streams import StreamCalls
from snakepit.pool._wiring import (
    COUNTERS,
    handle_factory,
    make_store,
    sweep_leftovers,
    worker_options,
)
from snakepit.worker._forkserver import ForkServer, effective_start_method
from snakepit.worker._registry import ProcessRegistry
from snakepit.worker._runtime import make_runtime_dir, remove_runtime_dir

if TYPE_CHECKING:
    from snakepit.pool._session import Sessions
    from snakepit.pool._types import WorkerFactory
    from snakepit.worker._handle import WorkerOptions
    from snakepit.worker._transport import DescribedTool

__all__ = ["Pool"]

log = logging.getLogger("snakepit.pool")
_pool_ids = itertools.count(1)
PoolState = Literal["new", "starting", "running", "closing", "closed"]


class Pool(StreamCalls, Facade, Observation):
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
        self._counters = dict.fromkeys(COUNTERS, 0)
        self._tasks = TaskOwner("pool", self.name, log)
        self._engine = Engine(
            name=self.name,
            config=self.config,
            clock=self._clock,
            events=self.events,
            factory=worker_factory or handle_factory,
            options=self._options,
            tasks=self._tasks,
            counters=self._counters,
        )
        self._tools: dict[str, DescribedTool] = {}
        self._affinity: dict[str, str] = {}
        self._request_ids = itertools.count(1)
        self._registry: ProcessRegistry | None = None
        self._closed_event: asyncio.Event | None = None
        self._runtime_dir: Path | None = None
        self._fork_server: ForkServer | None = None
        self._placements = placements_for(self.config, self.name)
        self._store, self._owns_store = make_store(self.config, self._clock, self.events, self.name)
        self._host_tools = HostToolRegistry(self.name)
        self._bridge: HostBridge | None = None
        self._sessions: Sessions | None = None
        self.events.add_listener(self._on_session_gone, (SessionExpired, SessionDeleted))

    def _options(self, slot: int = 0) -> WorkerOptions:
        assert self._runtime_dir is not None
        return worker_options(
            self.config,
            self._runtime_dir,
            bridge=self._bridge,
            launcher=self._fork_server,
            placements=self._placements,
            slot=slot,
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
        self._closed_event = asyncio.Event()
        try:
            self._runtime_dir = make_runtime_dir(self.name, self.config.runtime_dir)
            registry = ProcessRegistry(
                f"{self.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}",
                Path(self.config.registry_dir) if self.config.registry_dir else None,
                runtime_dir=self._runtime_dir,
            )
            self._registry = registry
            await asyncio.to_thread(sweep_leftovers, registry, self.config.runtime_dir)
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
            await self._engine.start_all(registry)
        except BaseException:
            await self._teardown(grace=0.0)
            self._finish_close()
            raise
        first = next(iter(self._engine.workers.values()))
        self._tools = dict(first.tools)
        self._state = "running"
        self._engine.start_timers()
        if self._owns_store:
            self._tasks.spawn(self._store.run_expiry(), "session-expiry")
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
        self._engine.fail_queue(self._closed_error())
        await self._engine.drain(self.config.drain_timeout)
        await self._teardown(self.config.shutdown_grace if grace is None else grace)
        self._finish_close()

    def _finish_close(self) -> None:
        self._state = "closed"
        self.events.publish(PoolClosed(source=self.name, at=self._clock.monotonic()))
        self.events.close()
        if self._closed_event is not None:
            self._closed_event.set()

    async def _teardown(self, grace: float) -> None:
        self._engine.closing()  # no replacement starts from here on
        self._tasks.cancel()
        await self._engine.stop_all(grace)
        if self._placements is not None:
            await self._placements.close()
        await self._tasks.join()
        if self._fork_server is not None:
            await self._fork_server.close()
        if self._registry is not None:
            self._registry.close()
        if self._owns_store:
            await self._store.close()
        if self._bridge is not None:
            await self._bridge.stop(grace=None)  # the workers, its only clients, are gone
        if self._runtime_dir is not None:
            remove_runtime_dir(self._runtime_dir)

    async def recover(self) -> None:
        """Leave the degraded state: forget the restart history and refill empty slots.

        The pool also tries this by itself once ``restart_window`` has passed.

        Raises:
            PoolClosedError: the pool is not running.
            WorkerStartupError: a slot's worker still cannot start.
        """
        self._check_running()
        await self._engine.recover()

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
        budget = call_retries(self._tools, tool, retries, self.config)
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
                    raise after_attempts(crashes, budget) from exc
                log.info("pool %s: retrying %r on a fresh worker after: %s", self.name, tool, exc)
                continue
            await self._done(ticket, worker, started)
            return result
