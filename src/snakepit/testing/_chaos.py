"""A pool as supertester sees it: ``Supervised`` children and a ``FailureTarget`` for chaos.

``supervised(pool)`` lists one child per slot (``"w1"``..``"wN"``: the stable
identity across restarts, with the current pid), forwards the pool's events,
and injects the failures chaos tests draw:

* ``"exit"``: SIGKILL the worker process;
* ``"timeout"``: SIGSTOP it, so it stops answering (calls past their deadline and
  heartbeats find it and have it replaced);
* ``"disconnect"``: close the host's channel to it while the process lives on
  (the next call fails with ``WorkerCrashedError`` and the pool replaces it).
"""

from __future__ import annotations

import os
import signal
from typing import TYPE_CHECKING

from snakepit.pool._observe import worker_handle
from supertester import ChildInfo

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from snakepit.pool import Pool

__all__ = ["PoolSupervisor", "supervised"]


class PoolSupervisor:
    """Implements ``supertester.Supervised`` and ``supertester.FailureTarget`` for a Pool."""

    KINDS = ("exit", "timeout", "disconnect")

    def __init__(self, pool: Pool) -> None:
        self.pool = pool

    def children(self) -> Sequence[ChildInfo]:
        by_slot: dict[int, ChildInfo] = {}
        for w in self.pool.workers():
            alive = w.state == "ready" and w.accepting
            if alive or w.slot not in by_slot:
                by_slot[w.slot] = ChildInfo(
                    id=f"w{w.slot}", pid=w.pid if alive else None, alive=alive
                )
        return [
            by_slot.get(i, ChildInfo(id=f"w{i}", pid=None, alive=False))
            for i in range(1, self.pool.config.size + 1)
        ]

    def subscribe_events(self, callback: Callable[[object], None]) -> Callable[[], None]:
        return self.pool.events.add_listener(callback)

    async def inject(self, kind: str, child_id: str) -> None:
        """Make the worker in slot ``child_id`` fail as ``kind`` says.

        Raises:
            ValueError: an unknown kind or a slot with no live worker.
        """
        if kind not in self.KINDS:
            raise ValueError(f"unknown failure kind {kind!r}; known: {', '.join(self.KINDS)}")
        child = next((c for c in self.children() if c.id == child_id), None)
        if child is None or child.pid is None:
            raise ValueError(f"slot {child_id!r} has no live worker to fail")
        if kind == "exit":
            os.kill(child.pid, signal.SIGKILL)
        elif kind == "timeout":
            os.kill(child.pid, signal.SIGSTOP)
        else:
            info = next(w for w in self.pool.workers() if w.pid == child.pid)
            worker = worker_handle(self.pool, info.id)
            if worker is not None:
                await worker.transport.close()  # type: ignore[attr-defined]


def supervised(pool: Pool) -> PoolSupervisor:
    """The pool as a ``supertester.Supervised`` system and ``FailureTarget``."""
    return PoolSupervisor(pool)
