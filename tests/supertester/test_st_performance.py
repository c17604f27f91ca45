"""Performance helpers: measure(), memory-growth trends and latency ratios."""

from __future__ import annotations

import mmap
import subprocess
import sys
import threading

import pytest

from supertester import (
    Measurement,
    assert_latency_ratio,
    assert_no_memory_growth,
    assert_no_memory_growth_async,
    measure,
    memory_slope,
    time_calls,
    time_calls_async,
)

MB = 1024 * 1024

# The leaks below grow 256 KiB per iteration; 20 kB of tolerance keeps each verdict decisive while
# other threads of a shared xdist worker (channels of earlier tests) move RSS by a few pages.
TOLERANCE = 20_000.0
LEAK = 256 * 1024


def fresh_pages() -> mmap.mmap:
    """A leak that always raises RSS: freshly mapped pages, all touched. (A bytes object could
    be carved from heap that earlier tests in this xdist worker freed but kept resident.)"""
    block = mmap.mmap(-1, LEAK)
    block.write(b"x" * LEAK)
    return block


def release(blocks: list[mmap.mmap]) -> None:
    for block in blocks:
        block.close()
    blocks.clear()


def _measurement(wall: float) -> Measurement:
    return Measurement(wall, 0.0, 0.0, 0, 0, 0, 0, 2)


class TestMeasure:
    def test_sees_memory_allocated_in_the_block(self) -> None:
        with measure() as meter:
            block = b"x" * (40 * MB)
        assert len(block) == 40 * MB
        result = meter.result
        assert result.wall_seconds >= 0
        assert result.cpu_seconds >= 0
        assert result.samples >= 2
        assert result.peak_rss_bytes - result.rss_start_bytes >= 30 * MB
        assert result.rss_growth_bytes == result.rss_end_bytes - result.rss_start_bytes

    async def test_sees_child_processes_and_stops_its_sampler(self) -> None:
        script = "import sys; block = b'x' * (30 * 1024 * 1024); print('ready', flush=True); sys.stdin.read()"
        async with measure(interval=0.005) as meter:
            proc = subprocess.Popen(
                [sys.executable, "-I", "-S", "-c", script],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
            )
            assert proc.stdout is not None
            assert proc.stdout.readline() == b"ready\n"
        proc.communicate()
        assert meter.result.peak_children_rss_bytes >= 25 * MB
        assert meter.result.children_cpu_seconds >= 0
        assert not any(t.name == "supertester-measure" for t in threading.enumerate())

    def test_the_result_is_not_there_before_the_end(self) -> None:
        with (
            measure(interval=None) as meter,
            pytest.raises(RuntimeError, match="once the block has ended"),
        ):
            _ = meter.result


class TestMemorySlope:
    def test_fits_a_line_and_is_zero_when_flat_or_undefined(self) -> None:
        assert memory_slope([0, 1, 2, 3], [10, 12, 14, 16]) == pytest.approx(2.0)
        assert memory_slope([0, 1, 2], [5, 5, 5]) == 0.0
        assert memory_slope([1], [3]) == 0.0
        assert memory_slope([2, 2], [1, 9]) == 0.0
        with pytest.raises(ValueError, match="as many xs as ys"):
            memory_slope([1, 2], [1])


class TestNoMemoryGrowth:
    def test_a_leaking_operation_fails_with_the_samples(self) -> None:
        kept: list[mmap.mmap] = []
        with pytest.raises(AssertionError) as info:
            assert_no_memory_growth(
                lambda: kept.append(fresh_pages()),
                iterations=40,
                samples=5,
                tolerance_bytes_per_iteration=TOLERANCE,
            )
        message = str(info.value)
        assert "expected no memory growth" in message
        assert "after     40 iterations" in message
        release(kept)

    def test_a_stable_operation_passes(self) -> None:
        report = assert_no_memory_growth(
            lambda: b"x" * 200_000,
            iterations=40,
            samples=5,
            tolerance_bytes_per_iteration=TOLERANCE,
        )
        assert not report.grew
        assert len(report.rss_bytes) == 6
        assert report.iterations[0] == 0 and report.iterations[-1] == 40

    async def test_the_async_form_detects_a_leak(self) -> None:
        kept: list[mmap.mmap] = []

        async def leak() -> None:
            kept.append(fresh_pages())

        async def stable() -> None:
            _ = b"x" * 200_000

        with pytest.raises(AssertionError, match="B per iteration"):
            await assert_no_memory_growth_async(
                leak, iterations=40, samples=5, tolerance_bytes_per_iteration=TOLERANCE
            )
        release(kept)
        await assert_no_memory_growth_async(
            stable, iterations=40, samples=5, tolerance_bytes_per_iteration=TOLERANCE
        )

    @pytest.mark.parametrize("asynchronous", [False, True])
    async def test_both_forms_warm_up_then_sample_between_equal_chunks(
        self, asynchronous: bool
    ) -> None:
        runs: list[int] = []
        options = {
            "iterations": 12,
            "samples": 4,
            "warmup": 2,
            "tolerance_bytes_per_iteration": 1e12,
        }
        if asynchronous:

            async def counted() -> None:
                runs.append(1)

            report = await assert_no_memory_growth_async(counted, **options)
        else:
            report = assert_no_memory_growth(lambda: runs.append(1), **options)
        assert len(runs) == 2 + 12
        assert report.iterations == (0, 3, 6, 9, 12)
        assert len(report.rss_bytes) == 5

    def test_too_few_samples_is_a_usage_error(self) -> None:
        with pytest.raises(ValueError, match="samples >= 2"):
            assert_no_memory_growth(lambda: None, iterations=10, samples=1)


class TestLatencyRatio:
    def test_passes_within_the_ratio_and_returns_it(self) -> None:
        assert assert_latency_ratio(0.2, 0.1, max_ratio=3) == pytest.approx(2.0)
        assert assert_latency_ratio(
            [0.1, 0.3, 0.2], _measurement(0.1), max_ratio=3
        ) == pytest.approx(2.0)

    def test_fails_naming_the_ratio_and_both_times(self) -> None:
        with pytest.raises(
            AssertionError,
            match=r"expected pooled calls to take at most 2x the baseline, saw 5.00x",
        ):
            assert_latency_ratio(0.5, 0.1, max_ratio=2, what="pooled calls")
        with pytest.raises(AssertionError, match=r"0\.5x to 2x"):
            assert_latency_ratio(0.01, 0.1, max_ratio=2, min_ratio=0.5)

    def test_rejects_a_zero_baseline_or_no_timings(self) -> None:
        with pytest.raises(ValueError, match="positive"):
            assert_latency_ratio(1.0, 0.0, max_ratio=2)
        with pytest.raises(ValueError, match="empty"):
            assert_latency_ratio([], 1.0, max_ratio=2)

    async def test_time_calls_times_each_run(self) -> None:
        assert len(time_calls(lambda: None, repeat=3)) == 3

        async def op() -> None:
            pass

        times = await time_calls_async(op, repeat=4)
        assert len(times) == 4
        assert all(t >= 0 for t in times)
