"""What to do about a pool's workers, decided in pure code: slot states in, actions out.

A pool has ``size`` slots (``w1``..``wN``); each holds one worker at a time and
has at most one replacement under way. :class:`Supervision` keeps that
bookkeeping and answers each thing that happens (a worker exited, a start
failed, a replacement became ready, a call was dispatched or failed, a check
found a worker too old, too big or silent) with *actions* for the pool's engine
to carry out (``_actions``): restart a slot after a delay, recycle, retire or
kill a worker, degrade the pool, count a crash or a restart. It alone writes
its slots' fields. Nothing here runs on an event loop, starts a process or
reads a clock; time comes in as ``now``, so every rule is unit tested without a
loop, like the :class:`~snakepit.pool._scheduler.Scheduler` it reads to know
which workers take work.

Rules, in short: an unexpected exit counts toward the restart intensity and is
restarted after backoff; an exit the pool caused (a kill for a caller's deadline,
a retirement) is replaced at once; beyond the intensity the pool is degraded and
stops restarting; a worker is recycled (replacement first, then the old one
retires) after ``max_requests`` calls, ``ttl`` seconds, or past ``memory_limit_mb``;
a recycled worker whose successor cannot start retires, and its exit refills the slot.
A worker that cannot be trusted is killed: one that ran past a caller's deadline or
was cancelled in a tool thread (not counted), one whose channel broke or that missed
a heartbeat (counted).
"""

from __future__ import annotations

import random
from asyncio import CancelledError
from typing import TYPE_CHECKING

from snakepit.errors import ExecutionTimeoutError, PoolDegradedError, WorkerCrashedError
from snakepit.pool._actions import (
    CountCrash,
    CountRestart,
    Degrade,
    Kill,
    Recycle,
    Restart,
    Retire,
    SlotState,
)
from snakepit.pool._restarts import RestartPolicy, RestartTracker

if TYPE_CHECKING:
    from collections.abc import Iterable

    from snakepit.config import PoolConfig
    from snakepit.pool._actions import Action
    from snakepit.pool._scheduler import Scheduler

__all__ = ["Supervision"]


