"""In-process workers: the pool's logic without processes or sockets, for fast unit tests.

``Pool(adapter=..., worker_factory=in_process_workers())`` runs every tool of
the adapter inside the test's own process, through the same codec and the
same argument checks as a real worker, and publishes the same events. A
``MockWorker`` can be made to crash, hang or refuse to start on demand, so
supervision logic is testable in microseconds. Use real workers
(``isolated_pool``) for anything about processes, signals or gRPC.
"""

from __future__ import annotations

import asyncio
import importlib
import itertools
import traceback
from typing import TYPE_CHECKING, Any

from snakepit.adapter import Adapter
from snakepit.codec import decode, encode
from snakepit.errors import (
    ExecutionTimeoutError,
    RequestError,
    SnakepitError,
    ToolError,
    ToolNotFoundError,
    WorkerCrashedError,
    WorkerStartupError,
)
from snakepit.events import EventBus, WorkerExited, WorkerReady, WorkerStarting
from snakepit.worker._handle import WorkerState
from snakepit.worker._transport import DescribedParam, DescribedTool, PingResult

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from snakepit.clock import Clock
    from snakepit.pool._types import WorkerFactory
    from snakepit.worker._handle import WorkerOptions

__all__ = ["MockWorker", "in_process_workers"]

_fake_pids = itertools.count(900_000)


def _load(path: str) -> type[Adapter]:
    module, _, name = path.partition(":")
    cls = getattr(importlib.import_module(module), name)
    if not (isinstance(cls, type) and issubclass(cls, Adapter)):
        raise TypeError(f"{path} is not an Adapter subclass")
    return cls


