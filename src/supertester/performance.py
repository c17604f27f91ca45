"""Measure a block: wall time, CPU time and peak memory, of this process and its children.

::

    with measure() as m:            # or: async with measure() as m:
        run_the_thing()
    print(m.result.wall_seconds, m.result.peak_rss_bytes)

Peak memory is sampled: at the start, at the end, and by a background thread
every ``interval`` seconds in between (it stops when the block ends). Use the
numbers for *relative* assertions (:func:`~supertester.assert_latency_ratio`,
:func:`~supertester.assert_no_memory_growth`); absolute figures belong to
benchmarks, not tests.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass

import psutil

from supertester._blocks import Block

__all__ = ["Measurement", "Meter", "measure"]


@dataclass(frozen=True)
class Measurement:
    """What :func:`measure` recorded.

    Attributes:
        wall_seconds: elapsed monotonic time.
        cpu_seconds: user + system CPU time of this process.
        children_cpu_seconds: CPU time of child processes (those reaped during
            the block, plus the growth of those still running at its end).
        rss_start_bytes: this process's RSS at the start.
        rss_end_bytes: its RSS at the end.
        peak_rss_bytes: the highest RSS of this process seen.
        peak_children_rss_bytes: the highest total RSS of all descendants seen at once.
        samples: how many memory samples were taken.
    """

    wall_seconds: float
    cpu_seconds: float
    children_cpu_seconds: float
    rss_start_bytes: int
    rss_end_bytes: int
    peak_rss_bytes: int
    peak_children_rss_bytes: int
    samples: int

    @property
    def rss_growth_bytes(self) -> int:
        """RSS at the end minus RSS at the start (may be negative)."""
        return self.rss_end_bytes - self.rss_start_bytes


class Meter(Block):
    """A running measurement; a sync and async context manager. Read :attr:`result` after it.

    Args:
        interval: seconds between memory samples of the background thread;
            ``None`` samples only at the start and the end.
        children: also sample descendants' memory and CPU.
    """

    def __init__(self, *, interval: float | None = 0.02, children: bool = True) -> None:
        self.interval = interval
        self.children = children
        self._proc = psutil.Process()
        self._lock = threading.Lock()
        self._result: Measurement | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._peak_rss = 0
        self._peak_children_rss = 0
        self._samples = 0
        self._child_cpu_start: dict[int, float] = {}
        self._child_cpu_last: dict[int, float] = {}

    @property
    def result(self) -> Measurement:
        """The measurement.

        Raises:
            RuntimeError: the block has not ended yet.
        """
        if self._result is None:
            raise RuntimeError("measure(): the result is available once the block has ended")
        return self._result

    def _sample(self, *, first: bool = False) -> int:
        rss = self._proc.memory_info().rss
        children_rss = 0
        if self.children:
            for child in self._proc.children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    with child.oneshot():
                        children_rss += child.memory_info().rss
                        times = child.cpu_times()
                    cpu = times.user + times.system
                    if first:
                        self._child_cpu_start[child.pid] = cpu
                    self._child_cpu_last[child.pid] = cpu
        with self._lock:
            self._peak_rss = max(self._peak_rss, rss)
            self._peak_children_rss = max(self._peak_children_rss, children_rss)
            self._samples += 1
        return rss

    def _run_sampler(self) -> None:
        assert self.interval is not None
        while not self._stop.wait(self.interval):
            with contextlib.suppress(psutil.Error):
                self._sample()

    def start(self) -> None:
        """Start measuring (what entering the context does)."""
        self._cpu_start = self._proc.cpu_times()
        self._rss_start = self._sample(first=True)
        self._wall_start = time.monotonic()
        if self.interval is not None:
            self._thread = threading.Thread(
                target=self._run_sampler, name="supertester-measure", daemon=True
            )
            self._thread.start()

    def stop(self) -> Measurement:
        """Stop measuring, join the sampler thread and compute the :class:`Measurement`."""
        wall = time.monotonic() - self._wall_start
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        rss_end = self._sample()
        cpu_end = self._proc.cpu_times()
        live = (
            {child.pid for child in self._proc.children(recursive=True)} if self.children else set()
        )
        running_growth = sum(
            self._child_cpu_last[pid] - self._child_cpu_start.get(pid, 0.0)
            for pid in live
            if pid in self._child_cpu_last
        )
        reaped = (cpu_end.children_user + cpu_end.children_system) - (
            self._cpu_start.children_user + self._cpu_start.children_system
        )
        self._result = Measurement(
            wall_seconds=wall,
            cpu_seconds=(cpu_end.user + cpu_end.system)
            - (self._cpu_start.user + self._cpu_start.system),
            children_cpu_seconds=max(0.0, reaped + running_growth),
            rss_start_bytes=self._rss_start,
            rss_end_bytes=rss_end,
            peak_rss_bytes=self._peak_rss,
            peak_children_rss_bytes=self._peak_children_rss,
            samples=self._samples,
        )
        return self._result

    def _begin(self, *, in_loop: bool) -> None:
        self.start()

    def _end(self, exc: BaseException | None) -> None:
        self.stop()


def measure(*, interval: float | None = 0.02, children: bool = True) -> Meter:
    """Measure the block of a ``with`` or ``async with``; see :class:`Meter` and :class:`Measurement`.

    Args:
        interval: seconds between background memory samples (None: start and end only).
        children: include descendant processes.

    Returns:
        A :class:`Meter`; its ``result`` is set when the block ends.
    """
    return Meter(interval=interval, children=children)
