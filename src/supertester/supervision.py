"""Supervision assertions against a small protocol any supervised system can implement.

A system under test is :class:`Supervised` if it can list its children and
tell a listener when something happened::

    class MyPool:
        def children(self) -> Sequence[ChildInfo]:
            return [ChildInfo(w.id, w.pid, w.alive) for w in self._workers]

        def subscribe_events(self, callback):   # -> unsubscribe
            return self._bus.add_listener(callback)

The helpers never poll: they re-read :meth:`Supervised.children` each time
the system publishes an event, until the expected state holds or the timeout
passes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal as signal_module
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from supertester._aio import set_event_threadsafe
from supertester.errors import SupertesterTimeout
from supertester.processes import describe_process, is_alive

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence

__all__ = [
    "ChildInfo",
    "RestartReport",
    "Supervised",
    "assert_all_children_alive",
    "assert_child_count",
    "assert_process_restarted",
    "check_restart_strategy",
    "wait_for_children",
]


@dataclass(frozen=True)
class ChildInfo:
    """What a supervisor knows about one child.

    Attributes:
        id: the child's stable identity across restarts (e.g. ``"worker-1"``).
        pid: its current OS pid, or None while it is not running.
        alive: whether the supervisor considers it running.
    """

    id: str
    pid: int | None
    alive: bool


@runtime_checkable
class Supervised(Protocol):
    """The minimal face a supervised system shows to supertester.

    ``children()`` lists the children in the supervisor's order (the order
    ``rest_for_one`` refers to). ``subscribe_events(callback)`` registers
    ``callback``, to be called with each event the system publishes (at least
    whenever a child starts, exits or is restarted), from any thread, and
    returns a zero-argument function that unsubscribes it. The callback is
    cheap and never blocks; the helpers treat every call as "state may have
    changed" and the event object is only shown in failure messages.
    """

    def children(self) -> Sequence[ChildInfo]:
        """The current children, in supervisor order."""
        ...

    def subscribe_events(self, callback: Callable[[object], None]) -> Callable[[], None]:
        """Call ``callback(event)`` on every event; return the unsubscribe function."""
        ...


def assert_child_count(sup: Supervised, expected: int, *, alive_only: bool = False) -> None:
    """Assert that ``sup`` has exactly ``expected`` children (optionally: alive ones).

    Raises:
        AssertionError: the count differs; the message lists the children.
    """
    children = list(sup.children())
    counted = [child for child in children if child.alive] if alive_only else children
    if len(counted) != expected:
        kind = "alive children" if alive_only else "children"
        raise AssertionError(
            f"expected {expected} {kind} of {sup!r}, saw {len(counted)}:\n"
            f"{_format_children(children)}\n"
            "If a child is starting or restarting, await wait_for_children() first."
        )


def assert_all_children_alive(sup: Supervised) -> None:
    """Assert every child is alive for the supervisor *and* for the OS (a live, non-zombie pid).

    Raises:
        AssertionError: some child is not; the message says which and why.
    """
    problems = _not_alive(sup.children())
    if problems:
        raise AssertionError(
            f"expected every child of {sup!r} to be alive, but:\n"
            + "\n".join(f"  - {problem}" for problem in problems)
            + "\nCheck the supervisor's exit/restart events for these children."
        )


async def wait_for_children(
    sup: Supervised,
    condition: Callable[[Sequence[ChildInfo]], bool],
    *,
    timeout: float = 5.0,
    what: str = "the children to reach the expected state",
) -> Sequence[ChildInfo]:
    """Wait, event by event, until ``condition(sup.children())`` holds.

    Args:
        sup: the supervised system.
        condition: a predicate over the current children.
        timeout: real seconds.
        what: names the awaited state in the failure message.

    Returns:
        The children for which the condition held.

    Raises:
        SupertesterTimeout: the condition did not hold in time; the message
            lists the children and the events seen meanwhile.
    """
    children, _ = await _wait_children(sup, condition, timeout=timeout, what=what)
    return children


async def assert_process_restarted(
    sup: Supervised, child_id: str, old_pid: int, *, timeout: float = 5.0
) -> ChildInfo:
    """Wait until child ``child_id`` runs again under a new, live pid.

    Args:
        sup: the supervised system.
        child_id: the child's id.
        old_pid: its pid before the crash or kill.
        timeout: real seconds.

    Returns:
        The restarted child's info.

    Raises:
        SupertesterTimeout: it did not come back with a new live pid in time.
    """

    def restarted(children: Sequence[ChildInfo]) -> bool:
        child = _by_id(children).get(child_id)
        return child is not None and child.pid != old_pid and _really_alive(child)

    children, _ = await _wait_children(
        sup,
        restarted,
        timeout=timeout,
        what=f"child {child_id!r} to be restarted with a new live pid (old pid {old_pid})",
    )
    return _by_id(children)[child_id]


@dataclass(frozen=True)
class RestartReport:
    """What :func:`check_restart_strategy` saw.

    Attributes:
        order: every child id, in supervisor order.
        killed: the ids that were killed.
        restarted: ids whose pid changed (killed or not), in supervisor order.
        kept: ids that kept their pid.
        before: pid of each child before the kill.
        after: pid of each child once everything was back.
        events: the events published while waiting.
    """

    order: tuple[str, ...]
    killed: tuple[str, ...]
    restarted: tuple[str, ...]
    kept: tuple[str, ...]
    before: Mapping[str, int | None]
    after: Mapping[str, int | None]
    events: tuple[object, ...] = field(default=(), repr=False)

    @property
    def inferred_strategy(self) -> str:
        """``"one_for_one"``, ``"rest_for_one"``, ``"one_for_all"`` or ``"unknown"``."""
        restarted, killed = set(self.restarted), set(self.killed)
        if restarted == killed:
            return "one_for_one"
        first = min((self.order.index(child) for child in self.killed), default=0)
        if restarted == set(self.order[first:]) and first > 0:
            return "rest_for_one"
        if restarted == set(self.order):
            return "one_for_all"
        return "unknown"

    def assert_strategy(self, expected: str) -> None:
        """Assert the restarts match ``expected`` (one of the :attr:`inferred_strategy` names).

        Raises:
            AssertionError: they match another strategy.
        """
        if self.inferred_strategy != expected:
            raise AssertionError(
                f"expected a {expected} restart after killing {list(self.killed)}, but "
                f"restarted={list(self.restarted)} kept={list(self.kept)} looks like "
                f"{self.inferred_strategy} (children in order: {list(self.order)})"
            )


async def check_restart_strategy(
    sup: Supervised,
    kill: Iterable[str],
    *,
    timeout: float = 5.0,
    signal: int = signal_module.SIGKILL,
) -> RestartReport:
    """Kill some children and report which children were restarted and which kept their pid.

    The report is taken at the first moment (after an event) when every
    killed child runs under a new pid and every child is alive, OS included.

    Args:
        sup: the supervised system.
        kill: ids of the children to kill.
        timeout: real seconds to wait for the supervisor to recover.
        signal: the signal to send.

    Returns:
        The :class:`RestartReport`.

    Raises:
        ValueError: an id is unknown or that child has no pid.
        SupertesterTimeout: the supervisor did not recover in time.
    """
    victims = tuple(kill)
    before_children = list(sup.children())
    before = {child.id: child.pid for child in before_children}
    for child_id in victims:
        if before.get(child_id) is None:
            raise ValueError(
                f"cannot kill child {child_id!r}: it is unknown or has no pid; children are:\n"
                f"{_format_children(before_children)}"
            )

    def recovered(children: Sequence[ChildInfo]) -> bool:
        by_id = _by_id(children)
        if any(by_id.get(child_id) is None for child_id in before):
            return False
        if any(by_id[child_id].pid == before[child_id] for child_id in victims):
            return False
        return all(_really_alive(child) for child in children)

    for child_id in victims:
        pid = before[child_id]
        assert pid is not None
        # A child already dead must come back all the same.
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal)
    children, events = await _wait_children(
        sup,
        recovered,
        timeout=timeout,
        what=f"children {list(victims)} to come back under new pids with every child alive",
    )
    after = {child.id: child.pid for child in children}
    order = tuple(child.id for child in children)
    return RestartReport(
        order=order,
        killed=victims,
        restarted=tuple(cid for cid in order if after[cid] != before.get(cid)),
        kept=tuple(cid for cid in order if after[cid] == before.get(cid)),
        before=before,
        after=after,
        events=tuple(events),
    )


async def _wait_children(
    sup: Supervised,
    condition: Callable[[Sequence[ChildInfo]], bool],
    *,
    timeout: float,
    what: str,
) -> tuple[Sequence[ChildInfo], list[object]]:
    loop = asyncio.get_running_loop()
    changed = asyncio.Event()
    events: list[object] = []

    def on_event(event: object) -> None:
        events.append(event)
        set_event_threadsafe(loop, changed)

    unsubscribe = sup.subscribe_events(on_event)
    try:
        async with asyncio.timeout(timeout) as scope:
            while True:
                changed.clear()
                children = tuple(sup.children())
                if condition(children):
                    return children, events
                await changed.wait()
    except TimeoutError as exc:
        if not scope.expired():
            raise
        shown = "\n".join(f"  {event!r}" for event in events[-50:]) or "  (none)"
        raise SupertesterTimeout(
            f"expected {what} within {timeout}s; it did not.\n"
            f"children now:\n{_format_children(tuple(sup.children()))}\n"
            f"events seen while waiting ({len(events)}):\n{shown}\n"
            "Check that the system publishes an event when a child changes state.",
            what=what,
            timeout=timeout,
        ) from exc
    finally:
        unsubscribe()


def _by_id(children: Iterable[ChildInfo]) -> dict[str, ChildInfo]:
    return {child.id: child for child in children}


def _really_alive(child: ChildInfo) -> bool:
    return child.alive and child.pid is not None and is_alive(child.pid)


def _not_alive(children: Iterable[ChildInfo]) -> list[str]:
    problems = []
    for child in children:
        if not child.alive:
            problems.append(f"child {child.id!r} (pid {child.pid}) is not alive for its supervisor")
        elif child.pid is None:
            problems.append(f"child {child.id!r} is alive for its supervisor but has no pid")
        elif not is_alive(child.pid):
            problems.append(
                f"child {child.id!r} is alive for its supervisor but its process is not: "
                f"{describe_process(child.pid)}"
            )
    return problems


def _format_children(children: Sequence[ChildInfo]) -> str:
    if not children:
        return "  (no children)"
    return "\n".join(
        f"  {child.id}: pid {child.pid}, "
        f"{'alive' if child.alive else 'not alive'}"
        f"{'' if child.pid is None or is_alive(child.pid) else ' (process gone)'}"
        for child in children
    )
