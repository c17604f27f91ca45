"""The engine's routines: replacing a slot, retiring a worker, watching exits, checking health.

Each runs as a task of the pool's :class:`~snakepit._tasks.TaskOwner`, reports
what it meets (an exit, a start that failed, an old, big or silent worker) to the
pure :class:`~snakepit.pool._supervision.Supervision`, and has the engine apply
the answer; none decides anything itself, nor changes the engine's state but
through its methods.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from snakepit.errors import ExecutionTimeoutError, WorkerCrashedError, WorkerStartupError
from snakepit.events import WorkerRestarting
from snakepit.worker._handle import WorkerState

if TYPE_CHECKING:
    from snakepit.pool._actions import Restart, SlotState
    from snakepit.pool._engine import Engine
    from snakepit.pool._types import WorkerLike

__all__ = ["heartbeat", "maintain", "monitor", "replace", "retire", "retry_after_window"]

log = logging.getLogger("snakepit.pool")


async def replace(engine: Engine, slot: SlotState, restart: Restart | None) -> None:
    """Start ``slot``'s new occupant: after ``restart``'s delay, or at once for the successor
    of a recycled worker (``restart`` None); report how the start went to supervision."""
    try:
        if restart is not None:
            if not restart.retry:
                engine.events.publish(
                    WorkerRestarting(
                        source=engine.name,
                        at=engine.clock.monotonic(),
                        worker_id=slot.name,
                        attempt=restart.attempt,
                        delay=restart.delay,
                    )
                )
            if restart.delay > 0:
                await engine.clock.sleep(restart.delay)
        if engine.supervision.running:
            await engine.start_worker(slot)  # its readiness is reported from there
            return
    except WorkerStartupError as exc:
        log.error("replacement for slot %s failed to start: %s", slot.name, exc)
        now = engine.clock.monotonic()
        engine.apply(engine.supervision.start_failed(slot, now, exc.message))
        return
    except BaseException:
        engine.replacement_ended(slot)
        raise
    engine.replacement_ended(slot)


async def retry_after_window(engine: Engine) -> None:
    """Half-open: after ``restart_window`` of the clock, try the empty slots once more."""
    await engine.clock.sleep(engine.config.restart_window)
    try:
        await engine.recover()
    except WorkerStartupError as exc:
        log.error("pool %s is still degraded: %s", engine.name, exc)


async def monitor(engine: Engine, worker: WorkerLike) -> None:
    """Wait for a worker to exit; take it out of service; apply what supervision says."""
    engine.worker_exited(worker, await worker.wait_exited())


async def retire(engine: Engine, worker: WorkerLike) -> None:
    """Wait until ``worker`` runs nothing, then stop it gracefully."""
    await engine.wait_idle(worker.id)
    engine.forget(worker.id)
    await worker.stop()


async def maintain(engine: Engine) -> None:
    """Heartbeats, TTL and memory checks, every ``maintenance_interval`` of the clock."""
    interval = engine.supervision.maintenance_interval()
    assert interval is not None
    while True:
        await engine.clock.sleep(interval)
        now = engine.clock.monotonic()
        ready = [w for w in engine.workers.values() if w.state is WorkerState.READY]
        engine.apply(engine.supervision.too_old(now, [(w.id, w.ready_at) for w in ready]))
        if engine.config.memory_limit_mb is not None:
            engine.apply(engine.supervision.too_big(await asyncio.to_thread(_rss_of, ready)))
        if engine.config.heartbeat_interval is not None and ready:
            await asyncio.gather(*(heartbeat(engine, w) for w in ready))


async def heartbeat(engine: Engine, worker: WorkerLike) -> None:
    """Ping ``worker``; report a failed heartbeat to supervision."""
    try:
        await worker.ping(timeout=engine.config.heartbeat_timeout)
    except (ExecutionTimeoutError, WorkerCrashedError) as exc:
        ready = worker.state is WorkerState.READY
        engine.apply(
            engine.supervision.heartbeat_failed(worker.id, type(exc).__name__, ready=ready)
        )


def _rss_of(workers: list[WorkerLike]) -> list[tuple[str, int | None]]:
    import psutil

    out: list[tuple[str, int | None]] = []
    for w in workers:
        try:
            out.append((w.id, psutil.Process(w.pid).memory_info().rss if w.pid else None))
        except psutil.Error:
            out.append((w.id, None))
    return out
