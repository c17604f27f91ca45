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

from supertester.errors import SupertesterTimeout

__all__ = ["FakeClock"]


class FakeClock:
    """A manual clock for tests.

    Sleepers with the same deadline wake in the order they went to sleep; a
    sleeper never wakes before the clock reaches its deadline.

    Args:
        start: the initial monotonic reading.
        wall: the initial wall-clock reading (seconds since the epoch).
    """

    def __init__(self, start: float = 0.0, *, wall: float = 1_700_000_000.0) -> None:
        self._now = float(start)
        self._wall_offset = float(wall) - float(start)
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()
        self._watchers: set[asyncio.Event] = set()

    def monotonic(self) -> float:
        """The current monotonic reading, in seconds."""
        return self._now

    def time(self) -> float:
        """The current wall-clock reading, in seconds since the epoch; moves with ``monotonic``."""
        return self._now + self._wall_offset

    async def sleep(self, seconds: float) -> None:
        """Wait until the clock has been advanced by ``seconds`` (returns at once if ``<= 0``)."""
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + seconds, next(self._seq), fut))
        for watcher in self._watchers:
            watcher.set()
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
            TimeoutError: (a :class:`~supertester.SupertesterTimeout`) fewer than
                ``count`` sleepers appeared within ``timeout`` real seconds.
        """
        watcher = asyncio.Event()
        self._watchers.add(watcher)
        try:
            async with asyncio.timeout(timeout) as scope:
                while self.sleepers < count:
                    watcher.clear()
                    await watcher.wait()
        except TimeoutError as exc:
            if not scope.expired():
                raise
            what = f"{count} sleeper(s) on {self!r}"
            raise SupertesterTimeout(
                f"expected {what} within {timeout}s, saw {self.sleepers}. Is the component "
                "using this clock (not the real one), and has it been started?",
                what=what,
                timeout=timeout,
            ) from exc
        finally:
            self._watchers.discard(watcher)

    async def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``, waking every sleeper that is due, in order.

        Sleepers are woken one deadline at a time, and the loop runs between
        them, so a component that sleeps again after waking (a heartbeat loop)
        sees each tick it is due. During a wake-up, ``monotonic()`` reads the
        sleeper's deadline, not the final time.

        Raises:
            ValueError: ``seconds`` is negative.
        """
        if seconds < 0:
            raise ValueError(f"FakeClock cannot go back: advance({seconds!r}); pass seconds >= 0")
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

    async def advance_to(self, when: float) -> None:
        """Move time forward to monotonic reading ``when`` (see :meth:`advance`).

        Raises:
            ValueError: ``when`` is in the past.
        """
        await self.advance(when - self._now)

    def _prune(self) -> None:
        while self._sleepers and self._sleepers[0][2].done():
            heapq.heappop(self._sleepers)

    def __repr__(self) -> str:
        return f"<FakeClock t={self._now:.3f} sleepers={self.sleepers}>"


async def _settle(rounds: int = 5) -> None:
    """Let woken tasks run: a few passes of the event loop (a yield, not a delay)."""
    for _ in range(rounds):
        await asyncio.sleep(0)
