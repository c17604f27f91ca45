"""Which request runs on which worker: the pool's dispatch decisions, in pure code.

The :class:`Scheduler` knows the workers (their capacity, how many requests
each runs, whether it takes new work) and the queue of requests that wait.
Every call returns *decisions* (:class:`Dispatch`, :class:`Queued`,
:class:`Rejected`) that the async pool applies: send the request, park the
caller, or fail the caller with the error carried in the decision. Nothing
here touches asyncio, processes or a clock; time comes in as ``now``
(monotonic seconds), so every rule is unit tested without an event loop.

Rules, in short:

* A worker is *available* when it accepts work and runs fewer than its
  ``capacity`` requests. Among available workers the one running the fewest
  requests wins, then the one idle the longest, so load spreads over all of
  them.
* A request's affinity (its session's worker) is honoured by the scheduler's
  :data:`AffinityMode`: ``hint`` prefers that worker, ``strict_queue`` waits
  for it, ``strict_fail_fast`` fails at once when it is busy.
* The queue is FIFO and bounded by ``max_queue``. A freed slot goes to the
  oldest waiting request that may run there; a request waiting for one busy
  worker never holds back the requests behind it.

Invariant kept after every call: no queued request could run on an available
worker. Hence a new request that finds an available worker may take it
without jumping ahead of anyone who could have used it.
"""

from __future__ import annotations

import heapq
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

from snakepit.errors import (
    PoolSaturatedError,
    QueueTimeoutError,
    SessionWorkerUnavailableError,
    SnakepitError,
    WorkerBusyError,
)

__all__ = [
    "AffinityMode",
    "Decision",
    "Dispatch",
    "Queued",
    "Rejected",
    "Scheduler",
    "Ticket",
]

AffinityMode: TypeAlias = Literal["hint", "strict_queue", "strict_fail_fast"]

_AFFINITY_MODES: tuple[AffinityMode, ...] = ("hint", "strict_queue", "strict_fail_fast")


@dataclass(eq=False)
class Ticket:
    """One request as the scheduler sees it; compared and hashed by identity.

    Attributes:
        id: The request's id (for messages and logs).
        tool: The tool the request calls (for messages).
        session_id: The request's session, if any.
        preferred_worker: The session's affinity worker, if any.
        queue_deadline: Absolute monotonic time after which a queued ticket is
            rejected with :class:`~snakepit.errors.QueueTimeoutError`; ``None``
            waits forever.
        enqueued_at: When the ticket was submitted; set by
            :meth:`Scheduler.submit`.
        payload: Opaque to the scheduler (the pool keeps the caller's future here).
    """

    id: int
    tool: str
    session_id: str | None = None
    preferred_worker: str | None = None
    queue_deadline: float | None = None
    enqueued_at: float = 0.0
    payload: Any = None


@dataclass(frozen=True)
class Dispatch:
    """Send ``ticket`` to ``worker_id`` now; its in-flight count already includes it."""

    ticket: Ticket
    worker_id: str


@dataclass(frozen=True)
class Queued:
    """``ticket`` waits in the queue; a later call dispatches or rejects it."""

    ticket: Ticket


@dataclass(frozen=True)
class Rejected:
    """Fail ``ticket``'s caller with ``error``; the scheduler has forgotten the ticket."""

    ticket: Ticket
    error: SnakepitError


Decision: TypeAlias = Dispatch | Queued | Rejected


class _Worker:
    """The scheduler's bookkeeping for one worker."""

    __slots__ = ("accepting", "capacity", "id", "idle_since", "in_flight")

    def __init__(self, worker_id: str, capacity: int, idle_since: tuple[float, int]) -> None:
        self.id = worker_id
        self.capacity = capacity
        self.in_flight = 0
        self.accepting = True
        # (now of the last release, tie-breaking sequence number): smaller = idle longer.
        self.idle_since = idle_since

    @property
    def available(self) -> bool:
        return self.accepting and self.in_flight < self.capacity


