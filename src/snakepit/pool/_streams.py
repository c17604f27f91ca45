"""Streaming calls: how a stream holds its worker until it ends, passes its deadline or is settled.

A stream keeps its worker for as long as its consumer reads, and never past its
deadline: a timer ends a stream whose consumer holds it without reading. A
stream that ends early holds its slot until the worker says whether the tool's
thread is free (``Settle``); supervision decides whether to recycle the worker.
``Pool`` inherits :meth:`StreamCalls.stream`.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

from snakepit.errors import ExecutionTimeoutError, SnakepitError, ToolError, WorkerCrashedError
from snakepit.pool._arguments import DEFAULT
from snakepit.pool._calls import CallPolicy
from snakepit.worker._handle import WorkerState

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from snakepit.pool._scheduler import Ticket
    from snakepit.pool._types import WorkerLike

__all__ = ["StreamCalls"]


class StreamCalls(CallPolicy):
    """What ``Pool`` does for a streaming call, on top of what it does around every call."""

    async def stream(
        self,
        tool: str,
        args: dict[str, Any] | None = None,
        *,
        timeout: float | None = DEFAULT,
        session_id: str | None = None,
    ) -> AsyncIterator[Any]:
        """Run a streaming tool and yield its chunks in order.

        The worker is held until the stream ends or the iterator is closed, and never
        past ``timeout``, which bounds the whole stream, queue wait included: if it passes
        while the consumer holds the iterator without reading, the call is ended and the
        worker freed at once, and the next read raises ``ExecutionTimeoutError``. Streams
        are never retried (chunks may already have been consumed).

        A synchronous generator cannot be interrupted in its thread: when a stream ends
        early (closed, cancelled, past its deadline), the worker's slot is held until the
        generator has stopped at its next chunk; if it has not within ``shutdown_grace``,
        the worker is replaced (recycled), so no later call waits behind abandoned work.

        Raises as :meth:`execute`, and ``RequestError`` when ``tool`` is not a streaming
        tool (use :meth:`execute`).
        """
        ticket, worker, args, deadline = await self._begin(
            tool, args, timeout, session_id, streaming=True
        )
        started = self._clock.monotonic()
        chunks = worker.stream(
            tool, args, timeout=deadline, session_id=session_id, request_id=ticket.id
        )
        hold = _StreamHold()
        timer = None
        if deadline is not None:  # real time, like the deadline gRPC enforces
            timer = asyncio.get_running_loop().call_later(
                deadline, self._stream_deadline, hold, ticket, worker, chunks, deadline
            )
        ended = False  # the tool's code is over: its stream ended, it raised, or it was killed
        try:
            hold.reading = True
            async for chunk in chunks:
                if hold.overdue:  # the deadline passed while this chunk was on its way
                    raise _stream_timeout(ticket, worker, deadline, held=False)
                hold.reading = False
                yield chunk
                if hold.expired:
                    raise _stream_timeout(ticket, worker, deadline, held=True)
                hold.reading = True
            ended = True
        except BaseException as exc:
            if not hold.expired:  # else the deadline already counted it
                self._call_failed(ticket, worker, deadline, exc, unary=False)
                ended = isinstance(exc, ToolError | ExecutionTimeoutError | WorkerCrashedError)
            raise
        finally:
            if timer is not None:
                timer.cancel()
            if not hold.expired:  # else the deadline took the slot over
                with contextlib.suppress(Exception):
                    await chunks.aclose()  # type: ignore[attr-defined]
                if ended or not self._must_settle(ticket):
                    self._engine.release(worker.id)
                else:
                    self._tasks.spawn(self._settle(ticket, worker), f"settle-{ticket.id}")
        await self._done(ticket, worker, started)

    def _must_settle(self, ticket: Ticket) -> bool:
        """An abandoned call may still hold a tool thread (a closing pool stops its workers)."""
        return self._state == "running" and self._runs_on_thread(ticket)

    def _stream_deadline(
        self,
        hold: _StreamHold,
        ticket: Ticket,
        worker: WorkerLike,
        chunks: AsyncIterator[Any],
        deadline: float,
    ) -> None:
        """A stream's deadline passed. While a read is under way, gRPC's own deadline ends
        it; otherwise its consumer holds the stream without reading: end it here."""
        hold.overdue = True
        if hold.reading:
            return
        hold.expired = True
        self._counters["timeouts"] += 1
        self._failed(ticket, worker.id, _stream_timeout(ticket, worker, deadline, held=True))
        self._tasks.spawn(self._expire(ticket, worker, chunks), f"expire-{ticket.id}")

    async def _expire(self, ticket: Ticket, worker: WorkerLike, chunks: AsyncIterator[Any]) -> None:
        try:
            with contextlib.suppress(Exception):
                await chunks.aclose()  # type: ignore[attr-defined]
        except BaseException:
            self._engine.release(worker.id)
            raise
        if self._must_settle(ticket):
            await self._settle(ticket, worker)
        else:
            self._engine.release(worker.id)

    async def _settle(self, ticket: Ticket, worker: WorkerLike) -> None:
        """Hold an abandoned call's slot until its worker says the tool's thread is free;
        replace the worker if it is not within ``shutdown_grace``."""
        grace = self.config.shutdown_grace
        try:
            try:
                running = await worker.settle(
                    [ticket.id], wait=grace, timeout=grace + self.config.heartbeat_timeout
                )
                reason = (
                    f"call {ticket.id} ({ticket.tool!r}) ended early but its tool thread "
                    f"still ran {grace}s later"
                )
            except SnakepitError as exc:
                running = [ticket.id]
                reason = (
                    f"call {ticket.id} ({ticket.tool!r}) ended early and the worker could not "
                    f"say whether its tool thread still runs ({type(exc).__name__})"
                )
            engine = self._engine
            ready = worker.state is WorkerState.READY
            running_on = ticket.id in running
            engine.apply(
                engine.supervision.settled(
                    worker.id, running=running_on, reason=reason, ready=ready
                )
            )
        finally:
            self._engine.release(worker.id)


class _StreamHold:
    """Where a stream stands, for its deadline timer."""

    __slots__ = ("expired", "overdue", "reading")

    def __init__(self) -> None:
        self.reading = False  # a read from the worker is under way
        self.overdue = False  # the deadline passed
        self.expired = False  # the deadline ended the call while its consumer held it


def _stream_timeout(
    ticket: Ticket, worker: WorkerLike, deadline: float | None, *, held: bool
) -> ExecutionTimeoutError:
    if held:
        message = (
            f"stream of tool {ticket.tool!r} passed its deadline of {deadline}s while its "
            f"consumer held it without reading; the call was ended and worker {worker.id!r} "
            "freed"
        )
    else:
        message = (
            f"tool {ticket.tool!r} on worker {worker.id!r} ran past its deadline of "
            f"{deadline}s; the worker will be replaced"
        )
    return ExecutionTimeoutError(message, tool=ticket.tool, worker_id=worker.id, timeout=deadline)
