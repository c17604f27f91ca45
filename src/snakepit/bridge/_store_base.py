"""What the stores share beyond the contract: their settings, their event bus, and ``async with``.

:class:`StoreBase` checks and keeps the settings every store takes (clock,
default TTL, quota, history bound, events, name), publishes on the bus, and
runs the store's :meth:`~snakepit.bridge._store.SessionStore.run_expiry` in a
task it owns between ``async with`` and :meth:`close`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Self

from snakepit._tasks import TaskOwner
from snakepit.bridge import _rules as rules
from snakepit.bridge._store import SessionStore
from snakepit.clock import Clock, SystemClock

if TYPE_CHECKING:
    import asyncio

    from snakepit.events import Event, EventBus

__all__ = ["StoreBase"]


class StoreBase(SessionStore):
    """A store's settings, events and owned expiry task; subclasses implement the contract.

    Raises:
        ValueError: ``ttl``, ``max_sessions`` or ``history_limit`` is out of range.
    """

    def __init__(
        self,
        clock: Clock | None,
        ttl: float,
        max_sessions: int | None,
        history_limit: int,
        events: EventBus | None,
        name: str,
    ) -> None:
        rules.check_settings(ttl=ttl, max_sessions=max_sessions, history_limit=history_limit)
        self._clock: Clock = clock if clock is not None else SystemClock()
        self.ttl = float(ttl)
        self.max_sessions = max_sessions
        self.history_limit = history_limit
        self.name = name
        self._events = events
        self._tasks = TaskOwner("store", name or "session-store")
        self._expiry_task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        self._expiry_task = self._tasks.spawn(self.run_expiry(), "session-expiry")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _publish(self, event: Event) -> None:
        if self._events is not None:
            self._events.publish(event)
