"""The clock that every timer in snakepit reads.

TTLs, heartbeats, restart backoff and recycling never call ``time`` or
``asyncio.sleep`` directly: they read a :class:`Clock` that the pool is given.
Production uses :class:`SystemClock`; tests pass ``supertester.FakeClock``
(which satisfies the same protocol) and advance it instead of waiting.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "SystemClock"]


@runtime_checkable
class Clock(Protocol):
    """What a component needs of time: two readings and a way to wait."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back; for deadlines and durations."""
        ...

    def time(self) -> float:
        """Wall-clock seconds since the epoch; for timestamps shown to people."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Return after ``seconds`` of this clock have passed (at once for ``<= 0``)."""
        ...


class SystemClock:
    """The real clock: ``time.monotonic``, ``time.time`` and ``asyncio.sleep``."""

    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    def __repr__(self) -> str:
        return "SystemClock()"
