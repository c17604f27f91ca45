"""The trace context the host sends with a call (set by :mod:`snakepit.tracing`).

Kept apart from ``snakepit.tracing`` so the transports can read it without importing
OpenTelemetry: when tracing is off this variable stays None and a call pays one lookup.
"""

from __future__ import annotations

from contextvars import ContextVar

__all__ = ["outgoing", "trace_context_for"]

# (worker id, request id, W3C carrier) of the call the current task is about to send. It is
# set by the tracing listener in the caller's task when the call is dispatched, and keyed so
# a value left behind (a call that ended without an event in this context) never travels
# with another call.
outgoing: ContextVar[tuple[str, int, dict[str, str]] | None] = ContextVar(
    "snakepit_trace_outgoing", default=None
)


def trace_context_for(worker_id: str, request_id: int) -> dict[str, str] | None:
    """The carrier of call ``request_id`` on ``worker_id``, if it is traced."""
    traced = outgoing.get()
    if traced is None or traced[1] != request_id or traced[0] != worker_id:
        return None
    return traced[2]
