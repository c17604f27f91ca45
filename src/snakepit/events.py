"""Typed events and the bus that carries them.

Everything that happens in a pool is an event: a worker starting, becoming
ready, exiting, being recycled; a request being queued, dispatched, completed
or failing; a session created or expired; a variable updated. Tests
synchronise on these, telemetry and the CLI subscribe to the same stream, and
nobody polls private state.

Two ways to listen:

* ``bus.subscribe(filter)`` gives a :class:`Subscription`, an async iterator
  with a bounded buffer. Order is kept within one subscriber; when the buffer
  is full the oldest event is dropped and counted in ``dropped``.
* ``bus.add_listener(callback, filter)`` calls ``callback(event)``
  synchronously in the publisher's thread (cheap callbacks only: a mailbox
  ``put``, a counter).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeAlias

__all__ = [
    "Event",
    "EventBus",
    "EventFilter",
    "PoolClosed",
    "PoolClosing",
    "PoolDegraded",
    "PoolRecovered",
    "PoolStarted",
    "RequestCancelled",
    "RequestCompleted",
    "RequestDispatched",
    "RequestFailed",
    "RequestQueued",
    "SessionCreated",
    "SessionDeleted",
    "SessionExpired",
    "Subscription",
    "VariableUpdated",
    "WorkerExited",
    "WorkerLost",
    "WorkerReady",
    "WorkerRecycled",
    "WorkerRestarting",
    "WorkerStarting",
    "WorkerUnhealthy",
    "matches",
]


@dataclass(frozen=True, kw_only=True)
class Event:
    """Something that happened. ``source`` names the pool (or store); ``at`` is its clock's time."""

    source: str = ""
    at: float = 0.0

    @property
    def kind(self) -> str:
        """The event's class name, e.g. ``"WorkerReady"``."""
        return type(self).__name__


_log = logging.getLogger("snakepit.events")


# -- workers -----------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class WorkerStarting(Event):
    worker_id: str


@dataclass(frozen=True, kw_only=True)
class WorkerReady(Event):
    worker_id: str
    pid: int
    address: str
    startup_seconds: float


@dataclass(frozen=True, kw_only=True)
class WorkerExited(Event):
    """A worker process ended. ``exit_code`` < 0 means killed by signal ``-exit_code``.

    ``expected`` is true when the host asked it to stop (shutdown, recycling).
    """

    worker_id: str
    pid: int
    exit_code: int | None
    expected: bool


@dataclass(frozen=True, kw_only=True)
class WorkerUnhealthy(Event):
    """A worker failed a check (heartbeat, deadline) and is about to be killed."""

    worker_id: str
    pid: int
    reason: str


@dataclass(frozen=True, kw_only=True)
class WorkerLost(Event):
    """A worker on another machine (``remote_workers``) or a Ray actor stopped answering or
    died; the pool retries its slot with backoff. ``restartable`` is False for a remote
    worker: the pool can only reconnect, someone must restart ``snakepit worker`` there."""

    worker_id: str
    address: str
    reason: str
    restartable: bool


@dataclass(frozen=True, kw_only=True)
class WorkerRestarting(Event):
    """A replacement for ``worker_id`` will start after ``delay`` seconds (backoff)."""

    worker_id: str
    attempt: int
    delay: float


@dataclass(frozen=True, kw_only=True)
class WorkerRecycled(Event):
    """A healthy worker was retired on purpose (``max_requests``, ``ttl``, memory, timeout)."""

    worker_id: str
    pid: int
    reason: str


# -- the pool ----------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class PoolStarted(Event):
    size: int
    startup_seconds: float


@dataclass(frozen=True, kw_only=True)
class PoolDegraded(Event):
    """Restarts exceeded ``max_restarts`` in ``restart_window``; the pool stopped restarting."""

    reason: str
    live_workers: int


@dataclass(frozen=True, kw_only=True)
class PoolRecovered(Event):
    live_workers: int


@dataclass(frozen=True, kw_only=True)
class PoolClosing(Event):
    pass


@dataclass(frozen=True, kw_only=True)
class PoolClosed(Event):
    pass


# -- requests ----------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class RequestQueued(Event):
    request_id: int
    tool: str
    session_id: str | None = None


@dataclass(frozen=True, kw_only=True)
class RequestDispatched(Event):
    request_id: int
    tool: str
    worker_id: str
    queued_seconds: float = 0.0


@dataclass(frozen=True, kw_only=True)
class RequestCompleted(Event):
    request_id: int
    tool: str
    worker_id: str
    seconds: float


@dataclass(frozen=True, kw_only=True)
class RequestFailed(Event):
    request_id: int
    tool: str
    worker_id: str | None
    error: str
    message: str


@dataclass(frozen=True, kw_only=True)
class RequestCancelled(Event):
    """A call ended with no result and no error: its caller cancelled it (while queued or
    running) or closed its stream before the end."""

    request_id: int
    tool: str
    worker_id: str | None


# -- sessions and variables --------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class SessionCreated(Event):
    session_id: str


@dataclass(frozen=True, kw_only=True)
class SessionExpired(Event):
    session_id: str


@dataclass(frozen=True, kw_only=True)
class SessionDeleted(Event):
    session_id: str


@dataclass(frozen=True, kw_only=True)
class VariableUpdated(Event):
    session_id: str
    name: str
    version: int
    value: Any = field(repr=False)
    deleted: bool = False

    def __repr__(self) -> str:
        from snakepit._variables import short_repr

        what = "deleted" if self.deleted else f"value={short_repr(self.value)}"
        return (
            f"VariableUpdated(session_id={self.session_id!r}, name={self.name!r}, "
            f"version={self.version}, {what})"
        )


# -- the bus -----------------------------------------------------------------------------------

EventFilter: TypeAlias = type[Event] | tuple[type[Event], ...] | Callable[[Event], bool] | None


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
                _log.exception("event listener %r failed on %s", callback, event.kind)
        for sub in subs:
            try:
                sub._offer(event)
            except Exception:
                _log.exception("event subscription filter failed on %s", event.kind)

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
