"""What a pool shows of itself: its state, tools, counters and workers, as snapshots.

``Pool`` inherits these methods; they read the pool's engine and counters.
:func:`worker_handle` reaches the live handle behind a worker id, for this
library's own test tools (``snakepit.testing``'s chaos, the benchmarks): it is
not on ``Pool`` so that users see only snapshots.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from snakepit.pool._types import PoolStats, WorkerInfo

if TYPE_CHECKING:
    from snakepit.config import PoolConfig
    from snakepit.pool._engine import Engine
    from snakepit.pool._types import WorkerLike
    from snakepit.worker._transport import DescribedTool

__all__ = ["Observation", "worker_handle"]


class Observation:
    """``Pool``'s read-only views: ``state``, ``tools``, ``stats()``, ``workers()``."""

    name: str
    config: PoolConfig
    _engine: Engine
    _state: str
    _tools: dict[str, DescribedTool]
    _counters: dict[str, int]

    @property
    def state(self) -> str:
        return self._state

    @property
    def tools(self) -> dict[str, DescribedTool]:
        """The tools the workers serve, by name (known once the pool has started)."""
        return dict(self._tools)

    def stats(self) -> PoolStats:
        """A frozen snapshot of the pool's counters and occupancy."""
        s = self._engine.scheduler
        return PoolStats(
            name=self.name,
            state=self._state,
            size=self.config.size,
            live_workers=self._engine.live_count(),
            busy=s.busy_workers,
            idle=s.idle_count,
            queued=s.queued,
            degraded=self._engine.supervision.degraded,
            **self._counters,
        )

    def workers(self) -> list[WorkerInfo]:
        """One ``WorkerInfo`` per worker process the pool holds now."""
        out = []
        s = self._engine.scheduler
        for worker_id, w in sorted(self._engine.workers.items()):
            slot = self._engine.supervision.slot_of.get(worker_id)
            known = s.has_worker(worker_id)
            out.append(
                WorkerInfo(
                    id=worker_id,
                    slot=slot.index if slot else 0,
                    pid=w.pid,
                    state=w.state.value,
                    address=w.address,
                    requests=w.requests,
                    in_flight=s.in_flight(worker_id) if known else 0,
                    accepting=s.is_accepting(worker_id) if known else False,
                )
            )
        return out

    def __repr__(self) -> str:
        s = self._engine.scheduler
        flag = " DEGRADED" if self._engine.supervision.degraded else ""
        return (
            f"<Pool {self.name} {self._state}{flag} [busy {s.busy_workers}, idle {s.idle_count}"
            f" | queued {s.queued}] workers={self._engine.live_count()}/{self.config.size}>"
        )


def worker_handle(pool: Observation, worker_id: str) -> WorkerLike | None:
    """The live handle of ``pool``'s worker ``worker_id`` (None if it has none)."""
    return pool._engine.workers.get(worker_id)
