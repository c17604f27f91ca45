"""One owner for a component's background tasks, and one sleep-or-wake deadline timer.

``TaskOwner`` is what ``asyncio.TaskGroup`` is to a block of code, for an object's
lifetime instead: the pool, each worker handle, a local channel's host calls and
the session stores spawn their background tasks through one and cancel or join
them all when they close. Unlike a ``TaskGroup``,
a child that fails is logged and does not cancel its siblings: a failed monitor
must not take the pool down.

``DeadlineTimer`` runs a callback whenever the earliest of a changing set of
deadlines comes due on a ``Clock``, and is woken when an earlier deadline
appears: the pool's queue timeouts, and the memory and Redis stores' session
expiry (the Redis store's callback is a coroutine, its deadlines wall-clock ones).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine

    from snakepit.clock import Clock

__all__ = ["DeadlineTimer", "TaskOwner"]


class TaskOwner:
    """The background tasks of one component, named after it; a failed task is logged.

    Args:
        kind: what the owner is, for log lines (``"pool"``, ``"worker"``).
        name: the owner's name: task names are ``name:what``.
        log: where a failed task's exception is logged (default: the ``snakepit`` logger).
    """

    def __init__(self, kind: str, name: str, log: logging.Logger | None = None) -> None:
        self.kind = kind
        self.name = name
        self._log = log if log is not None else logging.getLogger("snakepit")
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """Run ``coro`` as a task owned by this owner, named ``owner:name``."""
        task = asyncio.get_running_loop().create_task(coro, name=f"{self.name}:{name}")
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self._log.error(
                "%s %s: background task %s failed",
                self.kind,
                self.name,
                task.get_name(),
                exc_info=task.exception(),
            )

    def pending(self) -> list[asyncio.Task[Any]]:
        """The tasks still running, except the caller's own (it cannot wait for itself)."""
        current = asyncio.current_task()
        return [t for t in self._tasks if t is not current and not t.done()]

    def cancel(self) -> None:
        """Cancel every task still running, except the caller's own."""
        for task in self.pending():
            task.cancel()

    async def join(self, timeout: float | None = None) -> None:
        """Wait until every task (but the caller's) has finished, or ``timeout`` has passed.

        Raises:
            asyncio.CancelledError: the caller was cancelled (the tasks run on).
        """
        pending = self.pending()
        if pending:
            await asyncio.wait(pending, timeout=timeout)

    async def aclose(self, timeout: float | None = None) -> None:
        """Cancel every task (but the caller's) and wait until each has ended, or until
        ``timeout`` has passed: a task that outlives its cancellation is logged and left.

        Raises:
            asyncio.CancelledError: the caller was cancelled (the tasks were cancelled too).
        """
        pending = self.pending()
        for task in pending:
            task.cancel()
        if not pending:
            return
        _, left = await asyncio.wait(pending, timeout=timeout)
        for task in left:
            self._log.warning(
                "%s %s: task %s still runs %.1fs after its cancellation",
                self.kind,
                self.name,
                task.get_name(),
                timeout,
            )

    def __len__(self) -> int:
        return len(self._tasks)


class DeadlineTimer:
    """Calls ``fire()`` each time the earliest deadline comes due on ``clock``.

    ``run()`` fires, asks ``next_deadline()`` for the earliest deadline left (None
    for none), and sleeps until then or until :meth:`wake`; ``fire`` must drop
    what is due, so that the next deadline lies ahead.

    Args:
        clock: the clock deadlines are read on (a ``FakeClock`` in tests).
        next_deadline: the earliest deadline, in ``now``'s seconds, or None.
        fire: handles what is due now; if it returns an awaitable, the loop awaits it.
        now: the time deadlines are in (default: ``clock.monotonic``; a store whose
            deadlines other hosts share passes ``clock.time``).
    """

    def __init__(
        self,
        clock: Clock,
        next_deadline: Callable[[], float | None],
        fire: Callable[[], object],
        *,
        now: Callable[[], float] | None = None,
    ) -> None:
        self._clock = clock
        self._now = now if now is not None else clock.monotonic
        self._next_deadline = next_deadline
        self._fire = fire
        self._wake: asyncio.Future[None] | None = None
        self._stopped = False
        self.planned: float | None = None  # the deadline the loop sleeps towards

    def wake(self) -> None:
        """Make the loop look at the deadlines again (one was added or removed)."""
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    def wake_for(self, deadline: float) -> None:
        """A new ``deadline``: wake the loop if it sleeps towards a later one, or none."""
        if self.planned is None or deadline < self.planned:
            self.wake()

    def stop(self) -> None:
        """End :meth:`run` (at once if it waits, else after its current fire)."""
        self._stopped = True
        self.wake()

    async def run(self) -> None:
        """Fire at every deadline until :meth:`stop` or cancellation.

        Raises:
            asyncio.CancelledError: when cancelled.
        """
        loop = asyncio.get_running_loop()
        try:
            while not self._stopped:
                fired = self._fire()
                if inspect.isawaitable(fired):
                    await fired
                    if self._stopped:  # stopped while it awaited
                        break
                self.planned = self._next_deadline()
                wake = self._wake = loop.create_future()
                if self.planned is None:
                    await wake
                    continue
                await _sleep_or_wake(self._sleep_until(self.planned), wake)
        finally:
            self._wake = None
            self.planned = None

    async def _sleep_until(self, deadline: float) -> None:
        # The delay is measured when the sleep starts, not when its task was created.
        await self._clock.sleep(deadline - self._now())


async def _sleep_or_wake(sleep: Coroutine[Any, Any, None], wake: asyncio.Future[None]) -> None:
    """Wait until ``sleep`` returns or ``wake`` is done, whichever is first.

    The sleep is cancelled and awaited either way, so no timer outlives the wait.

    Raises:
        asyncio.CancelledError: the caller was cancelled.
    """
    sleeper = asyncio.ensure_future(sleep)
    try:
        await asyncio.wait((sleeper, wake), return_when=asyncio.FIRST_COMPLETED)
    finally:
        sleeper.cancel()
        await asyncio.wait((sleeper,))
