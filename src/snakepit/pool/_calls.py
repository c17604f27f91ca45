"""What happens around each call on the pool: its start, its wait for a worker, its end.

A call is checked, queued and handed a worker; when it fails, it is counted
and published, and what the failure says about its worker (a deadline overrun,
a broken channel, a cancelled tool thread) is reported to the pool's
supervision, whose answer the engine applies. ``Pool`` inherits these methods
(through ``_streams``); they read the pool's engine, counters and tools.
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING, Any

from snakepit.errors import (
    ExecutionTimeoutError,
    PoolClosedError,
    QueueTimeoutError,
    SessionNotFoundError,
    SessionStoreUnavailableError,
    SnakepitError,
    WorkerCrashedError,
)
from snakepit.events import RequestCancelled, RequestCompleted, RequestDispatched, RequestFailed
from snakepit.pool._arguments import call_args, call_deadline, earliest
from snakepit.pool._scheduler import Ticket
from snakepit.worker._base import WorkerState

if TYPE_CHECKING:
    from collections.abc import Iterator

    from snakepit._tasks import TaskOwner
    from snakepit.bridge._store import SessionStore
    from snakepit.clock import Clock
    from snakepit.config import PoolConfig
    from snakepit.events import EventBus
    from snakepit.pool._engine import Engine
    from snakepit.pool._types import WorkerLike
    from snakepit.worker._transport import DescribedTool

__all__ = ["CallPolicy", "after_attempts"]

log = logging.getLogger("snakepit.pool")


class CallPolicy:
    """What ``Pool`` does around each call: begin it, and act on how it ended."""

    name: str
    config: PoolConfig
    events: EventBus
    _clock: Clock
    _engine: Engine
    _tasks: TaskOwner
    _counters: dict[str, int]
    _tools: dict[str, DescribedTool]
    _affinity: dict[str, str]
    _store: SessionStore
    _state: str
    _request_ids: Iterator[int]

    def _closed_error(self) -> PoolClosedError:
        return PoolClosedError(
            f"pool {self.name!r} is {self._state}; create a new Pool to run more calls",
            pool=self.name,
        )

    def _check_running(self) -> None:
        if self._state != "running":
            if self._state in ("new", "starting"):
                raise PoolClosedError(
                    f"pool {self.name!r} is not started; use 'async with Pool(...)' or "
                    "await pool.start() first",
                    pool=self.name,
                )
            raise self._closed_error()

    async def _pin(self, session_id: str, worker_id: str) -> None:
        self._affinity[session_id] = worker_id
        try:
            await self._store.set_affinity(session_id, worker_id)
        except SessionNotFoundError:
            pass  # deleted while the call ran
        except SessionStoreUnavailableError as exc:
            # The call succeeded; the pin is a hint, and this pool keeps its own copy.
            log.warning(
                "pool %s: could not record the affinity of %r: %s", self.name, session_id, exc
            )

    def _failed(self, ticket: Ticket, worker_id: str | None, exc: BaseException) -> None:
        self._counters["errors"] += 1
        self.events.publish(
            RequestFailed(
                source=self.name,
                at=self._clock.monotonic(),
                request_id=ticket.id,
                tool=ticket.tool,
                worker_id=worker_id,
                error=type(exc).__name__,
                message=str(exc).split("\n", 1)[0],
            )
        )

    def _abandoned(self, ticket: Ticket, worker_id: str | None, exc: BaseException) -> None:
        """A call ended by something other than its own error: a cancellation, a stream
        closed early, or an unexpected exception."""
        if isinstance(exc, Exception):
            self._failed(ticket, worker_id, exc)
        elif self.events.wants(RequestCancelled):
            self.events.publish(
                RequestCancelled(
                    source=self.name,
                    at=self._clock.monotonic(),
                    request_id=ticket.id,
                    tool=ticket.tool,
                    worker_id=worker_id,
                )
            )

    async def _begin(
        self,
        tool: str,
        args: Any,
        timeout: Any,
        session_id: str | None,
        *,
        streaming: bool = False,
        began: float | None = None,
    ) -> tuple[Ticket, WorkerLike, dict[str, Any], float | None]:
        """Validate a call and wait for a worker; the caller must release it (``_engine.release``).

        ``timeout`` runs from ``began`` (default: now) and bounds the queue wait too; the
        deadline returned is what is left of it for the worker.
        """
        self._check_running()
        args = call_args(
            self._tools, tool, args, streaming=streaming, pool=self.name, config=self.config
        )
        deadline = call_deadline(timeout, self.config.timeout, tool)
        if began is None:
            began = self._clock.monotonic()
        if session_id is not None:
            await self._store.get_or_create(session_id)  # creates or touches it; may hit the quota
        ticket = Ticket(
            id=next(self._request_ids),
            tool=tool,
            session_id=session_id,
            preferred_worker=self._affinity.get(session_id) if session_id else None,
            queue_deadline=earliest(
                None
                if self.config.queue_timeout is None
                else self._clock.monotonic() + self.config.queue_timeout,
                None if deadline is None else began + deadline,
            ),
        )
        self._counters["requests"] += 1
        try:
            unservable = self._engine.supervision.unservable()
            if unservable is not None:
                raise unservable
            worker_id = await self._engine.acquire(ticket)
            worker = self._engine.workers.get(worker_id)
            if worker is None:  # it exited between being handed over and now
                self._engine.release(worker_id)
                raise WorkerCrashedError(
                    f"worker {worker_id!r} exited before call {ticket.id} ({tool!r}) reached "
                    "it; the call may be retried",
                    worker_id=worker_id,
                    tool=tool,
                )
        except QueueTimeoutError as exc:
            if deadline is not None and ticket.queue_deadline == began + deadline:
                exc = QueueTimeoutError(  # the call's own timeout ran out in the queue
                    f"call {ticket.id} ({tool!r}) waited its whole timeout={deadline}s in the "
                    f"queue of pool {self.name!r} without reaching a worker; raise timeout, "
                    "grow the pool, or send fewer calls at once",
                    **{**exc.details, "timeout": deadline},
                )
            self._failed(ticket, None, exc)
            raise exc from None
        except SnakepitError as exc:
            self._failed(ticket, None, exc)
            raise
        except BaseException as exc:
            self._abandoned(ticket, None, exc)
            raise
        if deadline is not None:
            # What the queue left of the timeout (never zero: gRPC reads 0 as "no deadline").
            deadline = max(deadline - (self._clock.monotonic() - began), 1e-3)
        engine = self._engine
        engine.apply(engine.supervision.dispatched(worker.id, worker.requests))
        if self.events.wants(RequestDispatched):
            now = self._clock.monotonic()
            self.events.publish(
                RequestDispatched(
                    source=self.name,
                    at=now,
                    request_id=ticket.id,
                    tool=tool,
                    worker_id=worker_id,
                    queued_seconds=now - ticket.enqueued_at,
                )
            )
        return ticket, worker, args, deadline

    @contextlib.contextmanager
    def _running(
        self, ticket: Ticket, worker: WorkerLike, deadline: float | None, *, unary: bool
    ) -> Iterator[None]:
        """What every call does when it fails on its worker, and the release at its end."""
        try:
            yield
        except BaseException as exc:
            self._call_failed(ticket, worker, deadline, exc, unary=unary)
            raise
        finally:
            self._engine.release(worker.id)

    def _call_failed(
        self,
        ticket: Ticket,
        worker: WorkerLike,
        deadline: float | None,
        exc: BaseException,
        *,
        unary: bool,
    ) -> None:
        """Count a call's failure; supervision says what it means for its worker."""
        if isinstance(exc, ExecutionTimeoutError):
            self._counters["timeouts"] += 1
        if isinstance(exc, SnakepitError):
            self._failed(ticket, worker.id, exc)
        else:
            self._abandoned(ticket, worker.id, exc)
        engine = self._engine
        engine.apply(
            engine.supervision.call_failed(
                worker.id,
                f"call {ticket.id} ({ticket.tool!r})",
                exc,
                deadline=deadline,
                on_thread=unary and self._runs_on_thread(ticket),
                ready=worker.state is WorkerState.READY,
                exited=worker.state is WorkerState.EXITED,
            )
        )

    def _runs_on_thread(self, ticket: Ticket) -> bool:
        spec = self._tools.get(ticket.tool)
        return spec is not None and not spec.is_async

    async def _done(self, ticket: Ticket, worker: WorkerLike, started: float) -> None:
        if ticket.session_id is not None:
            try:
                await self._pin(ticket.session_id, worker.id)
            except BaseException as exc:
                self._abandoned(ticket, worker.id, exc)
                raise
        self._counters["completed"] += 1
        if self.events.wants(RequestCompleted):
            now = self._clock.monotonic()
            self.events.publish(
                RequestCompleted(
                    source=self.name,
                    at=now,
                    request_id=ticket.id,
                    tool=ticket.tool,
                    worker_id=worker.id,
                    seconds=now - started,
                )
            )


def after_attempts(crashes: list[WorkerCrashedError], retries: int) -> WorkerCrashedError:
    """The error of a call whose worker crashed under every attempt it was allowed."""
    last = crashes[-1]
    if retries == 0:
        last.details["attempts"] = 1
        setattr(last, "attempts", 1)  # noqa: B010 - a detail is an attribute too
        return last
    tried = "; ".join(str(c).split("\n", 1)[0] for c in crashes)
    return WorkerCrashedError(
        f"{last.message} (attempt {len(crashes)} of {retries + 1}: the call was run "
        f"{len(crashes)} times, each on a fresh worker, and every worker crashed: {tried})",
        **{**last.details, "attempts": len(crashes), "errors": [str(c) for c in crashes]},
    )
