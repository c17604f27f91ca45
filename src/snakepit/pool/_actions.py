"""Supervision's decisions as values: the actions the engine carries out, the slots they name."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

__all__ = [
    "Action",
    "CountCrash",
    "CountRestart",
    "Degrade",
    "Kill",
    "Recycle",
    "Restart",
    "Retire",
    "SlotState",
]


@dataclass(frozen=True)
class Restart:
    """Start a new occupant for slot ``slot`` after ``delay`` seconds of the clock.

    ``attempt`` is how many unexpected exits and failed starts the slot has had in a
    row (an exit the pool caused adds none); ``retry``: this follows a failed start of
    the same replacement (announced already).
    """

    slot: int
    delay: float
    attempt: int = 0
    retry: bool = False


@dataclass(frozen=True)
class Recycle:
    """Stop sending work to ``worker_id``, start its replacement, stop it once idle."""

    worker_id: str
    reason: str


@dataclass(frozen=True)
class Retire:
    """Stop ``worker_id`` gracefully once it runs no call; its exit is expected."""

    worker_id: str


@dataclass(frozen=True)
class Kill:
    """Kill ``worker_id`` now (whether its exit counts as a crash is recorded already)."""

    worker_id: str
    reason: str


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


@dataclass(frozen=True)
class CountRestart:
    """Slot ``slot``'s replacement after an exit serves: count a restart."""

    slot: int


Action: TypeAlias = Restart | Recycle | Retire | Kill | Degrade | CountCrash | CountRestart


class SlotState:
    """A place for one worker: its current occupant's id and whether a replacement is under way.

    ``successor_of``: while a replacement is under way, the recycled occupant it succeeds
    (None for a restart after an exit). Only :class:`Supervision` writes these fields.
    """

    __slots__ = ("generation", "index", "replacing", "successor_of", "worker_id")

    def __init__(self, index: int) -> None:
        self.index = index
        self.generation = 0
        self.worker_id: str | None = None
        self.replacing = False
        self.successor_of: str | None = None

    @property
    def name(self) -> str:
        return f"w{self.index}"

    def __repr__(self) -> str:
        more = " replacing" if self.replacing else ""
        return f"<SlotState {self.name} {self.worker_id or 'empty'}{more}>"
