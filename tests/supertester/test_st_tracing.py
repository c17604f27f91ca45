"""EventRecorder and the plugin hook that prints histories when a test fails."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from supertester import EventRecorder, FakeClock

if TYPE_CHECKING:
    from collections.abc import Callable

    import pytest


class TestEventRecorder:
    def test_records_in_order_with_monotonic_times_and_threads(self) -> None:
        recorder = EventRecorder()
        recorder("started")
        recorder.record({"worker": 1})
        entries = recorder.entries
        assert [e.event for e in entries] == ["started", {"worker": 1}]
        assert [e.seq for e in entries] == [0, 1]
        assert entries[0].at <= entries[1].at
        assert entries[0].thread == threading.current_thread().name
        assert len(recorder) == 2

    def test_is_thread_safe_and_keeps_each_threads_order(self) -> None:
        recorder = EventRecorder()
        threads = [
            threading.Thread(target=lambda n=n: [recorder((n, i)) for i in range(200)])
            for n in range(4)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(recorder) == 800
        for n in range(4):
            assert [i for (m, i) in recorder.events if m == n] == list(range(200))  # type: ignore[misc]

    def test_matching_filters_by_type_or_predicate(self) -> None:
        recorder = EventRecorder()
        for event in ("a", 1, "b", 2):
            recorder(event)
        assert recorder.matching(str) == ["a", "b"]
        assert recorder.matching(lambda e: e == 2) == [2]

    async def test_format_is_readable_and_can_use_a_fake_clock(self) -> None:
        clock = FakeClock()
        recorder = EventRecorder("pool events", clock=clock.monotonic)
        recorder("WorkerStarting")
        await clock.advance(1.5)
        recorder("WorkerReady")
        text = recorder.format()
        assert text.splitlines()[0] == "pool events (2 events, oldest first):"
        assert "#0    + 0.000000s" in text
        assert "#1    + 1.500000s" in text and "'WorkerReady'" in text
        recorder.clear()
        assert recorder.format() == "pool events: (no events recorded)"

    def test_a_long_history_is_shortened(self) -> None:
        recorder = EventRecorder()
        for i in range(10):
            recorder(i)
        assert "7 earlier events not shown" in recorder.format(limit=3)


class TestPytestIntegration:
    def test_a_failing_test_prints_the_recorder_and_mailbox_histories(
        self, run_inner: Callable[[str], pytest.RunResult]
    ) -> None:
        result = run_inner(
            """
            def test_fails(recorder):
                recorder("WorkerReady(w1)")
                recorder("WorkerExited(w1, code=9)")
                assert False, "pool lost a worker"

            async def test_fails_too(mailbox):
                mailbox.put("only-item")
                await mailbox.assert_receive(int, timeout=0.01)

            def test_passes(recorder):
                recorder("FINE-EVENT")
            """
        )
        result.assert_outcomes(passed=1, failed=2)
        result.stdout.fnmatch_lines(
            [
                "*- supertester: event history -*",
                "recorded events (2 events, oldest first):",
                "*#0 *'WorkerReady(w1)'",
                "*#1 *'WorkerExited(w1, code=9)'",
            ]
        )
        result.stdout.fnmatch_lines(["*- supertester: mailbox history -*", "*pending  'only-item'"])
        assert "FINE-EVENT" not in result.stdout.str()
