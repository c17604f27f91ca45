"""Synchronise on what a system reports, not on time: a selective-receive mailbox.

A :class:`Mailbox` collects items (events, messages, results) put into it from
any thread, and lets a test await the first one that matches, the way
Erlang's ``receive`` and ExUnit's ``assert_receive`` do::

    mb: Mailbox[Event] = Mailbox()
    bus.add_listener(mb.put)                 # or: mb.subscribe_to(bus.subscribe())
    await pool.start()
    ready = await mb.assert_receive(WorkerReady, timeout=5)

Items that do not match stay in the box for later receives. When nothing
matching arrives in time, the failure names what was awaited and prints every
item the mailbox saw, in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

from supertester._aio import set_event_threadsafe
from supertester._matching import Match, compile_match, describe_match
from supertester.errors import SupertesterTimeout

if TYPE_CHECKING:
    from collections.abc import AsyncIterable, Callable, Iterator

__all__ = ["Mailbox"]

T = TypeVar("T")
U = TypeVar("U")

_HISTORY_SHOWN = 200


class Mailbox(Generic[T]):
    """A thread-safe inbox with selective, bounded receives.

    ``put`` may be called from any thread (it is cheap and never blocks, so
    it can be registered directly as an event-bus listener); the receiving
    methods are coroutines of one event loop.

    Args:
        name: shown in failure messages and in the pytest failure report.
    """

    def __init__(self, name: str = "mailbox") -> None:
        self.name = name
        self._lock = threading.Lock()
        self._seq = 0
        self._history: list[tuple[int, T]] = []
        self._pending: list[tuple[int, T]] = []
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
        self._feeders: set[asyncio.Task[None]] = set()
        self._source_errors: list[str] = []

    # -- putting ------------------------------------------------------------------------------

    def put(self, item: T) -> None:
        """Add ``item`` to the box and wake any receiver (thread-safe, never blocks)."""
        with self._lock:
            entry = (self._seq, item)
            self._seq += 1
            self._history.append(entry)
            self._pending.append(entry)
            waiters = list(self._waiters)
        for loop, event in waiters:
            set_event_threadsafe(loop, event)

    def __call__(self, item: T) -> None:
        """Same as :meth:`put`, so the mailbox itself can be passed as a callback."""
        self.put(item)

    def subscribe_to(
        self, source: AsyncIterable[T], *, name: str | None = None
    ) -> asyncio.Task[None]:
        """Feed every item of an async iterable into the box from a background task.

        The task belongs to the mailbox: :meth:`close` (or leaving ``async
        with``) cancels it. If the source fails, the error is shown in any
        later receive timeout.

        Args:
            source: an async iterable, e.g. an event-bus subscription.
            name: a label for the source in failure messages.

        Returns:
            The feeding task.

        Raises:
            RuntimeError: called outside a running event loop.
        """
        label = name or type(source).__name__

        async def feed() -> None:
            try:
                async for item in source:
                    self.put(item)
            except Exception as exc:  # reported by the next receive that times out
                with self._lock:
                    self._source_errors.append(f"source {label} failed: {exc!r}")
                raise

        task = asyncio.get_running_loop().create_task(feed(), name=f"{self.name}-feed-{label}")
        self._feeders.add(task)
        task.add_done_callback(self._feeder_done)
        return task

    def _feeder_done(self, task: asyncio.Task[None]) -> None:
        self._feeders.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved here; the error is kept in _source_errors

    # -- receiving ----------------------------------------------------------------------------

    @overload
    async def receive(
        self, match: type[U], *, timeout: float | None = 5.0, what: str | None = None
    ) -> U: ...
    @overload
    async def receive(
        self,
        match: tuple[type[Any], ...] | Callable[[T], bool] | None = None,
        *,
        timeout: float | None = 5.0,
        what: str | None = None,
    ) -> T: ...
    async def receive(
        self, match: Match = None, *, timeout: float | None = 5.0, what: str | None = None
    ) -> Any:
        """Take the first pending item that matches, waiting up to ``timeout`` seconds for one.

        Args:
            match: a type, a tuple of types, a predicate, or None for any item.
                Items that do not match stay in the box.
            timeout: real seconds to wait; ``None`` waits forever (avoid in tests).
            what: describes the awaited item in the failure message
                (default: derived from ``match``).

        Returns:
            The matching item, removed from the box.

        Raises:
            SupertesterTimeout: no matching item arrived in time; the message
                names what was awaited and lists the mailbox history.
        """
        predicate = compile_match(match)
        description = what or describe_match(match)
        try:
            with self._waiting() as wakeup:
                async with asyncio.timeout(timeout) as scope:
                    while True:
                        wakeup.clear()
                        found, item = self._take(predicate)
                        if found:
                            return item
                        await wakeup.wait()
        except TimeoutError as exc:
            if not scope.expired():
                raise
            raise SupertesterTimeout(
                self._timeout_message(description, timeout), what=description, timeout=timeout
            ) from exc

    @overload
    async def assert_receive(
        self, match: type[U], timeout: float | None = 5.0, *, what: str | None = None
    ) -> U: ...
    @overload
    async def assert_receive(
        self,
        match: tuple[type[Any], ...] | Callable[[T], bool] | None = None,
        timeout: float | None = 5.0,
        *,
        what: str | None = None,
    ) -> T: ...
    async def assert_receive(
        self, match: Match = None, timeout: float | None = 5.0, *, what: str | None = None
    ) -> Any:
        """Assert that a matching item arrives within ``timeout``; return it (consumed).

        The assertion form of :meth:`receive`, with the same arguments.

        Raises:
            SupertesterTimeout: (an ``AssertionError``) nothing matching arrived
                in time; the message names what was awaited and prints the
                full ordered history of the mailbox.
        """
        return await self.receive(match, timeout=timeout, what=what)

    async def refute_receive(
        self, match: Match = None, within: float = 0.1, *, what: str | None = None
    ) -> None:
        """Assert that no matching item is in the box or arrives within ``within`` seconds.

        This is the one helper that waits out a window by design (there is no
        event for "nothing happened"); keep ``within`` short. Nothing is consumed.

        Raises:
            AssertionError: a matching item was pending or arrived in the window.
        """
        predicate = compile_match(match)
        description = what or describe_match(match)
        try:
            with self._waiting() as wakeup:
                async with asyncio.timeout(within) as scope:
                    while True:
                        wakeup.clear()
                        seen = self._peek(predicate)
                        if seen is not None:
                            seq, item = seen
                            raise AssertionError(
                                f"expected {description} not to arrive in {self.name} within "
                                f"{within}s, but received item #{seq}: {item!r}\n"
                                f"{self.format_history()}\n"
                                "If the item is legitimate, receive it first or narrow the match."
                            )
                        await wakeup.wait()
        except TimeoutError:
            if not scope.expired():
                raise

    @contextlib.contextmanager
    def _waiting(self) -> Iterator[asyncio.Event]:
        """Register an event that every ``put`` sets (from any thread) while the block runs."""
        wakeup = asyncio.Event()
        waiter = (asyncio.get_running_loop(), wakeup)
        with self._lock:
            self._waiters.add(waiter)
        try:
            yield wakeup
        finally:
            with self._lock:
                self._waiters.discard(waiter)

    def flush(self) -> list[T]:
        """Remove and return every pending item, oldest first."""
        with self._lock:
            items = [item for _, item in self._pending]
            self._pending.clear()
        return items

    def _take(self, predicate: Callable[[Any], bool]) -> tuple[bool, Any]:
        with self._lock:
            pending = list(self._pending)
        for seq, item in pending:  # the predicate runs outside the lock: it may be slow or re-enter
            if predicate(item):
                with self._lock:
                    for index, (other, _) in enumerate(self._pending):
                        if other == seq:
                            del self._pending[index]
                            return True, item
                # another receiver took it meanwhile: keep looking
        return False, None

    def _peek(self, predicate: Callable[[Any], bool]) -> tuple[int, T] | None:
        with self._lock:
            pending = list(self._pending)
        for entry in pending:
            if predicate(entry[1]):
                return entry
        return None

    # -- state --------------------------------------------------------------------------------

    @property
    def history(self) -> list[T]:
        """Every item ever put, in order (received or not)."""
        with self._lock:
            return [item for _, item in self._history]

    @property
    def pending(self) -> list[T]:
        """The items not received yet, in order."""
        with self._lock:
            return [item for _, item in self._pending]

    def __len__(self) -> int:
        with self._lock:
            return len(self._pending)

    def format_history(self, limit: int = _HISTORY_SHOWN) -> str:
        """The mailbox history as readable lines, each marked received or pending.

        Args:
            limit: show at most this many of the most recent items.
        """
        with self._lock:
            history = list(self._history)
            pending = {seq for seq, _ in self._pending}
            errors = list(self._source_errors)
        if not history:
            lines = [f"{self.name} history: (empty: nothing was ever put)"]
        else:
            lines = [f"{self.name} history ({len(history)} items, oldest first):"]
            if len(history) > limit:
                lines.append(f"  ... {len(history) - limit} earlier items not shown")
                history = history[-limit:]
            for seq, item in history:
                state = "pending " if seq in pending else "received"
                lines.append(f"  #{seq:<4} {state} {item!r}")
        lines.extend(f"  ! {error}" for error in errors)
        return "\n".join(lines)

    def _timeout_message(self, description: str, timeout: float | None) -> str:
        return (
            f"expected {description} in {self.name} within {timeout}s, none arrived\n"
            f"{self.format_history()}\n"
            "Check that the event is published and the mailbox is subscribed before the "
            "action that triggers it, and that the match is not too narrow."
        )

    # -- lifecycle ----------------------------------------------------------------------------

    async def close(self) -> None:
        """Cancel the tasks started by :meth:`subscribe_to` and wait for them to end."""
        feeders = list(self._feeders)
        for task in feeders:
            task.cancel()
        if feeders:
            await asyncio.gather(*feeders, return_exceptions=True)

    async def __aenter__(self) -> Mailbox[T]:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        with self._lock:
            seen, pending = len(self._history), len(self._pending)
        return f"<Mailbox {self.name} [pending {pending} | seen {seen}]>"
