"""The event bus: fan-out of events to bounded subscriptions and synchronous listeners.

Public through :mod:`snakepit.events`, which defines the events it carries.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from snakepit.events import Event, EventFilter

__all__ = ["EventBus", "Subscription", "matches"]

log = logging.getLogger("snakepit.events")


def matches(event: Event, filter: EventFilter) -> bool:
    """True when ``event`` passes ``filter`` (a class, a tuple of classes, a predicate or None)."""
    if filter is None:
        return True
    if isinstance(filter, type | tuple):
        return isinstance(event, filter)
    return bool(filter(event))


def _may_match(kind: type[Event], filter: EventFilter) -> bool:
    if filter is None or not isinstance(filter, type | tuple):
        return True
    classes = filter if isinstance(filter, tuple) else (filter,)
    return any(issubclass(kind, c) or issubclass(c, kind) for c in classes)


class Subscription:
    """A bounded, ordered buffer of the events that pass a filter; an async iterator.

    Create one with :meth:`EventBus.subscribe`. ``get()`` waits for the next
    event; iteration ends after :meth:`close` (or when the bus closes).
    """

    def __init__(self, bus: EventBus, filter: EventFilter, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError(f"Subscription maxsize must be >= 1, got {maxsize!r}")
        self._bus = bus
        self._filter = filter
        self._buffer: collections.deque[Event] = collections.deque(maxlen=maxsize)
        self._lock = threading.Lock()
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False
        self.dropped = 0

    def _offer(self, event: Event) -> None:
        if self._closed or not matches(event, self._filter):
            return
        with self._lock:
            if len(self._buffer) == self._buffer.maxlen:
                self.dropped += 1
            self._buffer.append(event)
            waiter = self._waiter
            self._waiter = None
        _wake(waiter)

    def get_nowait(self) -> Event | None:
        """The next buffered event, or None when the buffer is empty."""
        with self._lock:
            return self._buffer.popleft() if self._buffer else None

    async def get(self) -> Event:
        """Wait for the next event.

        Raises:
            StopAsyncIteration: the subscription (or its bus) was closed and is drained.
        """
        while True:
            with self._lock:
                if self._buffer:
                    return self._buffer.popleft()
                if self._closed:
                    raise StopAsyncIteration
                waiter = asyncio.get_running_loop().create_future()
                self._waiter = waiter
            await waiter

    def close(self) -> None:
        """Stop receiving; a pending ``get`` returns what is buffered, then iteration ends."""
        self._bus._unsubscribe(self)
        with self._lock:
            self._closed = True
            waiter = self._waiter
            self._waiter = None
        _wake(waiter)

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Event:
        return await self.get()

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _wake(waiter: asyncio.Future[None] | None) -> None:
    if waiter is None:
        return
    loop = waiter.get_loop()

    def _set() -> None:
        if not waiter.done():
            waiter.set_result(None)

    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        _set()
    elif not loop.is_closed():
        loop.call_soon_threadsafe(_set)


class EventBus:
    """Fan-out of events to subscriptions and listeners; one per pool (no global bus)."""

    def __init__(self, name: str = "") -> None:
        self.name = name
        self._subs: list[Subscription] = []
        self._listeners: list[tuple[Callable[[Event], None], EventFilter]] = []
        self._lock = threading.Lock()
        self._closed = False
        self._wanted: dict[type[Event], bool] = {}

    @property
    def active(self) -> bool:
        """True when anyone listens; a hot path may skip building events when nobody does."""
        return bool(self._subs or self._listeners)

    def wants(self, kind: type[Event]) -> bool:
        """True when a listener or subscription may take events of class ``kind`` (a filter
        that is a predicate may take anything); a hot path skips building the others."""
        wanted = self._wanted.get(kind)
        if wanted is None:
            with self._lock:
                filters = [f for _, f in self._listeners] + [s._filter for s in self._subs]
            wanted = any(_may_match(kind, f) for f in filters)
            self._wanted[kind] = wanted
        return wanted

    def publish(self, event: Event) -> None:
        """Deliver ``event`` to every listener and subscription whose filter it passes.

        A listener or filter that raises is logged and skipped: a broken observer never
        breaks the component that publishes (a worker start, a call's result).
        """
        if not self._subs and not self._listeners:
            return
        with self._lock:
            listeners = list(self._listeners)
            subs = list(self._subs)
        for callback, filter in listeners:
            try:
                if matches(event, filter):
                    callback(event)
            except Exception:
                log.exception("event listener %r failed on %s", callback, event.kind)
        for sub in subs:
            try:
                sub._offer(event)
            except Exception:
                log.exception("event subscription filter failed on %s", event.kind)

    def subscribe(self, filter: EventFilter = None, *, maxsize: int = 10_000) -> Subscription:
        """A new :class:`Subscription` to the events that pass ``filter`` from now on."""
        sub = Subscription(self, filter, maxsize)
        with self._lock:
            if self._closed:
                sub._closed = True
            else:
                self._subs.append(sub)
                self._wanted = {}
        return sub

    def add_listener(
        self, callback: Callable[[Event], None], filter: EventFilter = None
    ) -> Callable[[], None]:
        """Call ``callback(event)`` for each matching event; returns a function that removes it."""
        entry = (callback, filter)
        with self._lock:
            self._listeners.append(entry)
            self._wanted = {}

        def remove() -> None:
            with self._lock:
                if entry in self._listeners:
                    self._listeners.remove(entry)
                    self._wanted = {}

        return remove

    def _unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            if sub in self._subs:
                self._subs.remove(sub)
                self._wanted = {}

    def close(self) -> None:
        """End every subscription (after it drains); later subscriptions start closed."""
        with self._lock:
            self._closed = True
            subs = list(self._subs)
        for sub in subs:
            sub.close()

    def __iter__(self) -> Iterator[Subscription]:
        with self._lock:
            return iter(list(self._subs))

    def __repr__(self) -> str:
        return f"<EventBus {self.name!r} subscribers={len(self._subs)} listeners={len(self._listeners)}>"
