"""Chaos on purpose: kill children, inject failures. Seeded, and each returns a report.

Every helper takes a ``seed``; without one it draws a seed and puts it in the
report, so any failing run can be replayed exactly. Choices are made over
children sorted by id, so the same seed picks the same victims whatever
order the supervisor lists them in.

Decisions are pure (:func:`plan_failures`, :class:`FailureSchedule`); the
async helpers only apply them.
"""

from __future__ import annotations

import inspect
import random
import signal as signal_module
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import psutil

from supertester.supervision import Supervised

if TYPE_CHECKING:
    from collections.abc import Awaitable, Sequence

__all__ = [
    "FailureReport",
    "FailureSchedule",
    "FailureTarget",
    "InjectedFailure",
    "KillReport",
    "KilledChild",
    "inject_random_failures",
    "kill_children",
    "plan_failures",
]

_DEFAULT_KINDS: tuple[str, ...] = ("exit", "timeout", "disconnect")


def _new_seed(seed: int | None) -> int:
    return random.SystemRandom().randrange(2**32) if seed is None else seed


def _check_rate(name: str, rate: float) -> None:
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"{name} must be within [0, 1], got {rate}")


def _check_failures(failure_rate: float, kinds: Sequence[str]) -> None:
    _check_rate("failure_rate", failure_rate)
    if not kinds:
        raise ValueError("kinds must name at least one failure kind")


def _draw(rng: random.Random, failure_rate: float, kinds: Sequence[str]) -> str | None:
    """One decision: a failure kind, or None. The kind is drawn either way, so one
    decision never shifts the next."""
    fails = rng.random() < failure_rate
    kind = rng.choice(list(kinds))
    return kind if fails else None


# -- killing -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class KilledChild:
    """One child :func:`kill_children` signalled: its id and the pid it had."""

    id: str
    pid: int


@dataclass(frozen=True)
class KillReport:
    """What :func:`kill_children` did.

    Attributes:
        seed: the seed used (pass it back to replay the same choice).
        signal: the signal sent.
        considered: ids of the children that could be chosen (sorted).
        killed: the children signalled.
        skipped: ``(id, reason)`` for chosen children that could not be signalled.
    """

    seed: int
    signal: int
    considered: tuple[str, ...]
    killed: tuple[KilledChild, ...]
    skipped: tuple[tuple[str, str], ...] = ()

    @property
    def killed_ids(self) -> tuple[str, ...]:
        """The ids of the killed children."""
        return tuple(child.id for child in self.killed)


def kill_children(
    sup: Supervised,
    *,
    rate: float | None = None,
    count: int | None = None,
    signal: int = signal_module.SIGKILL,
    seed: int | None = None,
) -> KillReport:
    """Send ``signal`` to a seeded random choice of ``sup``'s live children.

    Give either ``rate`` (each child is chosen with that probability) or
    ``count`` (exactly that many, or all if fewer); the default is a rate of
    0.5. Then wait for the restarts with
    :func:`~supertester.assert_process_restarted`.

    Returns:
        A :class:`KillReport` of what was done.

    Raises:
        ValueError: both ``rate`` and ``count`` given, or a value out of range.
    """
    if rate is not None and count is not None:
        raise ValueError("give either rate= or count= to kill_children, not both")
    if rate is not None:
        _check_rate("rate", rate)
    if count is not None and count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    seed = _new_seed(seed)
    rng = random.Random(seed)
    live = sorted(
        (child for child in sup.children() if child.alive and child.pid is not None),
        key=lambda child: child.id,
    )
    if count is not None:
        chosen = rng.sample(live, min(count, len(live)))
        chosen.sort(key=lambda child: child.id)
    else:
        threshold = 0.5 if rate is None else rate
        chosen = [child for child in live if rng.random() < threshold]
    killed: list[KilledChild] = []
    skipped: list[tuple[str, str]] = []
    for child in chosen:
        assert child.pid is not None
        try:
            psutil.Process(child.pid).send_signal(signal)
        except psutil.NoSuchProcess:
            skipped.append((child.id, f"pid {child.pid} was already gone"))
        except psutil.AccessDenied:
            skipped.append((child.id, f"not allowed to signal pid {child.pid}"))
        else:
            killed.append(KilledChild(child.id, child.pid))
    return KillReport(
        seed=seed,
        signal=int(signal),
        considered=tuple(child.id for child in live),
        killed=tuple(killed),
        skipped=tuple(skipped),
    )


# -- injected failures -------------------------------------------------------------------------


