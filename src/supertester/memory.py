"""Memory growth: fail on a rising RSS trend across repeated runs, not on one noisy delta.

The operation runs ``iterations`` times (after a warm-up); the RSS is sampled
``samples`` times along the way, after a garbage collection, and a
least-squares line is fitted through the samples. A slope above the
tolerance (bytes per iteration) is a leak; a one-off step or page-sized
noise barely moves it.
"""

from __future__ import annotations

import gc
import itertools
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

import psutil

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator, Sequence

__all__ = [
    "MemoryGrowthReport",
    "assert_no_memory_growth",
    "assert_no_memory_growth_async",
    "memory_slope",
]


@dataclass(frozen=True)
class MemoryGrowthReport:
    """The samples and the fitted trend of a memory-growth check.

    Attributes:
        pid: the process whose RSS was sampled.
        iterations: cumulative iterations at each sample (the first is 0, after warm-up).
        rss_bytes: the RSS at each sample.
        slope_bytes_per_iteration: the least-squares slope.
        tolerance_bytes_per_iteration: the largest slope accepted.
    """

    pid: int
    iterations: tuple[int, ...]
    rss_bytes: tuple[int, ...]
    slope_bytes_per_iteration: float
    tolerance_bytes_per_iteration: float

    @property
    def grew(self) -> bool:
        """True if the slope is above the tolerance."""
        return self.slope_bytes_per_iteration > self.tolerance_bytes_per_iteration

    def format(self) -> str:
        """The samples as readable lines."""
        base = self.rss_bytes[0] if self.rss_bytes else 0
        lines = [
            f"RSS of pid {self.pid}: slope {self.slope_bytes_per_iteration:,.0f} B/iteration "
            f"(tolerance {self.tolerance_bytes_per_iteration:,.0f})"
        ]
        for count, rss in zip(self.iterations, self.rss_bytes, strict=True):
            lines.append(f"  after {count:>6} iterations: {rss:>12,} B ({rss - base:+,} B)")
        return "\n".join(lines)


def memory_slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    """The least-squares slope of ``ys`` over ``xs`` (0.0 when it is undefined).

    Raises:
        ValueError: the sequences differ in length.
    """
    if len(xs) != len(ys):
        raise ValueError(f"memory_slope needs as many xs as ys, got {len(xs)} and {len(ys)}")
    n = len(xs)
    if n < 2:
        return 0.0
    mean_x = sum(xs) / n
    mean_y = sum(ys) / n
    var_x = sum((x - mean_x) ** 2 for x in xs)
    if var_x == 0:
        return 0.0
    return sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / var_x


class _Sampler:
    def __init__(
        self, iterations: int, samples: int, warmup: int | None, tolerance: float, pid: int | None
    ) -> None:
        if samples < 2 or iterations < samples:
            raise ValueError(
                f"need samples >= 2 and iterations >= samples, got iterations={iterations} "
                f"samples={samples}"
            )
        self.chunk = iterations // samples
        self.samples = samples
        self.warmup = self.chunk if warmup is None else warmup
        self.tolerance = tolerance
        self.pid = os.getpid() if pid is None else pid
        self.proc = psutil.Process(self.pid)
        self.counts: list[int] = []
        self.rss: list[int] = []

    def runs(self) -> Iterator[None]:
        """One item per run of the operation (warm-up first); the samples are taken
        between the runs, so the sync and the async check share one schedule."""
        yield from itertools.repeat(None, self.warmup)
        self.take(0)
        for done in range(self.chunk, self.chunk * (self.samples + 1), self.chunk):
            yield from itertools.repeat(None, self.chunk)
            self.take(done)

    def take(self, count: int) -> None:
        if self.pid == os.getpid():
            gc.collect()
        self.counts.append(count)
        self.rss.append(self.proc.memory_info().rss)

    def finish(self) -> MemoryGrowthReport:
        report = MemoryGrowthReport(
            pid=self.pid,
            iterations=tuple(self.counts),
            rss_bytes=tuple(self.rss),
            slope_bytes_per_iteration=memory_slope(self.counts, self.rss),
            tolerance_bytes_per_iteration=self.tolerance,
        )
        if report.grew:
            raise AssertionError(
                "expected no memory growth across repeated runs, but the RSS rises by "
                f"{report.slope_bytes_per_iteration:,.0f} B per iteration (tolerance "
                f"{self.tolerance:,.0f}):\n{report.format()}\n"
                "Look for caches, lists or handlers that keep something from every run."
            )
        return report


def assert_no_memory_growth(
    operation: Callable[[], object],
    *,
    iterations: int = 200,
    samples: int = 10,
    warmup: int | None = None,
    tolerance_bytes_per_iteration: float = 1024.0,
    pid: int | None = None,
) -> MemoryGrowthReport:
    """Run ``operation`` repeatedly and fail if the RSS trend rises.

    Args:
        operation: a zero-argument callable, run ``warmup + iterations`` times.
        iterations: runs that are measured.
        samples: RSS samples across them (plus one at the start).
        warmup: unmeasured runs first, to fill caches and pools (default: one chunk).
        tolerance_bytes_per_iteration: the largest acceptable slope.
        pid: sample this process (e.g. a worker) instead of this one.

    Returns:
        The :class:`MemoryGrowthReport`.

    Raises:
        AssertionError: the slope is above the tolerance; the samples are listed.
        ValueError: fewer than 2 samples or fewer iterations than samples.
    """
    sampler = _Sampler(iterations, samples, warmup, tolerance_bytes_per_iteration, pid)
    for _ in sampler.runs():
        operation()
    return sampler.finish()


async def assert_no_memory_growth_async(
    operation: Callable[[], Awaitable[object]],
    *,
    iterations: int = 200,
    samples: int = 10,
    warmup: int | None = None,
    tolerance_bytes_per_iteration: float = 1024.0,
    pid: int | None = None,
) -> MemoryGrowthReport:
    """The async form of :func:`assert_no_memory_growth`: ``operation`` returns an awaitable.

    Returns:
        The :class:`MemoryGrowthReport`.

    Raises:
        AssertionError: the slope is above the tolerance; the samples are listed.
        ValueError: fewer than 2 samples or fewer iterations than samples.
    """
    sampler = _Sampler(iterations, samples, warmup, tolerance_bytes_per_iteration, pid)
    for _ in sampler.runs():
        await operation()
    return sampler.finish()
