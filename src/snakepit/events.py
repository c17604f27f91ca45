"""Typed events: everything that happens in a pool, and the filters that pick them.

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

The bus itself (:class:`EventBus`, :class:`Subscription`) lives in ``snakepit/_bus.py``
and is exported from here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from snakepit._bus import EventBus, Subscription, matches

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


# -- filters ---------------------------------------------------------------------------------

#: What a subscription or listener takes: an event class, a tuple of them, a predicate, or
#: None for everything.
EventFilter: TypeAlias = type[Event] | tuple[type[Event], ...] | Callable[[Event], bool] | None
