"""What every worker handle shares: its state, its lifecycle events and its calls through the transport.

A handle (a spawned or forked worker, :class:`~snakepit.worker._handle.WorkerHandle`, or
one attached over the network, :class:`~snakepit.worker._attached.AttachedWorkerHandle`)
starts its worker its own way and supplies ``_crash_error``, which turns a broken channel
into the ``WorkerCrashedError`` that fits it (an exit code, or a lost remote worker).
Every background task of a handle (an exit watcher, a placement watch) is spawned
through its ``_tasks`` owner and joined when the handle stops.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from typing import TYPE_CHECKING, Any

from snakepit._tasks import TaskOwner
from snakepit.clock import Clock, SystemClock
from snakepit.events import EventBus, WorkerExited, WorkerReady, WorkerStarting
from snakepit.worker._transport import TransportError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from snakepit.errors import WorkerCrashedError
    from snakepit.worker._startup import WorkerOptions
    from snakepit.worker._transport import DescribedTool, DescribeResult, PingResult, Transport

__all__ = ["HandleBase", "WorkerState"]


class WorkerState(enum.Enum):
    STARTING = "starting"
    READY = "ready"
    STOPPING = "stopping"
    EXITED = "exited"


class HandleBase:
    """The fields, events, ``ping``, ``execute``, ``stream`` and ``settle`` of a handle."""

    def __init__(
        self,
        worker_id: str,
        options: WorkerOptions,
        *,
        events: EventBus | None = None,
        clock: Clock | None = None,
        source: str = "",
    ) -> None:
        self.id = worker_id
        self.options = options
        self._events = events or EventBus(worker_id)
        self._clock = clock or SystemClock()
        self._source = source
        self._log = logging.getLogger(f"snakepit.worker.{worker_id}")
        self._tasks = TaskOwner("worker", worker_id, self._log)
        self.state = WorkerState.STARTING
        self.pid: int | None = None
        self.address: str | None = None
        self.tools: dict[str, DescribedTool] = {}
        self.describe_result: DescribeResult | None = None
        self.exit_code: int | None = None
        self.started_at: float | None = None
        self.ready_at: float | None = None
        self.requests = 0
        self._transport: Transport | None = None
        self._exited: asyncio.Future[int | None] | None = None
        self._stop_requested = False

    # -- observation ---------------------------------------------------------------------------

    @property
    def transport(self) -> Transport:
        if self._transport is None:
            raise RuntimeError(f"worker {self.id!r} is not connected")
        return self._transport

    @property
    def alive(self) -> bool:
        return self.state in (WorkerState.STARTING, WorkerState.READY)

    async def wait_exited(self) -> int | None:
        """Wait for the worker to end; its exit code (negative: the signal; None: unknown)."""
        if self._exited is None:
            return self.exit_code
        return await asyncio.shield(self._exited)

    # -- lifecycle events ----------------------------------------------------------------------

    def _starting(self) -> None:
        self.started_at = self._clock.monotonic()
        self._events.publish(
            WorkerStarting(source=self._source, at=self.started_at, worker_id=self.id)
        )

    def _ready(self, address: str, *, pid: int) -> None:
        assert self.started_at is not None and self.describe_result is not None
        self.address = address
        self.tools = self.describe_result.tools
        self.ready_at = self._clock.monotonic()
        self.state = WorkerState.READY
        self._events.publish(
            WorkerReady(
                source=self._source,
                at=self.ready_at,
                worker_id=self.id,
                pid=pid,
                address=address,
                startup_seconds=self.ready_at - self.started_at,
            )
        )

    def _publish_exited(self, code: int | None, *, expected: bool) -> None:
        self._events.publish(
            WorkerExited(
                source=self._source,
                at=self._clock.monotonic(),
                worker_id=self.id,
                pid=self.pid or 0,
                exit_code=code,
                expected=expected,
            )
        )

    # -- calls ---------------------------------------------------------------------------------

    async def _crash_error(self, exc: TransportError, tool: str) -> WorkerCrashedError:
        raise NotImplementedError

    async def ping(self, *, timeout: float | None = 5.0) -> PingResult:
        """Ask the worker for a sign of life (answered even while a sync tool runs).

        Raises:
            ExecutionTimeoutError: no answer within ``timeout``.
            WorkerCrashedError: the process died, or was lost, or the channel broke.
        """
        try:
            return await self.transport.ping(timeout=timeout)
        except TransportError as exc:
            raise await self._crash_error(exc, "Ping") from exc

    async def execute(
        self,
        tool: str,
        args: dict[str, Any],
        *,
        timeout: float | None = None,
        session_id: str | None = None,
        request_id: int = 0,
    ) -> Any:
        """Run ``tool`` on the worker.

        Raises:
            ToolError: the tool raised (remote type and traceback attached).
            ToolNotFoundError, InvalidArgumentsError, SerializationError: a bad request.
            ExecutionTimeoutError: past ``timeout``.
            WorkerCrashedError: the worker died, or was lost, or its channel broke mid-call.
        """
        self.requests += 1
        try:
            return await self.transport.execute(
                tool, args, timeout=timeout, session_id=session_id, request_id=request_id
            )
        except TransportError as exc:
            raise await self._crash_error(exc, tool) from exc

    async def stream(
        self,
        tool: str,
        args: dict[str, Any],
        *,
        timeout: float | None = None,
        session_id: str | None = None,
        request_id: int = 0,
    ) -> AsyncIterator[Any]:
        """Run a streaming tool, yielding its chunks in order (errors as ``execute``)."""
        self.requests += 1
        agen = self.transport.stream(
            tool, args, timeout=timeout, session_id=session_id, request_id=request_id
        )
        try:
            async for chunk in agen:
                yield chunk
        except TransportError as exc:
            raise await self._crash_error(exc, tool) from exc
        finally:
            await agen.aclose()  # type: ignore[attr-defined]

    async def settle(
        self, request_ids: list[int], *, wait: float, timeout: float | None
    ) -> list[int]:
        """Of ``request_ids`` (calls the host abandoned), those whose tool code still runs
        after up to ``wait`` seconds; threads of sync tools and generators included.

        Raises:
            ExecutionTimeoutError: no answer within ``timeout``.
            WorkerCrashedError: the worker died or was lost, the channel broke, or the worker
                does not implement ``Settle``.
        """
        try:
            return await self.transport.settle(request_ids, wait=wait, timeout=timeout)
        except TransportError as exc:
            raise await self._crash_error(exc, "Settle") from exc
