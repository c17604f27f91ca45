"""Restart backoff per worker slot and pool-wide restart intensity."""

from __future__ import annotations

import random
from typing import Any

import pytest

from snakepit.pool._restarts import RestartPolicy, RestartTracker


def tracker(rng: random.Random | None = None, **policy: Any) -> RestartTracker:
    settings: dict[str, Any] = {"jitter": 0.0, "max_restarts": 1000}
    settings.update(policy)
    return RestartTracker(RestartPolicy(**settings), rng)


class TestRestartPolicy:
    def test_the_defaults_are_valid(self) -> None:
        policy = RestartPolicy()
        assert (policy.max_restarts, policy.window, policy.jitter) == (10, 60.0, 0.2)

    @pytest.mark.parametrize(
        ("field", "value", "allowed"),
        [
            ("max_restarts", -1, "int >= 0"),
            ("max_restarts", 1.5, "int >= 0"),
            ("max_restarts", True, "int >= 0"),
            ("window", 0.0, "> 0"),
            ("window", float("inf"), "finite"),
            ("window", float("nan"), "> 0"),
            ("backoff_initial", -0.1, ">= 0"),
            ("backoff_max", 0.05, ">= backoff_initial"),
            ("backoff_multiplier", 0.5, ">= 1"),
            ("jitter", -0.1, "from 0 to 1"),
            ("jitter", 1.5, "from 0 to 1"),
            ("jitter", "0.1", "from 0 to 1"),
        ],
    )
    def test_an_out_of_range_field_is_refused_naming_field_value_and_range(
        self, field: str, value: Any, allowed: str
    ) -> None:
        with pytest.raises(ValueError, match=f"RestartPolicy.{field} must be") as excinfo:
            RestartPolicy(**{field: value})
        assert allowed in str(excinfo.value)
        assert repr(value) in str(excinfo.value)

    def test_zero_jitter_zero_backoff_and_zero_restarts_are_allowed(self) -> None:
        RestartPolicy(max_restarts=0, backoff_initial=0.0, backoff_max=0.0, jitter=0.0)


class TestBackoff:
    def test_the_first_failure_waits_backoff_initial(self) -> None:
        assert tracker(backoff_initial=0.5).record_failure("slot-0", 0.0) == 0.5

    def test_consecutive_failures_of_a_slot_grow_the_delay_by_the_multiplier(self) -> None:
        t = tracker(backoff_initial=0.1, backoff_multiplier=3.0, backoff_max=100.0)
        delays = [t.record_failure("slot-0", float(i)) for i in range(4)]
        assert delays == pytest.approx([0.1, 0.3, 0.9, 2.7])
        assert t.consecutive_failures("slot-0") == 4

    def test_the_delay_is_capped_at_backoff_max(self) -> None:
        t = tracker(backoff_initial=1.0, backoff_multiplier=2.0, backoff_max=5.0)
        delays = [t.record_failure("slot-0", float(i)) for i in range(5)]
        assert delays == [1.0, 2.0, 4.0, 5.0, 5.0]

    def test_a_very_long_failure_streak_stays_at_backoff_max(self) -> None:
        t = tracker(backoff_initial=1.0, backoff_multiplier=10.0, backoff_max=30.0, window=1.0)
        for i in range(2000):
            delay = t.record_failure("slot-0", float(i))
        assert delay == 30.0

    def test_slots_back_off_independently(self) -> None:
        t = tracker(backoff_initial=1.0, backoff_multiplier=2.0)
        t.record_failure("slot-0", 0.0)
        t.record_failure("slot-0", 1.0)
        assert t.record_failure("slot-1", 2.0) == 1.0
        assert t.record_failure("slot-0", 3.0) == 4.0

    def test_a_success_resets_the_slot_to_the_initial_delay(self) -> None:
        t = tracker(backoff_initial=1.0, backoff_multiplier=2.0)
        t.record_failure("slot-0", 0.0)
        t.record_failure("slot-0", 1.0)
        t.record_failure("slot-1", 1.0)
        t.record_success("slot-0", 2.0)
        assert t.consecutive_failures("slot-0") == 0
        assert t.record_failure("slot-0", 3.0) == 1.0
        assert t.record_failure("slot-1", 3.0) == 2.0

    def test_a_success_of_a_slot_that_never_failed_is_harmless(self) -> None:
        t = tracker()
        t.record_success("slot-9", 0.0)
        assert t.consecutive_failures("slot-9") == 0

    def test_jitter_keeps_each_delay_within_plus_or_minus_its_fraction(self) -> None:
        t = tracker(random.Random(1234), jitter=0.2, backoff_initial=1.0, backoff_multiplier=1.0)
        delays = [t.record_failure(f"slot-{i}", 0.0) for i in range(500)]
        assert all(d is not None and 0.8 <= d <= 1.2 for d in delays)
        spread = {round(d, 6) for d in delays if d is not None}
        assert len(spread) > 400
        assert min(d for d in delays if d is not None) < 0.85
        assert max(d for d in delays if d is not None) > 1.15

    def test_jitter_applies_to_the_capped_delay(self) -> None:
        t = tracker(random.Random(99), jitter=0.5, backoff_initial=8.0, backoff_max=10.0)
        delays = [t.record_failure("slot-0", 0.0) for _ in range(50)][1:]
        assert all(d is not None and 5.0 <= d <= 15.0 for d in delays)

    def test_the_same_seed_gives_the_same_delays(self) -> None:
        def run() -> list[float | None]:
            t = tracker(random.Random(42), jitter=0.3)
            return [t.record_failure("slot-0", float(i)) for i in range(6)]

        assert run() == run()

    def test_without_jitter_the_rng_is_not_consulted(self) -> None:
        class NoRandom(random.Random):
            def random(self) -> float:
                raise AssertionError("rng used with jitter=0")

        assert tracker(NoRandom(), jitter=0.0).record_failure("slot-0", 0.0) == 0.1


