"""Message tracing: keep the ordered event history of a test, and show it when the test fails.

::

    recorder = EventRecorder()
    bus.add_listener(recorder)         # the recorder is a callable
    ...
    print(recorder.format())

With the pytest plugin, the ``recorder`` fixture's history is added to the
report of a failing test automatically.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from supertester._matching import Match, compile_match

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["EventRecorder", "RecordedEvent"]


@dataclass(frozen=True)
class RecordedEvent:
    """One recorded event.

    Attributes:
        seq: its position in the recording (0-based).
        at: ``time.monotonic()`` (or the recorder's clock) when it was recorded.
        thread: the name of the thread that recorded it.
        event: the event itself.
    """

    seq: int
    at: float
    thread: str
    event: object


class EventRecorder:
    """A thread-safe, ordered record of events, itself usable as a listener callback.

    Args:
        name: the title of the history in reports.
        clock: the time source (``time.monotonic`` by default; a
            :class:`~supertester.FakeClock`'s ``monotonic`` works too).
    """

    def __init__(
        self, name: str = "events", *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.name = name
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: list[RecordedEvent] = []
        self._origin = clock()

    def record(self, event: object) -> None:
        """Append ``event`` with the current time and thread (thread-safe)."""
        at = self._clock()
        thread = threading.current_thread().name
        with self._lock:
            self._entries.append(RecordedEvent(len(self._entries), at, thread, event))

    def __call__(self, event: object) -> None:
        """Same as :meth:`record`, so the recorder can be registered as a listener."""
        self.record(event)

    @property
    def entries(self) -> list[RecordedEvent]:
        """Every recorded entry, in order."""
        with self._lock:
            return list(self._entries)

    @property
    def events(self) -> list[object]:
        """Every recorded event, in order."""
        with self._lock:
            return [entry.event for entry in self._entries]

    def matching(self, match: Match) -> list[Any]:
        """The recorded events that match (a type, tuple of types or predicate), in order."""
        predicate = compile_match(match)
        return [event for event in self.events if predicate(event)]

    def clear(self) -> None:
        """Forget everything recorded so far."""
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def format(self, limit: int = 500) -> str:
        """The history as readable lines: sequence, time since creation, thread, event.

        Args:
            limit: show at most this many of the most recent entries.
        """
        entries = self.entries
        if not entries:
            return f"{self.name}: (no events recorded)"
        lines = [f"{self.name} ({len(entries)} events, oldest first):"]
        if len(entries) > limit:
            lines.append(f"  ... {len(entries) - limit} earlier events not shown")
            entries = entries[-limit:]
        for entry in entries:
            offset = entry.at - self._origin
            lines.append(f"  #{entry.seq:<4} +{offset:9.6f}s [{entry.thread}] {entry.event!r}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<EventRecorder {self.name} [{len(self)} events]>"