class Supervision:
    """The supervisor's decisions for one pool.

    Args:
        name: the pool's name, for messages.
        config: the pool's options (``size``, restart intensity, recycling limits).
        scheduler: the pool's scheduler, read to know which workers exist and accept work.
        rng: the source of backoff jitter (seed it for reproducible delays).
    """

    def __init__(
        self,
        *,
        name: str,
        config: PoolConfig,
        scheduler: Scheduler,
        rng: random.Random | None = None,
    ) -> None:
        self.name = name
        self.config = config
        self.scheduler = scheduler
        self.slots = [SlotState(i + 1) for i in range(config.size)]
        self.slot_of: dict[str, SlotState] = {}  # the workers that held a slot and still run
        self._running = False  # replacements start only while running
        self.restarts = RestartTracker(
            RestartPolicy(
                max_restarts=config.max_restarts,
                window=config.restart_window,
                backoff_initial=config.backoff_initial,
                backoff_max=config.backoff_max,
            ),
            rng=rng if rng is not None else random.Random(),
        )
        # Workers stopped on purpose: their exit is not a crash.
        self._intentional: set[str] = set()

    # -- observation ---------------------------------------------------------------------------

    @property
    def degraded(self) -> bool:
        return self.restarts.degraded

    @property
    def running(self) -> bool:
        """Whether replacements start (between :meth:`start` and :meth:`stop`)."""
        return self._running

    def unservable(self) -> PoolDegradedError | None:
        """The error for a call no worker can ever take now (degraded, nothing live or coming)."""
        if not self.degraded or self.scheduler.worker_ids:
            return None
        if any(slot.replacing for slot in self.slots):
            return None
        c = self.config
        return PoolDegradedError(
            f"pool {self.name!r} is degraded with no live worker: restarts stopped after more "
            f"than {c.max_restarts} unexpected exits within {c.restart_window}s; fix the "
            "cause, then call pool.recover() (it also retries by itself after restart_window)",
            pool=self.name,
        )

    def maintenance_interval(self) -> float | None:
        """How often heartbeats and the TTL and memory checks run; None when none is set."""
        c = self.config
        if not (c.heartbeat_interval or c.ttl or c.memory_limit_mb):
            return None
        return c.heartbeat_interval or min(x for x in (c.ttl, 1.0) if x)

    # -- starts --------------------------------------------------------------------------------

    def start(self) -> None:
        """The pool starts its workers: from now on, a worker that exits is replaced."""
        self._running = True

    def stop(self) -> None:
        """The pool closes: no replacement starts from now on."""
        self._running = False

    def new_worker_id(self, slot: SlotState) -> str:
        """The id of the next occupant of ``slot`` (``w1``, then ``w1-2``, ...)."""
        slot.generation += 1
        return slot.name if slot.generation == 1 else f"{slot.name}-{slot.generation}"

    def occupy(self, slot: SlotState, worker_id: str, now: float) -> list[Action]:
        """``worker_id`` is ready and now holds ``slot``: the occupant it displaces retires,
        and a replacement after an exit counts as a restart (the slot's backoff starts over)."""
        old, slot.worker_id = slot.worker_id, worker_id
        self.slot_of[worker_id] = slot
        actions: list[Action] = []
        if slot.replacing:
            if slot.successor_of is None:
                self.restarts.record_success(slot.name, now)
                actions.append(CountRestart(slot.index))
            self._replacement_over(slot)
        if old is not None and old != worker_id and old in self.slot_of:
            self._intentional.add(old)
            actions.append(Retire(old))
        return actions

    def start_failed(self, slot: SlotState, now: float, message: str) -> list[Action]:
        """A replacement for ``slot`` failed to start with ``message``.

        The recycled occupant it was to succeed, if it still runs, retires (its exit then
        refills the slot at once); otherwise the start is retried after backoff, or the
        pool degrades beyond the restart intensity.
        """
        if not slot.replacing:
            return []  # a start of the pool or of recover(): its caller gets the error
        recycled = slot.successor_of
        self._replacement_over(slot)
        if recycled is not None and slot.worker_id == recycled and recycled in self.slot_of:
            self._intentional.add(recycled)
            return [Retire(recycled)]
        if not self._running:
            return []
        retry = self.restarts.record_failure(slot.name, now)
        if retry is None:
            return [self._degrade(slot, f"replacements keep failing to start: {message}")]
        return [self._restart(slot, retry, retry=True)]

    def replacement_ended(self, slot: SlotState) -> None:
        """``slot``'s replacement ended without a start or a failure (cancelled, or closing)."""
        self._replacement_over(slot)

    def reset(self) -> None:
        """Forget the restart history and leave the degraded state (``recover``)."""
        self.restarts.reset()

    def vacant(self, slot: SlotState) -> bool:
        """Whether ``slot`` holds no worker and none is on its way (``recover`` fills it)."""
        return slot.worker_id is None and not slot.replacing

    # -- exits ---------------------------------------------------------------------------------

    def exited(self, worker_id: str, pid: int | None, code: int | None, now: float) -> list[Action]:
        """``worker_id`` exited (crash, kill or stop): replace it if it still held its slot."""
        expected = worker_id in self._intentional
        self._intentional.discard(worker_id)
        slot = self.slot_of.pop(worker_id, None)
        if slot is None or slot.worker_id != worker_id or not self._running:
            return []  # replaced already (recycling), or the pool is closing
        if expected:
            return [] if slot.replacing else [self._restart(slot, 0.0)]
        crash = CountCrash(worker_id, pid, code)
        delay = self.restarts.record_failure(slot.name, now)
        if delay is None:
            c = self.config
            reason = (
                f"more than {c.max_restarts} unexpected worker exits within "
                f"{c.restart_window}s; not restarting slot {slot.name}"
            )
            return [crash, self._degrade(slot, reason)]
        if slot.replacing:  # a recycled worker's successor is on its way already
            return [crash]
        return [crash, self._restart(slot, delay)]

    # -- recycling and killing -----------------------------------------------------------------

    def recycle(self, worker_id: str, reason: str) -> list[Recycle]:
        """Recycle ``worker_id``, unless it is no longer its slot's occupant or already drains."""
        slot = self.slot_of.get(worker_id)
        if slot is None or slot.worker_id != worker_id or slot.replacing:
            return []
        s = self.scheduler
        if not s.has_worker(worker_id) or not s.is_accepting(worker_id):
            return []  # already draining
        slot.replacing = True
        slot.successor_of = worker_id
        return [Recycle(worker_id, reason)]

    def dispatched(self, worker_id: str, requests: int) -> list[Recycle]:
        """A call was handed to a worker that had served ``requests``: if it is the last
        ``max_requests`` allows, the worker stops accepting now."""
        limit = self.config.max_requests
        if limit is not None and requests + 1 >= limit:
            return self.recycle(worker_id, f"max_requests ({limit})")
        return []

    def too_old(self, now: float, ready_at: Iterable[tuple[str, float | None]]) -> list[Recycle]:
        """The ready workers (id, when ready) that have lived ``ttl`` seconds."""
        ttl = self.config.ttl
        if ttl is None:
            return []
        return [
            decision
            for worker_id, since in ready_at
            if since is not None and now - since >= ttl
            for decision in self.recycle(worker_id, f"ttl ({ttl}s)")
        ]

    def too_big(self, rss: Iterable[tuple[str, int | None]]) -> list[Recycle]:
        """The workers (id, resident bytes or None) above ``memory_limit_mb``."""
        limit_mb = self.config.memory_limit_mb
        if limit_mb is None:
            return []
        return [
            decision
            for worker_id, size in rss
            if size is not None and size > limit_mb * 1024 * 1024
            for decision in self.recycle(
                worker_id, f"memory ({size / 2**20:.0f} MiB > {limit_mb} MiB)"
            )
        ]

    def call_failed(
        self,
        worker_id: str,
        call: str,
        error: BaseException,
        *,
        deadline: float | None,
        on_thread: bool,
        ready: bool,
        exited: bool,
    ) -> list[Kill]:
        """Call ``call`` on ``worker_id`` ended with ``error``: kill the worker if that says
        it cannot be trusted.

        A deadline overrun and the cancellation of a call running in a tool thread
        (``on_thread``: a thread cannot be interrupted) kill it, not counted: the pool
        caused that exit; a worker that is stopping (neither ``ready`` nor ``exited``) is
        killed too, as its call may hold up its stop. A broken channel kills it, counted,
        only while it is ``ready``: a stopping worker's channel breaks as it ends.
        """
        if isinstance(error, ExecutionTimeoutError):
            reason = f"{call} ran past its {deadline}s deadline"
            return self._kill(worker_id, reason, counted=False, exited=exited)
        if isinstance(error, WorkerCrashedError):
            reason = "its channel broke while the process still ran"
            return self._kill(worker_id, reason, counted=True, exited=not ready)
        if isinstance(error, CancelledError) and on_thread:
            reason = f"{call} was cancelled while running"
            return self._kill(worker_id, reason, counted=False, exited=exited)
        return []

    def heartbeat_failed(self, worker_id: str, error: str, *, ready: bool) -> list[Kill]:
        """``worker_id`` did not answer a heartbeat (``error``): kill it if it still serves,
        counted (it stopped answering by itself)."""
        return self._kill(worker_id, f"heartbeat failed: {error}", counted=True, exited=not ready)

    def settled(self, worker_id: str, *, running: bool, reason: str, ready: bool) -> list[Recycle]:
        """A call that ended early was settled on ``worker_id``: if its tool thread is still
        ``running`` (or nobody could say), the worker is recycled for ``reason``."""
        if not running or not ready:
            return []
        return self.recycle(worker_id, reason)

    # -- internals -----------------------------------------------------------------------------

    def _kill(self, worker_id: str, reason: str, *, counted: bool, exited: bool) -> list[Kill]:
        """Kill a worker that cannot be trusted, unless it has ``exited`` already.

        ``counted``: its exit counts toward the restart intensity.
        """
        if exited or worker_id not in self.slot_of:
            return []
        if not counted:
            self._intentional.add(worker_id)
        return [Kill(worker_id, reason)]

    def _restart(self, slot: SlotState, delay: float, *, retry: bool = False) -> Restart:
        slot.replacing = True
        attempt = self.restarts.consecutive_failures(slot.name)
        return Restart(slot.index, delay, attempt, retry)

    def _replacement_over(self, slot: SlotState) -> None:
        slot.replacing = False
        slot.successor_of = None

    def _degrade(self, slot: SlotState, reason: str) -> Degrade:
        slot.worker_id = None
        return Degrade(slot.index, reason)

    def slot(self, index: int) -> SlotState:
        """The slot numbered ``index`` (from 1)."""
        return self.slots[index - 1]
