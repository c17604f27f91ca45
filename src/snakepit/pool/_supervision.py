"""What to do about a pool's workers, decided in pure code: slot states in, actions out.

A pool has ``size`` slots (``w1``..``wN``); each holds one worker at a time and
has at most one replacement under way. :class:`Supervision` keeps that
bookkeeping and answers each thing that happens (a worker exited, a start
failed, a call was dispatched, a check found a worker too old or too big, a
call or heartbeat found a worker untrustworthy) with *actions* for the pool's
engine to carry out: :class:`Restart` a slot after a delay, :class:`Recycle` a
worker, :class:`Kill` one (counted toward the restart intensity or not),
:class:`Degrade` the pool, or :class:`CountCrash`. Nothing here touches
asyncio, processes or a clock; time comes in as ``now``, so every rule is unit
tested without an event loop, like the :class:`~snakepit.pool._scheduler.Scheduler`
it reads to know which workers take work.

Rules, in short: an unexpected exit counts toward the restart intensity and is
restarted after backoff; an exit the pool caused (a kill for a caller's deadline,
a retirement) is replaced at once; beyond the intensity the pool is degraded and
stops restarting; a worker is recycled (replacement first, then the old one
retires) after ``max_requests`` calls, ``ttl`` seconds, or past ``memory_limit_mb``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeAlias

from snakepit.errors import PoolDegradedError
from snakepit.pool._restarts import RestartPolicy, RestartTracker

if TYPE_CHECKING:
    from collections.abc import Iterable

    from snakepit.config import PoolConfig
    from snakepit.pool._scheduler import Scheduler

__all__ = [
    "Action",
    "CountCrash",
    "Degrade",
    "Kill",
    "Recycle",
    "Restart",
    "SlotState",
    "Supervision",
]


@dataclass(frozen=True)
class Restart:
    """Start a new occupant for slot ``slot`` after ``delay`` seconds of the clock.

    ``attempt`` is how many times the slot failed in a row (0 after an exit the pool caused).
    """

    slot: int
    delay: float
    attempt: int = 0


@dataclass(frozen=True)
class Recycle:
    """Stop sending work to ``worker_id``, start its replacement, stop it once idle."""

    worker_id: str
    reason: str


@dataclass(frozen=True)
class Kill:
    """Kill ``worker_id`` now; ``counted``: its exit counts toward the restart intensity."""

    worker_id: str
    reason: str
    counted: bool


@dataclass(frozen=True)
class Degrade:
    """Stop restarting: slot ``slot`` stays empty until ``recover`` or ``restart_window``."""

    slot: int
    reason: str


@dataclass(frozen=True)
class CountCrash:
    """``worker_id`` (process ``pid``) exited unexpectedly with ``code``: count and log it."""

    worker_id: str
    pid: int | None
    code: int | None


Action: TypeAlias = Restart | Recycle | Kill | Degrade | CountCrash


class SlotState:
    """A place for one worker: its current occupant's id and whether a replacement is under way."""

    __slots__ = ("generation", "index", "replacing", "worker_id")

    def __init__(self, index: int) -> None:
        self.index = index
        self.generation = 0
        self.worker_id: str | None = None
        self.replacing = False

    @property
    def name(self) -> str:
        return f"w{self.index}"

    def __repr__(self) -> str:
        more = " replacing" if self.replacing else ""
        return f"<SlotState {self.name} {self.worker_id or 'empty'}{more}>"


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
        self.slot_of: dict[str, SlotState] = {}
        self.running = False  # replacements start only while running
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

    def new_worker_id(self, slot: SlotState) -> str:
        """The id of the next occupant of ``slot`` (``w1``, then ``w1-2``, ...)."""
        slot.generation += 1
        worker_id = slot.name if slot.generation == 1 else f"{slot.name}-{slot.generation}"
        self.slot_of[worker_id] = slot
        return worker_id

    def start_abandoned(self, worker_id: str) -> None:
        """The worker ``worker_id`` never became ready: it never held its slot."""
        self.slot_of.pop(worker_id, None)

    def occupy(self, slot: SlotState, worker_id: str) -> str | None:
        """``worker_id`` is ready and now holds ``slot``; returns the occupant it displaces."""
        old, slot.worker_id = slot.worker_id, worker_id
        return old if old != worker_id else None

    def restarted(self, slot: SlotState, now: float) -> None:
        """A replacement after an exit is ready: the slot's backoff starts over."""
        self.restarts.record_success(slot.name, now)

    def start_failed(self, slot: SlotState, now: float, message: str) -> Restart | Degrade:
        """A replacement for ``slot`` failed to start: retry after backoff, or degrade."""
        retry = self.restarts.record_failure(slot.name, now)
        if retry is None:
            return self._degrade(slot, f"replacements keep failing to start: {message}")
        return Restart(slot.index, retry, self.restarts.consecutive_failures(slot.name))

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
        if slot is None or slot.worker_id != worker_id or not self.running:
            return []  # replaced already (recycling), or the pool is closing
        if expected:
            return [*self._restart(slot, 0.0)]
        crash = CountCrash(worker_id, pid, code)
        delay = self.restarts.record_failure(slot.name, now)
        if delay is None:
            c = self.config
            reason = (
                f"more than {c.max_restarts} unexpected worker exits within "
                f"{c.restart_window}s; not restarting slot {slot.name}"
            )
            return [crash, self._degrade(slot, reason)]
        return [crash, *self._restart(slot, delay)]

    def retiring(self, worker_id: str) -> None:
        """The pool stops ``worker_id`` on purpose: its exit is not a crash."""
        self._intentional.add(worker_id)

    # -- recycling and killing -----------------------------------------------------------------

    def recycle(self, worker_id: str, reason: str) -> list[Recycle]:
        """Recycle ``worker_id``, unless it is no longer its slot's occupant or already drains."""
        slot = self.slot_of.get(worker_id)
        if slot is None or slot.worker_id != worker_id or slot.replacing:
            return []
        s = self.scheduler
        if not s.has_worker(worker_id) or not s.is_accepting(worker_id):
            return []  # already draining
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

    def kill(self, worker_id: str, reason: str, *, counted: bool, exited: bool) -> list[Kill]:
        """Kill a worker that cannot be trusted, unless it has ``exited`` already.

        ``counted``: its exit counts toward the restart intensity (a worker that stopped
        answering does; one killed for a caller's deadline does not).
        """
        if exited:
            return []
        if not counted:
            self._intentional.add(worker_id)
        return [Kill(worker_id, reason, counted)]

    # -- internals -----------------------------------------------------------------------------

    def _restart(self, slot: SlotState, delay: float) -> list[Restart]:
        if slot.replacing or not self.running:
            return []
        return [Restart(slot.index, delay, self.restarts.consecutive_failures(slot.name))]

    def _degrade(self, slot: SlotState, reason: str) -> Degrade:
        slot.worker_id = None
        return Degrade(slot.index, reason)

    def slot(self, index: int) -> SlotState:
        """The slot numbered ``index`` (from 1)."""
        return self.slots[index - 1]
