"""Run a tool inside the trace context the host sent with its call (see ``snakepit.tracing``).

The host fills ``ExecuteRequest.trace_context`` only when it traces calls; then, if
OpenTelemetry is importable here, the tool runs with the host's span as its current
parent, so spans it opens join the host's trace. Nothing here imports OpenTelemetry
until a call carries a context.
"""

from __future__ import annotations

import contextvars
import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Generator, Mapping

__all__ = ["in_trace_context"]

log = logging.getLogger(__name__)

# opentelemetry's (context, propagate) modules once looked for; False when not installed.
_otel: tuple[Any, Any] | bool | None = None


def _modules() -> tuple[Any, Any] | None:
    global _otel
    if _otel is None:
        try:
            from opentelemetry import context, propagate
        except ImportError:
            log.debug("calls carry a trace context but opentelemetry is not installed here")
            _otel = False
        else:
            _otel = (context, propagate)
    return _otel if isinstance(_otel, tuple) else None


def in_trace_context(
    call: Callable[[], Any], kind: str, carrier: Mapping[str, str]
) -> Callable[[], Any]:
    """``call`` made to run inside the context extracted from ``carrier``.

    A sync tool gets it on its thread for its run, an async tool in its task, a generator
    (sync or async) for its whole run, across its yields. Without OpenTelemetry here,
    ``call`` itself.
    """
    otel = _modules()
    if otel is None:
        return call
    context, propagate = otel
    parent = propagate.extract(dict(carrier))
    if kind == "sync":

        def run_sync() -> Any:
            token = context.attach(parent)
            try:
                return call()
            finally:
                context.detach(token)

        return run_sync
    if kind == "async":

        async def run_async() -> Any:
            token = context.attach(parent)
            try:
                return await call()
            finally:
                context.detach(token)

        return run_async
    if kind == "generator":
        return lambda: _generator(call(), context, parent)
    return lambda: _async_generator(call(), context, parent)


def _generator(
    gen: Generator[Any, None, Any], context: Any, parent: Any
) -> Generator[Any, None, Any]:
    # Each step runs in a context of the generator's own, so the tool's spans (opened and
    # closed across yields) see the same context at every step, whoever iterates it.
    own = contextvars.copy_context()
    own.run(context.attach, parent)
    try:
        while True:
            try:
                chunk = own.run(next, gen)
            except StopIteration as stop:
                return stop.value
            yield chunk
    finally:
        own.run(gen.close)


async def _async_generator(
    agen: AsyncIterator[Any], context: Any, parent: Any
) -> AsyncIterator[Any]:
    # Attached and never detached: both transports run each call in a task of its own, whose
    # context ends with it (a detach from whatever task finalizes a dropped generator would fail).
    context.attach(parent)
    try:
        async for chunk in agen:
            yield chunk
    finally:
        aclose = getattr(agen, "aclose", None)
        if aclose is not None:
            await aclose()