class Scheduler:
    """Decides where each request runs, which wait, and which fail.

    Args:
        name: The pool's name, used in error messages.
        max_queue: How many tickets may wait; ``0`` disables the queue (a ticket
            that finds no slot is rejected at once).
        affinity: How a ticket's ``preferred_worker`` is honoured.

    Raises:
        ValueError: If ``max_queue`` is negative or ``affinity`` is unknown.
    """

    def __init__(
        self, *, name: str = "", max_queue: int = 1000, affinity: AffinityMode = "hint"
    ) -> None:
        if max_queue < 0:
            raise ValueError(f"max_queue must be >= 0 (0 disables the queue), got {max_queue!r}")
        if affinity not in _AFFINITY_MODES:
            raise ValueError(f"affinity must be one of {_AFFINITY_MODES}, got {affinity!r}")
        self.name = name
        self.max_queue = max_queue
        self.affinity: AffinityMode = affinity
        self._workers: dict[str, _Worker] = {}
        self._seq = 0
        # Tickets any worker may run (no affinity, or only a hint), oldest first.
        self._general: OrderedDict[Ticket, int] = OrderedDict()
        # strict_queue tickets, per the worker they wait for, oldest first.
        self._strict: dict[str, OrderedDict[Ticket, int]] = {}
        # Every queued ticket -> (its strict worker or None, its sequence number).
        self._where: dict[Ticket, tuple[str | None, int]] = {}
        # (deadline, seq, ticket) of queued tickets; entries of tickets that left the
        # queue stay until they surface (checked against ``_where``).
        self._deadlines: list[tuple[float, int, Ticket]] = []

    # -- workers -----------------------------------------------------------------------------

    def add_worker(self, worker_id: str, capacity: int = 1) -> list[Dispatch]:
        """Add a ready worker; its slots take queued tickets at once.

        Args:
            worker_id: A new, unique id (a restarted worker gets a new id, so a
                late :meth:`release` for the old one cannot touch it).
            capacity: How many requests it runs at a time (``>= 1``).

        Returns:
            The queued tickets now dispatched to it, oldest first.

        Raises:
            ValueError: If the id is already present or ``capacity < 1``.
        """
        if worker_id in self._workers:
            raise ValueError(
                f"worker {worker_id!r} is already in the scheduler; ids must be unique"
            )
        if capacity < 1:
            raise ValueError(f"capacity of worker {worker_id!r} must be >= 1, got {capacity!r}")
        worker = _Worker(worker_id, capacity, (float("-inf"), self._next_seq()))
        self._workers[worker_id] = worker
        return self._fill(worker)

    def remove_worker(self, worker_id: str) -> list[Rejected]:
        """Forget a worker that is gone, with its in-flight count.

        Tickets waiting for exactly this worker (``strict_queue``) can never run
        and are rejected with :class:`~snakepit.errors.SessionWorkerUnavailableError`.
        Removing an unknown worker does nothing.

        Args:
            worker_id: The worker that left.

        Returns:
            The rejected waiters, oldest first.
        """
        if self._workers.pop(worker_id, None) is None:
            return []
        waiters = self._strict.pop(worker_id, None)
        if not waiters:
            return []
        rejected: list[Rejected] = []
        for ticket in waiters:
            del self._where[ticket]
            error = SessionWorkerUnavailableError(
                f"worker {worker_id!r} that session {ticket.session_id!r} is pinned to left "
                f"{self._label} while the request waited for it (affinity 'strict_queue'); "
                "retry in a new session, or use affinity 'hint' to run on any worker",
                worker_id=worker_id,
                session_id=ticket.session_id,
                tool=ticket.tool,
                pool=self.name,
            )
            rejected.append(Rejected(ticket, error))
        self._compact_deadlines()
        return rejected

    def set_accepting(self, worker_id: str, accepting: bool) -> list[Dispatch]:
        """Start (``False``: draining) or stop refusing new work on a worker.

        A draining worker finishes what it runs but takes nothing new; tickets
        waiting for it strictly keep waiting (until it accepts again or is removed).

        Args:
            worker_id: A worker in the scheduler.
            accepting: Whether it may take new work.

        Returns:
            The queued tickets dispatched to it (only when it accepts again).

        Raises:
            ValueError: If the worker is unknown.
        """
        worker = self._get(worker_id)
        worker.accepting = accepting
        return self._fill(worker) if accepting else []

    # -- requests ----------------------------------------------------------------------------

    def submit(self, ticket: Ticket, now: float) -> Decision:
        """Dispatch, queue or reject a new request; sets ``ticket.enqueued_at = now``.

        Args:
            ticket: The request; not already queued.
            now: The current monotonic time.

        Returns:
            The decision for this ticket.

        Raises:
            ValueError: If the ticket is already queued.
        """
        if ticket in self._where:
            raise ValueError(f"ticket {ticket.id} is already queued")
        ticket.enqueued_at = now
        preferred = ticket.preferred_worker
        if preferred is not None and self.affinity != "hint":
            return self._submit_strict(ticket, preferred)
        if preferred is not None:
            worker = self._workers.get(preferred)
            if worker is not None and worker.available:
                return self._dispatch(ticket, worker)
        worker = self._pick()
        if worker is not None:
            return self._dispatch(ticket, worker)
        return self._enqueue(ticket, None)

    def release(self, worker_id: str, now: float) -> list[Dispatch]:
        """Mark one in-flight request on a worker finished; its slot goes to the queue.

        Releasing a worker that was already removed does nothing (its requests
        may finish after it left).

        Args:
            worker_id: The worker that finished a request.
            now: The current monotonic time (the worker is idle since then).

        Returns:
            The queued tickets now dispatched to it, oldest first.

        Raises:
            ValueError: If the worker runs no request (a release without a dispatch).
        """
        worker = self._workers.get(worker_id)
        if worker is None:
            return []
        if worker.in_flight == 0:
            raise ValueError(
                f"release of worker {worker_id!r} which runs no request; "
                "each Dispatch must be released exactly once"
            )
        worker.in_flight -= 1
        worker.idle_since = (now, self._next_seq())
        return self._fill(worker)

    def cancel(self, ticket: Ticket) -> bool:
        """Take a queued ticket out of the queue (its caller gave up).

        Args:
            ticket: The ticket to remove.

        Returns:
            ``True`` if it was queued, ``False`` otherwise (already dispatched,
            rejected or never submitted).
        """
        where = self._where.pop(ticket, None)
        if where is None:
            return False
        strict_worker = where[0]
        if strict_worker is None:
            del self._general[ticket]
        else:
            waiters = self._strict[strict_worker]
            del waiters[ticket]
            if not waiters:
                del self._strict[strict_worker]
        self._compact_deadlines()
        return True

    def expire(self, now: float) -> list[Rejected]:
        """Reject queued tickets whose ``queue_deadline`` is at or before ``now``.

        Args:
            now: The current monotonic time.

        Returns:
            The timed-out tickets with :class:`~snakepit.errors.QueueTimeoutError`,
            earliest deadline first.
        """
        rejected: list[Rejected] = []
        while self._deadlines and self._deadlines[0][0] <= now:
            _, seq, ticket = heapq.heappop(self._deadlines)
            if not self._is_queued(ticket, seq):
                continue
            queued = self.queued
            self.cancel(ticket)
            waited = now - ticket.enqueued_at
            error = QueueTimeoutError(
                f"request {ticket.id} for tool {ticket.tool!r} waited {waited:.3f}s in the queue "
                f"of {self._label} ({queued} requests queued) and passed its queue deadline; "
                "raise queue_timeout, grow the pool, or send fewer requests at once",
                tool=ticket.tool,
                session_id=ticket.session_id,
                waited=waited,
                queued=queued,
                pool=self.name,
            )
            rejected.append(Rejected(ticket, error))
        return rejected

    def next_deadline(self) -> float | None:
        """The earliest ``queue_deadline`` among queued tickets, or ``None`` if none has one."""
        heap = self._deadlines
        while heap:
            deadline, seq, ticket = heap[0]
            if self._is_queued(ticket, seq):
                return deadline
            heapq.heappop(heap)
        return None

    def clear_queue(self) -> list[Ticket]:
        """Empty the queue (the pool is closing) and return the tickets, oldest first."""
        tickets = sorted(self._where, key=lambda ticket: self._where[ticket][1])
        self._general.clear()
        self._strict.clear()
        self._where.clear()
        self._deadlines.clear()
        return tickets

    # -- introspection -----------------------------------------------------------------------

    def in_flight(self, worker_id: str) -> int:
        """How many requests the worker runs. Raises ValueError if it is unknown."""
        return self._get(worker_id).in_flight

    def is_idle(self, worker_id: str) -> bool:
        """Whether the worker runs no request (accepting or not). Raises ValueError if unknown."""
        return self._get(worker_id).in_flight == 0

    def is_accepting(self, worker_id: str) -> bool:
        """Whether the worker takes new work (not draining). Raises ValueError if unknown."""
        return self._get(worker_id).accepting

    def has_worker(self, worker_id: str) -> bool:
        """Whether the worker is in the scheduler."""
        return worker_id in self._workers

    def idle_workers(self) -> list[str]:
        """The workers that run no request, in the order they were added."""
        return [w.id for w in self._workers.values() if w.in_flight == 0]

    def queued_tickets(self) -> list[Ticket]:
        """The queued tickets, oldest first (O(queue log queue); for statistics and tests)."""
        return sorted(self._where, key=lambda ticket: self._where[ticket][1])

    @property
    def queued(self) -> int:
        """How many tickets wait."""
        return len(self._where)

    @property
    def busy_workers(self) -> int:
        """How many workers run at least one request."""
        return sum(1 for w in self._workers.values() if w.in_flight)

    @property
    def idle_count(self) -> int:
        """How many workers run no request (accepting or not)."""
        return sum(1 for w in self._workers.values() if not w.in_flight)

    @property
    def capacity(self) -> int:
        """How many requests the accepting workers can run at once (draining ones excluded)."""
        return sum(w.capacity for w in self._workers.values() if w.accepting)

    @property
    def worker_ids(self) -> list[str]:
        """The workers' ids in the order they were added."""
        return list(self._workers)

    def __repr__(self) -> str:
        return (
            f"<Scheduler {self.name!r} [busy {self.busy_workers}, idle {self.idle_count} "
            f"| queued {self.queued}]>"
        )

    # -- internals ---------------------------------------------------------------------------

    @property
    def _label(self) -> str:
        return f"pool {self.name!r}" if self.name else "the pool"

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _get(self, worker_id: str) -> _Worker:
        try:
            return self._workers[worker_id]
        except KeyError:
            raise ValueError(
                f"unknown worker {worker_id!r} (never added or already removed)"
            ) from None

    def _pick(self) -> _Worker | None:
        """The available worker running the fewest requests, then idle the longest."""
        best: _Worker | None = None
        for worker in self._workers.values():
            if not worker.available:
                continue
            if (
                best is None
                or worker.in_flight < best.in_flight
                or (worker.in_flight == best.in_flight and worker.idle_since < best.idle_since)
            ):
                best = worker
        return best

    def _submit_strict(self, ticket: Ticket, worker_id: str) -> Decision:
        worker = self._workers.get(worker_id)
        if worker is None:
            return Rejected(
                ticket,
                SessionWorkerUnavailableError(
                    f"worker {worker_id!r} that session {ticket.session_id!r} is pinned to is "
                    f"not in {self._label} (it exited or was recycled; affinity "
                    f"{self.affinity!r}); retry in a new session, or use affinity 'hint' "
                    "to run on any worker",
                    worker_id=worker_id,
                    session_id=ticket.session_id,
                    tool=ticket.tool,
                    pool=self.name,
                ),
            )
        if worker.available:
            return self._dispatch(ticket, worker)
        if self.affinity == "strict_queue":
            return self._enqueue(ticket, worker_id)
        if not worker.accepting:
            return Rejected(
                ticket,
                SessionWorkerUnavailableError(
                    f"worker {worker_id!r} that session {ticket.session_id!r} is pinned to is "
                    f"draining in {self._label} and takes no new work (affinity "
                    "'strict_fail_fast'); retry in a new session, or use affinity 'hint' "
                    "to run on any worker",
                    worker_id=worker_id,
                    session_id=ticket.session_id,
                    tool=ticket.tool,
                    pool=self.name,
                    draining=True,
                ),
            )
        return Rejected(
            ticket,
            WorkerBusyError(
                f"worker {worker_id!r} of session {ticket.session_id!r} is busy "
                f"({worker.in_flight}/{worker.capacity} requests in flight) and affinity is "
                "'strict_fail_fast'; retry later, or use affinity 'strict_queue' to wait "
                "or 'hint' to run elsewhere",
                worker_id=worker_id,
                session_id=ticket.session_id,
                tool=ticket.tool,
                in_flight=worker.in_flight,
                capacity=worker.capacity,
                pool=self.name,
            ),
        )

    def _dispatch(self, ticket: Ticket, worker: _Worker) -> Dispatch:
        worker.in_flight += 1
        return Dispatch(ticket, worker.id)

    def _enqueue(self, ticket: Ticket, strict_worker: str | None) -> Queued | Rejected:
        if self.queued >= self.max_queue:
            if self.max_queue == 0:
                message = (
                    f"{self._label} has no free worker and queueing is disabled "
                    "(max_queue=0); retry later or raise max_queue/size"
                )
            else:
                message = (
                    f"{self._label} queue is full (max_queue={self.max_queue}); "
                    "retry later or raise max_queue/size"
                )
            error = PoolSaturatedError(
                message,
                max_queue=self.max_queue,
                queued=self.queued,
                tool=ticket.tool,
                pool=self.name,
            )
            return Rejected(ticket, error)
        seq = self._next_seq()
        if strict_worker is None:
            self._general[ticket] = seq
        else:
            self._strict.setdefault(strict_worker, OrderedDict())[ticket] = seq
        self._where[ticket] = (strict_worker, seq)
        if ticket.queue_deadline is not None:
            heapq.heappush(self._deadlines, (ticket.queue_deadline, seq, ticket))
        return Queued(ticket)

    def _fill(self, worker: _Worker) -> list[Dispatch]:
        """Give the worker's free slots to the oldest tickets that may run on it."""
        dispatched: list[Dispatch] = []
        waiters = self._strict.get(worker.id)
        while worker.available:
            queue = self._general
            head = next(iter(queue.values()), None)
            if waiters:
                strict_seq = next(iter(waiters.values()))
                if head is None or strict_seq < head:
                    queue, head = waiters, strict_seq
            if head is None:
                break
            ticket, _ = queue.popitem(last=False)
            del self._where[ticket]
            dispatched.append(self._dispatch(ticket, worker))
        if waiters is not None and not waiters:
            del self._strict[worker.id]
        if dispatched:
            self._compact_deadlines()
        return dispatched

    def _is_queued(self, ticket: Ticket, seq: int) -> bool:
        where = self._where.get(ticket)
        return where is not None and where[1] == seq

    def _compact_deadlines(self) -> None:
        """Drop stale deadline entries once they outnumber the live ones (keeps memory bounded)."""
        if len(self._deadlines) > 2 * len(self._where) + 16:
            self._deadlines = [e for e in self._deadlines if self._is_queued(e[2], e[1])]
            heapq.heapify(self._deadlines)
