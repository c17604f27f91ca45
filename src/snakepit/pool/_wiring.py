"""How a pool's parts are made from its options: session store, worker options and handles, sweeping.

Plain functions, called by ``Pool`` as it is built and started.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from snakepit.bridge._memory import InMemorySessionStore
from snakepit.codec import Encoding
from snakepit.pool._status import remove_dead_statuses
from snakepit.worker._attached import AttachedWorkerHandle
from snakepit.worker._handle import WorkerHandle, WorkerOptions
from snakepit.worker._runtime import sweep_runtime_dirs

if TYPE_CHECKING:
    from pathlib import Path

    from snakepit.bridge._service import HostBridge
    from snakepit.bridge._store import SessionStore
    from snakepit.clock import Clock
    from snakepit.config import PoolConfig
    from snakepit.events import EventBus
    from snakepit.pool._placement import Placements
    from snakepit.pool._types import WorkerLike
    from snakepit.worker._forkserver import ForkServer
    from snakepit.worker._registry import ProcessRegistry

__all__ = ["COUNTERS", "handle_factory", "make_store", "sweep_leftovers", "worker_options"]

# What ``stats()`` counts (``PoolStats`` fields).
COUNTERS = (
    "requests",
    "completed",
    "errors",
    "timeouts",
    "crashes",
    "restarts",
    "recycled",
    "saturated",
    "queue_timeouts",
)


def handle_factory(
    worker_id: str, options: WorkerOptions, *, events: EventBus, clock: Clock, source: str
) -> WorkerLike:
    """A worker for ``options``: a child process, or a handle on one placed elsewhere."""
    if options.placement is not None:  # remote or Ray-placed: not our child process
        return AttachedWorkerHandle(
            worker_id, options, options.placement(), events=events, clock=clock, source=source
        )
    return WorkerHandle(worker_id, options, events=events, clock=clock, source=source)


def sweep_leftovers(registry: ProcessRegistry, runtime_base: str | None) -> None:
    """What dead hosts left: their processes (by the registry), their runtime directories
    and their status files."""
    registry.open()
    sweep_runtime_dirs(runtime_base)
    remove_dead_statuses()


def make_store(
    config: PoolConfig, clock: Clock, events: EventBus, name: str
) -> tuple[SessionStore, bool]:
    """The session store the config names, and whether this pool runs and closes it."""
    spec = config.session_store
    if spec is None:
        store: SessionStore = InMemorySessionStore(
            clock,
            ttl=config.session_ttl,
            max_sessions=config.max_sessions,
            events=events,
            name=name,
        )
        return store, True
    if isinstance(spec, str):
        from snakepit.bridge._redis_store import RedisSessionStore

        store = RedisSessionStore(
            spec,
            clock=clock,
            ttl=config.session_ttl,
            max_sessions=config.max_sessions,
            events=events,
            name=name,
        )
        return store, True
    return spec, False


def worker_options(
    c: PoolConfig,
    runtime_dir: Path,
    *,
    bridge: HostBridge | None,
    launcher: ForkServer | None,
    placements: Placements | None,
    slot: int,
) -> WorkerOptions:
    """The options of the worker in ``slot``: the pool's, its bridge's and its placement's."""
    return WorkerOptions(
        adapter=c.adapter,
        runtime_dir=runtime_dir,
        python=c.python,
        env=c.env,
        cwd=c.cwd,
        transport=c.transport,
        startup_timeout=c.startup_timeout,
        threads=max(c.threads, c.max_concurrency),
        shutdown_grace=c.shutdown_grace,
        max_message_bytes=c.max_message_mb * 1024 * 1024,
        encoding=Encoding.PICKLE if c.serialization == "pickle" else Encoding.JSON,
        extra_env=bridge.worker_env() if bridge is not None else {},
        launcher=launcher,
        host_token=bridge.token if bridge is not None else None,
        placement=placements.factory(slot) if placements is not None else None,
        host=bridge.ops if bridge is not None else None,
    )