class MockWorker:
    """A worker that runs its adapter in this process. Implements the pool's ``WorkerLike``.

    Test controls: :meth:`crash` (as if the process died with ``exit_code``),
    :meth:`hang_next` (the next call blocks until killed), ``fail_start``
    (start raises ``WorkerStartupError``).
    """

    def __init__(
        self,
        worker_id: str,
        options: WorkerOptions,
        *,
        events: EventBus,
        clock: Clock,
        source: str,
        fail_start: bool = False,
    ) -> None:
        self.id = worker_id
        self.options = options
        self.pid: int | None = None
        self.address: str | None = None
        self.state = WorkerState.STARTING
        self.requests = 0
        self.tools: dict[str, DescribedTool] = {}
        self.ready_at: float | None = None
        self.exit_code: int | None = None
        self.fail_start = fail_start
        self._events = events
        self._clock = clock
        self._source = source
        self._adapter: Adapter | None = None
        self._exited: asyncio.Future[int | None] | None = None
        self._hang_next = False
        self._holds: list[asyncio.Event] = []
        self._stop_requested = False

    async def start(self) -> None:
        self._exited = asyncio.get_running_loop().create_future()
        self._events.publish(
            WorkerStarting(source=self._source, at=self._clock.monotonic(), worker_id=self.id)
        )
        if self.fail_start:
            self._finish(1, publish=False)
            raise WorkerStartupError(
                f"worker {self.id!r} failed to start (MockWorker fail_start)",
                worker_id=self.id,
                exit_code=1,
                stderr_tail="",
            )
        cls = _load(self.options.adapter)
        self._adapter = cls()
        result = self._adapter.setup()
        if asyncio.iscoroutine(result):
            await result
        self.tools = {
            name: DescribedTool(
                name=name,
                description=info.description,
                params=tuple(
                    DescribedParam(p.name, p.annotation, p.required, p.default_json)
                    for p in info.params
                ),
                streaming=info.streaming,
                uses_context=info.context_param is not None,
                is_async=info.is_async,
                idempotent=info.idempotent,
            )
            for name, info in cls.tools().items()
        }
        self.pid = next(_fake_pids)
        self.address = f"inproc:{self.id}"
        self.state = WorkerState.READY
        self.ready_at = self._clock.monotonic()
        self._events.publish(
            WorkerReady(
                source=self._source,
                at=self.ready_at,
                worker_id=self.id,
                pid=self.pid,
                address=self.address,
                startup_seconds=0.0,
            )
        )

    # -- test controls -------------------------------------------------------------------------

    def crash(self, exit_code: int = 1) -> None:
        """Die now, as a process would: calls in flight fail with WorkerCrashedError."""
        self._finish(exit_code, publish=True)

    def hang_next(self) -> None:
        """Make the next call block until this worker is killed."""
        self._hang_next = True

    def hold_next(self) -> asyncio.Event:
        """Make the next call wait until the returned event is set, then run normally."""
        gate = asyncio.Event()
        self._holds.append(gate)
        return gate

    # -- WorkerLike ------------------------------------------------------------------------------

    def _finish(self, code: int | None, *, publish: bool) -> None:
        if self.state is WorkerState.EXITED:
            return
        self.state = WorkerState.EXITED
        self.exit_code = code
        if self._exited is not None and not self._exited.done():
            self._exited.set_result(code)
        if publish:
            self._events.publish(
                WorkerExited(
                    source=self._source,
                    at=self._clock.monotonic(),
                    worker_id=self.id,
                    pid=self.pid or 0,
                    exit_code=code,
                    expected=self._stop_requested,
                )
            )

    async def _until_exit(self) -> None:
        assert self._exited is not None
        await asyncio.shield(self._exited)

    def _crashed(self, tool: str) -> WorkerCrashedError:
        return WorkerCrashedError(
            f"worker {self.id!r} exited during {tool!r}: exit code {self.exit_code}",
            worker_id=self.id,
            pid=self.pid,
            exit_code=self.exit_code,
            tool=tool,
        )

    async def _call(self, tool: str, args: dict[str, Any], streaming: bool) -> Any:
        if self.state is not WorkerState.READY or self._adapter is None:
            raise self._crashed(tool)
        info = type(self._adapter).tools().get(tool)
        if info is None:
            raise ToolNotFoundError(
                f"worker {self.id!r} has no tool {tool!r}", tool=tool, available=sorted(self.tools)
            )
        if info.streaming and not streaming:
            raise RequestError(f"tool {tool!r} is a streaming tool; use stream()", tool=tool)
        document, blobs = encode(args, what=f"args of tool {tool!r}")
        kwargs = info.bind(decode(document, blobs))
        method: Callable[..., Any] = getattr(self._adapter, info.method_name)
        if info.context_param is not None:
            kwargs[info.context_param] = None
        if self._hang_next:
            self._hang_next = False
            await self._until_exit()
            raise self._crashed(tool)
        if self._holds:
            await self._holds.pop(0).wait()
        try:
            if info.kind == "async":
                return await method(**kwargs)
            return method(**kwargs)
        except SnakepitError:
            raise
        except Exception as exc:
            raise ToolError(
                f"tool {tool!r} raised {type(exc).__name__}: {exc}",
                tool=tool,
                remote_type=type(exc).__name__,
                remote_traceback="".join(traceback.format_exception(exc)),
                worker_id=self.id,
            ) from None

    async def _race_exit(self, coro: Any, tool: str, timeout: float | None) -> Any:
        assert self._exited is not None
        call = asyncio.ensure_future(coro)
        exit_watch = asyncio.ensure_future(self._until_exit())
        try:
            done, _ = await asyncio.wait(
                {call, exit_watch}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            exit_watch.cancel()
        if call in done:
            return call.result()
        call.cancel()
        if exit_watch in done or self.state is WorkerState.EXITED:
            raise self._crashed(tool)
        raise ExecutionTimeoutError(
            f"tool {tool!r} on worker {self.id!r} ran past its deadline of {timeout}s",
            tool=tool,
            worker_id=self.id,
            timeout=timeout,
        )

    async def execute(
        self,
        tool: str,
        args: dict[str, Any],
        *,
        timeout: float | None = None,
        session_id: str | None = None,
        request_id: int = 0,
    ) -> Any:
        self.requests += 1
        result = await self._race_exit(self._call(tool, args, False), tool, timeout)
        document, blobs = encode(result, what=f"result of tool {tool!r}")
        return decode(document, blobs)

    async def stream(
        self,
        tool: str,
        args: dict[str, Any],
        *,
        timeout: float | None = None,
        session_id: str | None = None,
        request_id: int = 0,
    ) -> AsyncIterator[Any]:
        self.requests += 1
        produced = await self._race_exit(self._call(tool, args, True), tool, timeout)
        if hasattr(produced, "__aiter__"):
            async for chunk in produced:
                yield chunk
        elif hasattr(produced, "__next__"):
            for chunk in produced:
                if self.state is WorkerState.EXITED:
                    raise self._crashed(tool)
                yield chunk
        else:
            yield produced

    async def ping(self, *, timeout: float | None = 5.0) -> PingResult:
        if self.state is WorkerState.EXITED:
            raise self._crashed("Ping")
        return PingResult(pid=self.pid or 0, requests=self.requests, active=0, uptime_seconds=0.0)

    async def settle(
        self, request_ids: list[int], *, wait: float, timeout: float | None
    ) -> list[int]:
        # Tools run inline on the loop here: once a call is gone, none of its code runs.
        if self.state is WorkerState.EXITED:
            raise self._crashed("Settle")
        return []

    async def stop(self, grace: float | None = None) -> int | None:
        self._stop_requested = True
        self._finish(0 if self.exit_code is None else self.exit_code, publish=True)
        return self.exit_code

    def kill(self) -> None:
        self._stop_requested = True
        self._finish(-9, publish=True)

    async def wait_exited(self) -> int | None:
        if self._exited is None:
            return self.exit_code
        return await asyncio.shield(self._exited)

    def __repr__(self) -> str:
        return f"<MockWorker {self.id} {self.state.value}>"


def in_process_workers(
    created: list[MockWorker] | None = None, *, fail_start: Callable[[str], bool] | None = None
) -> WorkerFactory:
    """A ``worker_factory`` for ``Pool`` that builds :class:`MockWorker` s.

    Args:
        created: if given, every worker built is appended to it (to reach them in a test).
        fail_start: a predicate on the worker id; true makes that worker fail to start.
    """

    def factory(
        worker_id: str, options: WorkerOptions, *, events: EventBus, clock: Clock, source: str
    ) -> MockWorker:
        worker = MockWorker(
            worker_id,
            options,
            events=events,
            clock=clock,
            source=source,
            fail_start=bool(fail_start and fail_start(worker_id)),
        )
        if created is not None:
            created.append(worker)
        return worker

    return factory
