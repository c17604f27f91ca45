"""Relative latency: compare two timings by ratio, never against an absolute number.

Absolute times depend on the machine; a ratio between two things measured
on the same machine in the same run does not (much).
"""

from __future__ import annotations

import inspect
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeAlias

from supertester.performance import Measurement

__all__ = ["Timing", "assert_latency_ratio", "time_calls", "time_calls_async"]

Timing: TypeAlias = float | Measurement | Sequence[float]
"""Seconds, a :class:`~supertester.Measurement` (its wall time) or several seconds (their median)."""


def assert_latency_ratio(
    measured: Timing,
    baseline: Timing,
    *,
    max_ratio: float,
    min_ratio: float | None = None,
    what: str = "the measured operation",
) -> float:
    """Assert ``measured / baseline`` is at most ``max_ratio`` (and at least ``min_ratio``).

    E.g. "a pooled call costs at most 3x a direct call":
    ``assert_latency_ratio(pooled, direct, max_ratio=3)``.

    Args:
        measured: the timing under test.
        baseline: the timing it is compared with.
        max_ratio: the largest accepted ratio.
        min_ratio: the smallest accepted ratio (None: no lower bound).
        what: names the measured operation in the failure message.

    Returns:
        The ratio.

    Raises:
        AssertionError: the ratio is out of bounds.
        ValueError: the baseline is not positive or a sequence is empty.
    """
    m, b = _seconds(measured), _seconds(baseline)
    if b <= 0:
        raise ValueError(f"the baseline must be a positive time, got {b}s")
    ratio = m / b
    if ratio > max_ratio or (min_ratio is not None and ratio < min_ratio):
        bounds = f"at most {max_ratio}x" if min_ratio is None else f"{min_ratio}x to {max_ratio}x"
        raise AssertionError(
            f"expected {what} to take {bounds} the baseline, saw {ratio:.2f}x "
            f"({m:.6f}s vs {b:.6f}s). Compare medians of several runs if this is noise."
        )
    return ratio


def time_calls(operation: Callable[[], object], repeat: int = 5) -> list[float]:
    """Run ``operation`` ``repeat`` times; return each run's wall time in seconds."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        operation()
        times.append(time.perf_counter() - started)
    return times


async def time_calls_async(
    operation: Callable[[], Awaitable[object] | object], repeat: int = 5
) -> list[float]:
    """Run (and await) ``operation`` ``repeat`` times; return each run's wall time in seconds."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        result = operation()
        if inspect.isawaitable(result):
            await result
        times.append(time.perf_counter() - started)
    return times


def _seconds(timing: Timing) -> float:
    if isinstance(timing, Measurement):
        return timing.wall_seconds
    if isinstance(timing, int | float):
        return float(timing)
    if not timing:
        raise ValueError("cannot compare an empty sequence of timings")
    return float(statistics.median(timing))