class TestRestartIntensity:
    def test_failures_up_to_max_restarts_in_the_window_keep_restarting(self) -> None:
        t = tracker(max_restarts=3, window=10.0)
        assert all(t.record_failure(f"slot-{i}", float(i)) is not None for i in range(3))
        assert not t.degraded
        assert t.restarts_in_window(3.0) == 3

    def test_one_failure_more_than_max_restarts_in_the_window_degrades_the_pool(self) -> None:
        t = tracker(max_restarts=3, window=10.0)
        for i in range(3):
            t.record_failure(f"slot-{i}", float(i))
        assert t.record_failure("slot-0", 3.0) is None
        assert t.degraded

    def test_intensity_counts_failures_of_every_slot_together(self) -> None:
        t = tracker(max_restarts=2, window=10.0)
        t.record_failure("slot-0", 0.0)
        t.record_failure("slot-1", 1.0)
        assert t.record_failure("slot-2", 2.0) is None

    def test_failures_older_than_the_window_no_longer_count(self) -> None:
        t = tracker(max_restarts=2, window=10.0)
        t.record_failure("slot-0", 0.0)
        t.record_failure("slot-0", 5.0)
        assert t.restarts_in_window(10.0) == 1
        assert t.record_failure("slot-0", 10.0) is not None
        assert not t.degraded
        assert t.restarts_in_window(100.0) == 0

    def test_max_restarts_zero_degrades_on_the_first_failure(self) -> None:
        t = tracker(max_restarts=0)
        assert t.record_failure("slot-0", 0.0) is None
        assert t.degraded

    def test_a_degraded_pool_stays_degraded_even_after_the_window_passes(self) -> None:
        t = tracker(max_restarts=1, window=10.0)
        t.record_failure("slot-0", 0.0)
        t.record_failure("slot-0", 1.0)
        assert t.record_failure("slot-0", 500.0) is None
        assert t.degraded

    def test_reset_leaves_degraded_and_starts_counting_afresh(self) -> None:
        t = tracker(max_restarts=1, window=10.0, backoff_initial=1.0)
        t.record_failure("slot-0", 0.0)
        t.record_failure("slot-0", 1.0)
        assert t.degraded
        t.reset()
        assert not t.degraded
        assert t.restarts_in_window(2.0) == 0
        assert t.record_failure("slot-0", 2.0) == 1.0

    def test_an_unseeded_tracker_still_returns_delays_in_range(self) -> None:
        t = RestartTracker(RestartPolicy())
        delay = t.record_failure("slot-0", 0.0)
        assert delay is not None
        assert 0.08 <= delay <= 0.12

    def test_repr_tells_the_state(self) -> None:
        t = tracker(max_restarts=0)
        assert repr(t) == "<RestartTracker ok, 0 failures recorded in window>"
        t.record_failure("slot-0", 0.0)
        assert repr(t) == "<RestartTracker degraded, 1 failures recorded in window>"