@runtime_checkable
class FailureTarget(Protocol):
    """A system that can fail on request, for :func:`inject_random_failures`.

    ``inject(kind, child_id)`` makes child ``child_id`` fail in the way
    ``kind`` names. The kinds are the system's vocabulary; the usual ones are
    ``"exit"`` (the process dies), ``"timeout"`` (it stops answering) and
    ``"disconnect"`` (its channel breaks). It may be sync or return an
    awaitable; it should raise ``ValueError`` for a kind it does not know.
    """

    def inject(self, kind: str, child_id: str) -> Awaitable[None] | None:
        """Make ``child_id`` fail as ``kind`` says."""
        ...


@dataclass(frozen=True)
class InjectedFailure:
    """One failure decided (and, in a report, injected): which child, which kind."""

    child_id: str
    kind: str


@dataclass(frozen=True)
class FailureReport:
    """What :func:`inject_random_failures` did.

    Attributes:
        seed: the seed used.
        failure_rate: the probability each child was given.
        kinds: the kinds drawn from.
        injected: the failures injected, in order.
        spared: ids of the children left alone.
    """

    seed: int
    failure_rate: float
    kinds: tuple[str, ...]
    injected: tuple[InjectedFailure, ...]
    spared: tuple[str, ...]

    def by_kind(self, kind: str) -> tuple[str, ...]:
        """The ids of the children that got failure ``kind``."""
        return tuple(item.child_id for item in self.injected if item.kind == kind)


def plan_failures(
    child_ids: Sequence[str],
    failure_rate: float,
    kinds: Sequence[str] = _DEFAULT_KINDS,
    *,
    seed: int,
) -> tuple[InjectedFailure, ...]:
    """Decide (purely) which children fail and how: same inputs and seed, same plan.

    Raises:
        ValueError: the rate is outside [0, 1] or ``kinds`` is empty.
    """
    _check_failures(failure_rate, kinds)
    rng = random.Random(seed)
    plan = []
    for child_id in sorted(child_ids):
        kind = _draw(rng, failure_rate, kinds)
        if kind is not None:
            plan.append(InjectedFailure(child_id, kind))
    return tuple(plan)


async def inject_random_failures(
    target: FailureTarget,
    failure_rate: float,
    kinds: Sequence[str] = _DEFAULT_KINDS,
    *,
    seed: int | None = None,
    child_ids: Sequence[str] | None = None,
) -> FailureReport:
    """Inject seeded random failures, one decision per child, through ``target.inject``.

    Args:
        target: implements :class:`FailureTarget`.
        failure_rate: probability that each child fails.
        kinds: failure kinds to draw from.
        seed: for replay; drawn (and reported) when None.
        child_ids: the children to consider; by default the ids of
            ``target.children()`` when the target is also :class:`~supertester.Supervised`.

    Returns:
        A :class:`FailureReport`.

    Raises:
        ValueError: no ``child_ids`` and the target is not Supervised, or bad rate/kinds.
    """
    if child_ids is None:
        if not isinstance(target, Supervised):
            raise ValueError(
                "inject_random_failures needs child_ids= when the target does not "
                "implement Supervised (children() and subscribe_events())"
            )
        child_ids = [child.id for child in target.children()]
    seed = _new_seed(seed)
    plan = plan_failures(child_ids, failure_rate, kinds, seed=seed)
    for failure in plan:
        result = target.inject(failure.kind, failure.child_id)
        if inspect.isawaitable(result):
            await result
    chosen = {failure.child_id for failure in plan}
    return FailureReport(
        seed=seed,
        failure_rate=failure_rate,
        kinds=tuple(kinds),
        injected=plan,
        spared=tuple(cid for cid in sorted(child_ids) if cid not in chosen),
    )


@dataclass
class FailureSchedule:
    """Per-call failure decisions for fakes and mock servers: "should this call fail, and how?".

    ::

        schedule = FailureSchedule(0.2, kinds=("timeout", "disconnect"), seed=7)
        async def execute(request):
            match schedule.next(request.tool):
                case "timeout": await never_answer()
                case "disconnect": raise ConnectionResetError
            ...

    Args:
        failure_rate: probability that a call fails.
        kinds: failure kinds to draw from.
        seed: for replay; drawn when None (see :attr:`seed`).

    Attributes:
        decisions: ``(label, kind or None)`` for every call so far, in order.
    """

    failure_rate: float
    kinds: Sequence[str] = _DEFAULT_KINDS
    seed: int | None = None
    decisions: list[tuple[str, str | None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        _check_failures(self.failure_rate, self.kinds)
        self.seed = _new_seed(self.seed)
        self._rng = random.Random(self.seed)

    def next(self, label: str = "") -> str | None:
        """Decide the next call: a failure kind, or None to let it succeed."""
        decision = _draw(self._rng, self.failure_rate, self.kinds)
        self.decisions.append((label, decision))
        return decision

    @property
    def failures(self) -> list[tuple[str, str]]:
        """``(label, kind)`` of the calls that were told to fail."""
        return [(label, kind) for label, kind in self.decisions if kind is not None]
