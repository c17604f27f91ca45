"""What every contender offers the engine: a steady session, a start, a crash, a memory probe."""

from __future__ import annotations

import importlib.metadata
import os
import statistics
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import psutil

from bench.peers import _model


class NotSupported(Exception):
    """The subject has no such feature; the table says so instead of a number."""


class Unavailable(Exception):
    """The subject cannot run here (its package is not installed)."""


#: In the crash scenario, calls outstanding (submitted, not finished) when the worker dies,
#: besides the long task it runs: echoes of IN_FLIGHT_BYTES each.
IN_FLIGHT = _model.IN_FLIGHT
IN_FLIGHT_BYTES = 1024 * 1024


@dataclass(frozen=True)
class CrashOutcome:
    """What happened after SIGKILL of a busy worker.

    ``recovery_s``: kill until ``workers`` distinct live workers answered, without help
    (None when the pool broke). ``recreate_s``: kill until a pool recreated by hand
    answered at full size (None when it recovered by itself). ``failed``: calls that
    raised, of the long task, the ``IN_FLIGHT`` outstanding calls and any made during
    recovery; ``lost``: calls that will never return.
    """

    recovery_s: float | None
    recreate_s: float | None
    failed: int
    lost: int
    note: str


class Session(ABC):
    """One warm pool of ``workers`` workers, kept open across the steady scenarios."""

    @abstractmethod
    def latency(self, calls: int) -> list[float]:
        """Seconds of each of ``calls`` sequential trivial calls."""

    @abstractmethod
    def throughput(self, calls: int, concurrency: int) -> float:
        """Trivial calls per second with ``concurrency`` calls outstanding."""

    @abstractmethod
    def payload(self, data: bytes, calls: int, verify: bool) -> float:
        """Payload bytes per second of ``calls`` sequential echo round trips."""

    def stream(self, chunks: int) -> float:
        """Chunks per second of one stream of ``chunks`` chunks."""
        raise NotSupported("not supported")

    @abstractmethod
    def close(self) -> None:
        """Shut the pool down."""


class Subject(ABC):
    """A contender: snakepit or one of the executor peers."""

    name: str
    distribution: str | None = None
    #: how its worker processes come to be, for the table's header
    start_method: str = ""

    def check(self) -> None:
        """Raise :class:`Unavailable` when the subject cannot run here."""
        return None

    def version(self) -> str:
        if self.distribution is None:
            return "stdlib"
        try:
            return importlib.metadata.version(self.distribution)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"

    @abstractmethod
    def session(self, workers: int) -> Session:
        """A started, warmed-up pool (every worker has answered)."""

    @abstractmethod
    def start(self, workers: int, spawn: bool) -> float:
        """Seconds from nothing to ``workers`` distinct workers having answered a call."""

    def start_many(self, workers: int) -> float:
        """Seconds from nothing to a pool of ``workers`` workers, every one ready."""
        raise NotSupported("not measured")

    @abstractmethod
    def crash(self, workers: int) -> CrashOutcome:
        """SIGKILL a worker running a long task and see what the pool does."""

    @abstractmethod
    def memory(self, workers: int, spawn: bool = False) -> dict[str, float]:
        """Run in a fresh probe process: see :func:`measure_memory` (``spawn``: workers
        started by the ``spawn`` method; :class:`NotSupported` when that is the default)."""


def measure_memory(worker_pids: set[int]) -> dict[str, float]:
    """RSS/USS of idle workers (median over them), of this host, and of its whole tree."""
    me = psutil.Process()
    rss = [psutil.Process(pid).memory_info().rss for pid in worker_pids]
    uss = [psutil.Process(pid).memory_full_info().uss for pid in worker_pids]
    total = me.memory_info().rss
    for child in me.children(recursive=True):
        try:
            total += child.memory_info().rss
        except psutil.Error:
            continue
    return {
        "worker_rss": float(statistics.median(rss)),
        "worker_uss": float(statistics.median(uss)),
        "host_rss": float(me.memory_info().rss),
        "total_rss": float(total),
    }


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE


def pid_of(answer: Any) -> int:
    """A ``pid`` tool's answer, whether a bare int or ``{"pid": n}``."""
    if isinstance(answer, dict):
        return int(answer["pid"])
    return int(answer)
