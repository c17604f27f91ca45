"""Deterministic time: a clock that only moves when the test moves it.

``FakeClock`` has the shape components expect of a clock (``monotonic()``,
``time()``, ``async sleep(seconds)``), so any component that reads an
injected clock can be driven by a test: ``await clock.advance(60)`` wakes, in
deadline order, every sleeper that is now due, and lets them run before it
returns. Nobody waits an hour to test a one-hour TTL.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools

__all__ = ["FakeClock"]


class FakeClock:
    """A manual clock for tests.

    Args:
        start: the initial monotonic reading.
        wall: the initial wall-clock reading (seconds since the epoch).
    """

    def __init__(self, start: float = 0.0, *, wall: float = 1_700_000_000.0) -> None:
        self._now = float(start)
        self._wall_offset = float(wall) - float(start)
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()
        self._sleeper_added: asyncio.Event | None = None

    def monotonic(self) -> float:
        return self._now

    def time(self) -> float:
        return self._now + self._wall_offset

    async def sleep(self, seconds: float) -> None:
        """Wait until the clock has been advanced by ``seconds`` (returns at once if ``<= 0``)."""
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + seconds, next(self._seq), fut))
        if self._sleeper_added is not None:
            self._sleeper_added.set()
        try:
            await fut
        finally:
            if not fut.done():
                fut.cancel()

    @property
    def sleepers(self) -> int:
        """How many tasks are waiting in :meth:`sleep` right now."""
        return sum(1 for _, _, fut in self._sleepers if not fut.done())

    def next_deadline(self) -> float | None:
        """The earliest time a sleeper waits for, or None."""
        self._prune()
        return self._sleepers[0][0] if self._sleepers else None

    async def wait_for_sleepers(self, count: int = 1, *, timeout: float = 5.0) -> None:
        """Return once at least ``count`` tasks are sleeping on this clock.

        Use it before :meth:`advance` when the component under test starts its
        timer in the background, so the advance is not lost.

        Raises:
            TimeoutError: fewer than ``count`` sleepers appeared within ``timeout`` real seconds.
        """
        async with asyncio.timeout(timeout):
            while self.sleepers < count:
                self._sleeper_added = asyncio.Event()
                await self._sleeper_added.wait()
        self._sleeper_added = None

    async def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``, waking every sleeper that is due, in order.

        Sleepers are woken one deadline at a time, and the loop runs between
        them, so a component that sleeps again after waking (a heartbeat loop)
        sees each tick it is due.
        """
        if seconds < 0:
            raise ValueError(f"FakeClock cannot go back: advance({seconds!r})")
        target = self._now + seconds
        while True:
            self._prune()
            if not self._sleepers or self._sleepers[0][0] > target:
                break
            deadline = self._sleepers[0][0]
            self._now = max(self._now, deadline)
            while self._sleepers and self._sleepers[0][0] <= self._now:
                _, _, fut = heapq.heappop(self._sleepers)
                if not fut.done():
                    fut.set_result(None)
            await _settle()
        self._now = target
        await _settle()

    def _prune(self) -> None:
        while self._sleepers and self._sleepers[0][2].done():
            heapq.heappop(self._sleepers)

    def __repr__(self) -> str:
        return f"<FakeClock t={self._now:.3f} sleepers={self.sleepers}>"


async def _settle(rounds: int = 5) -> None:
    """Let woken tasks run: a few passes of the event loop (a yield, not a delay)."""
    for _ in range(rounds):
        await asyncio.sleep(0)
