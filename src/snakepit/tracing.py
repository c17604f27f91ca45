"""OpenTelemetry spans for a pool's calls, fed by its event bus (``pip install 'pysnakepit[tracing]'``).

Opt-in: nothing imports this module (or ``opentelemetry``) unless you do::

    from snakepit.tracing import instrument

    async with snakepit.Pool(adapter="mytools:TextTools") as pool:
        instrument(pool)            # spans on the global TracerProvider
        await pool.execute("shout", {"text": "hi"})

Each call (``execute`` or ``stream``, and what runs on them: sessions, ``submit``,
``Executor``) gets one span of kind ``CLIENT``, named ``snakepit <tool>``, child of
the span current where the call was made. It starts when the call is queued or
dispatched and ends with the call. Attributes:

======================  ==========================================================
``snakepit.pool``       the pool's name
``snakepit.tool``       the tool
``snakepit.request_id`` the call's id in the pool (a retry after a crash is a new call)
``snakepit.worker_id``  the worker that ran it (absent if none took it)
``snakepit.outcome``    ``ok``, ``cancelled`` or the error's class (``ToolError``...)
``error.type``          the error's class, on failed calls (status ``ERROR``)
======================  ==========================================================

The span's context travels with the call (``ExecuteRequest.trace_context``, W3C
``traceparent``/``tracestate`` through the global propagator), and a worker where
``opentelemetry`` is installed runs the tool inside it: a span the tool opens is a
child of the call's span, in the same trace. The worker exports its own spans (set
up a ``TracerProvider`` there, e.g. in the adapter's ``setup()``).
"""

from __future__ import annotations

import time
import weakref
from typing import TYPE_CHECKING

from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

import snakepit
from snakepit._trace_context import outgoing
from snakepit.events import (
    Event,
    RequestCancelled,
    RequestCompleted,
    RequestDispatched,
    RequestFailed,
    RequestQueued,
)

if TYPE_CHECKING:
    from snakepit.pool import Pool

__all__ = ["PoolTracing", "instrument"]

_INSTRUMENTED: weakref.WeakSet[Pool] = weakref.WeakSet()
_EVENTS = (RequestQueued, RequestDispatched, RequestCompleted, RequestFailed, RequestCancelled)


class PoolTracing:
    """The spans of one pool's calls; see :func:`instrument`."""

    def __init__(self, pool: Pool, tracer: trace.Tracer) -> None:
        self.pool = pool
        self._tracer = tracer
        self._spans: dict[int, trace.Span] = {}  # request id -> the span of the call in flight
        self._remove = pool.events.add_listener(self._on_event, _EVENTS)

    def _start(self, tool: str, request_id: int, queued_seconds: float = 0.0) -> trace.Span:
        # Listeners run in the caller's task: the current span there is the call's parent.
        start = time.time_ns() - int(queued_seconds * 1e9)
        span = self._tracer.start_span(
            f"snakepit {tool}",
            kind=SpanKind.CLIENT,
            start_time=start,
            attributes={
                "snakepit.pool": self.pool.name,
                "snakepit.tool": tool,
                "snakepit.request_id": request_id,
            },
        )
        self._spans[request_id] = span
        return span

    def _on_event(self, event: Event) -> None:
        if isinstance(event, RequestQueued):
            self._start(event.tool, event.request_id)
        elif isinstance(event, RequestDispatched):
            span = self._spans.get(event.request_id)
            if span is None:
                span = self._start(event.tool, event.request_id)
            span.set_attribute("snakepit.worker_id", event.worker_id)
            carrier: dict[str, str] = {}
            propagate.inject(carrier, context=trace.set_span_in_context(span))
            # The transport reads it in this same task as it builds the request.
            outgoing.set((event.worker_id, event.request_id, carrier))
        elif isinstance(event, RequestCompleted):
            self._finish(event.request_id, event.tool, "ok", event.worker_id)
        elif isinstance(event, RequestFailed):
            self._finish(event.request_id, event.tool, event.error, event.worker_id, event.message)
        elif isinstance(event, RequestCancelled):
            self._finish(event.request_id, event.tool, "cancelled", event.worker_id)

    def _finish(
        self,
        request_id: int,
        tool: str,
        outcome: str,
        worker_id: str | None,
        message: str | None = None,
    ) -> None:
        traced = outgoing.get()
        if traced is not None and traced[1] == request_id:
            outgoing.set(None)
        span = self._spans.pop(request_id, None)
        if span is None:  # refused before it was queued or dispatched: a span of its own
            span = self._start(tool, request_id)
            del self._spans[request_id]
        if worker_id is not None:
            span.set_attribute("snakepit.worker_id", worker_id)
        span.set_attribute("snakepit.outcome", outcome)
        if message is not None:
            span.set_attribute("error.type", outcome)
            span.set_status(Status(StatusCode.ERROR, f"{outcome}: {message}"))
        span.end()

    def close(self) -> None:
        """Stop following the pool; the spans of calls in flight end now, marked ``cancelled``
        if they have no outcome yet."""
        self._remove()
        _INSTRUMENTED.discard(self.pool)
        for request_id, span in list(self._spans.items()):
            del self._spans[request_id]
            span.set_attribute("snakepit.outcome", "cancelled")
            span.end()

    def __repr__(self) -> str:
        return f"<PoolTracing of pool {self.pool.name!r}>"


def instrument(pool: Pool, *, tracer_provider: trace.TracerProvider | None = None) -> PoolTracing:
    """Trace ``pool``'s calls with ``tracer_provider`` (default: OpenTelemetry's global one).

    Call :meth:`PoolTracing.close` to stop.

    Raises:
        ValueError: this pool is already traced.
    """
    if pool in _INSTRUMENTED:
        raise ValueError(f"pool {pool.name!r} is already traced; close its PoolTracing first")
    tracer = trace.get_tracer("snakepit", snakepit.__version__, tracer_provider=tracer_provider)
    tracing = PoolTracing(pool, tracer)
    _INSTRUMENTED.add(pool)
    return tracing
