"""Snapshots a pool hands out: ``stats()`` and ``workers()``; and the worker interface it drives."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from snakepit.clock import Clock
    from snakepit.events import EventBus
    from snakepit.worker._handle import WorkerOptions, WorkerState
    from snakepit.worker._transport import DescribedTool, PingResult

__all__ = ["PoolStats", "WorkerFactory", "WorkerInfo", "WorkerLike"]


@dataclass(frozen=True)
class PoolStats:
    """A frozen snapshot of a pool's counters (``pool.stats()``)."""

    name: str
    state: str
    size: int
    live_workers: int
    busy: int
    idle: int
    queued: int
    requests: int
    completed: int
    errors: int
    timeouts: int
    crashes: int
    restarts: int
    recycled: int
    saturated: int
    degraded: bool
    queue_timeouts: int = 0


@dataclass(frozen=True)
class WorkerInfo:
    """One worker as ``pool.workers()`` reports it."""

    id: str
    slot: int
    pid: int | None
    state: str
    address: str | None
    requests: int
    in_flight: int
    accepting: bool


class WorkerLike(Protocol):
    """What the pool needs of a worker. ``WorkerHandle`` is the real one; tests may inject fakes."""

    id: str
    pid: int | None
    address: str | None
    state: WorkerState
    requests: int
    tools: dict[str, DescribedTool]
    ready_at: float | None
    exit_code: int | None

    async def start(self) -> None: ...

    async def execute(
        self,
        tool: str,
        args: dict[str, Any],
        *,
        timeout: float | None = None,
        session_id: str | None = None,
        request_id: int = 0,
    ) -> Any: ...

    def stream(
        self,
        tool: str,
        args: dict[str, Any],
        *,
        timeout: float | None = None,
        session_id: str | None = None,
        request_id: int = 0,
    ) -> AsyncIterator[Any]: ...

    async def ping(self, *, timeout: float | None = 5.0) -> PingResult: ...

    async def settle(
        self, request_ids: list[int], *, wait: float, timeout: float | None
    ) -> list[int]: ...

    async def stop(self, grace: float | None = None) -> int | None: ...

    def kill(self) -> None: ...

    async def wait_exited(self) -> int | None: ...


class WorkerFactory(Protocol):
    """Builds a (not yet started) worker; the pool passes its bus, clock and name."""

    def __call__(
        self,
        worker_id: str,
        options: WorkerOptions,
        *,
        events: EventBus,
        clock: Clock,
        source: str,
    ) -> WorkerLike: ...
