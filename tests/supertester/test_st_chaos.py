"""Chaos helpers: seeded, reproducible, and each reports what it did."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import psutil
import pytest

from supertester import (
    FailureSchedule,
    FailureTarget,
    InjectedFailure,
    assert_all_children_alive,
    assert_process_restarted,
    exhaust_resources,
    inject_random_failures,
    kill_children,
    plan_failures,
    run_chaos_suite,
)

MakeSupervisor = Callable[..., Awaitable[Any]]


class RecordingTarget:
    def __init__(self, *, asynchronous: bool = False) -> None:
        self.calls: list[tuple[str, str]] = []
        self.asynchronous = asynchronous

    def inject(self, kind: str, child_id: str) -> Awaitable[None] | None:
        if not self.asynchronous:
            self.calls.append((kind, child_id))
            return None

        async def later() -> None:
            self.calls.append((kind, child_id))

        return later()


class TestKillChildren:
    async def test_kills_the_chosen_count_and_the_supervisor_restarts_them(
        self, toy_supervisor: MakeSupervisor
    ) -> None:
        sup = await toy_supervisor(3)
        report = kill_children(sup, count=2, seed=42)
        assert report.seed == 42
        assert report.signal == signal.SIGKILL
        assert report.considered == ("child-0", "child-1", "child-2")
        assert len(report.killed) == 2
        assert report.skipped == ()
        for victim in report.killed:
            await assert_process_restarted(sup, victim.id, victim.pid, timeout=5)
        assert_all_children_alive(sup)

    async def test_the_same_seed_picks_the_same_victims(
        self, toy_supervisor: MakeSupervisor
    ) -> None:
        first = kill_children(await toy_supervisor(4, restart=False), rate=0.5, seed=7)
        second = kill_children(await toy_supervisor(4, restart=False), rate=0.5, seed=7)
        assert first.killed_ids == second.killed_ids

    async def test_rate_zero_kills_none_and_rate_one_kills_all(
        self, toy_supervisor: MakeSupervisor
    ) -> None:
        sup = await toy_supervisor(2, restart=False)
        assert kill_children(sup, rate=0.0).killed == ()
        report = kill_children(sup, rate=1.0, signal=signal.SIGTERM)
        assert report.killed_ids == ("child-0", "child-1")
        assert isinstance(report.seed, int)  # drawn, and reported for replay

    def test_rate_and_count_together_are_a_usage_error(self) -> None:
        with pytest.raises(ValueError, match="either rate= or count="):
            kill_children(object(), rate=0.5, count=1)  # type: ignore[arg-type]


class TestPlanFailures:
    def test_is_reproducible_and_covers_rate_bounds(self) -> None:
        ids = [f"w{i}" for i in range(20)]
        assert plan_failures(ids, 0.5, seed=3) == plan_failures(list(reversed(ids)), 0.5, seed=3)
        assert plan_failures(ids, 0.0, seed=3) == ()
        assert {f.child_id for f in plan_failures(ids, 1.0, seed=3)} == set(ids)
        assert {f.kind for f in plan_failures(ids, 1.0, seed=3)} <= {
            "exit",
            "timeout",
            "disconnect",
        }

    def test_rejects_a_bad_rate_or_no_kinds(self) -> None:
        with pytest.raises(ValueError, match="within"):
            plan_failures(["a"], 1.5, seed=1)
        with pytest.raises(ValueError, match="at least one"):
            plan_failures(["a"], 0.5, (), seed=1)


class TestInjectRandomFailures:
    @pytest.mark.parametrize("asynchronous", [False, True])
    async def test_injects_the_planned_failures_and_reports_them(self, asynchronous: bool) -> None:
        target = RecordingTarget(asynchronous=asynchronous)
        assert isinstance(target, FailureTarget)
        ids = ["a", "b", "c", "d"]
        report = await inject_random_failures(
            target, 0.5, ("exit", "timeout"), seed=11, child_ids=ids
        )
        assert report.injected == plan_failures(ids, 0.5, ("exit", "timeout"), seed=11)
        assert target.calls == [(f.kind, f.child_id) for f in report.injected]
        assert set(report.spared) | {f.child_id for f in report.injected} == set(ids)
        assert set(report.by_kind("exit")) <= set(ids)

    async def test_without_ids_a_non_supervised_target_is_a_usage_error(self) -> None:
        with pytest.raises(ValueError, match="needs child_ids="):
            await inject_random_failures(RecordingTarget(), 0.5)

    async def test_an_exit_failure_on_the_toy_is_recovered(
        self, toy_supervisor: MakeSupervisor
    ) -> None:
        sup = await toy_supervisor(2)
        before = {c.id: c.pid for c in sup.children()}
        report = await inject_random_failures(sup, 1.0, ("exit",), seed=5)
        assert report.injected == (
            InjectedFailure("child-0", "exit"),
            InjectedFailure("child-1", "exit"),
        )
        for failure in report.injected:
            await assert_process_restarted(
                sup, failure.child_id, before[failure.child_id], timeout=5
            )


class TestFailureSchedule:
    def test_per_call_decisions_replay_with_the_seed(self) -> None:
        one = FailureSchedule(0.3, ("timeout", "disconnect"), seed=9)
        two = FailureSchedule(0.3, ("timeout", "disconnect"), seed=9)
        first = [one.next(f"call-{i}") for i in range(50)]
        assert first == [two.next() for _ in range(50)]
        assert {kind for kind in first} <= {None, "timeout", "disconnect"}
        assert one.failures == [(f"call-{i}", k) for i, k in enumerate(first) if k is not None]
        assert 0 < len(one.failures) < 50

    def test_decides_as_the_plan_does_for_the_same_seed(self) -> None:
        ids = [f"w{i:02}" for i in range(30)]
        schedule = FailureSchedule(0.4, ("exit", "timeout"), seed=21)
        decisions = [(child_id, schedule.next(child_id)) for child_id in ids]
        planned = plan_failures(ids, 0.4, ("exit", "timeout"), seed=21)
        assert tuple(InjectedFailure(c, k) for c, k in decisions if k is not None) == planned
        with pytest.raises(ValueError, match="failure_rate must be within"):
            FailureSchedule(-0.1)
        with pytest.raises(ValueError, match="at least one"):
            FailureSchedule(0.5, ())


class TestExhaustResources:
    def test_a_memory_limit_makes_the_child_fail_to_allocate_then_restores(self) -> None:
        script = (
            "import sys\n"
            "print('ready', flush=True)\n"
            "sys.stdin.readline()\n"
            "try:\n"
            "    block = bytearray(512 * 1024 * 1024)\n"
            "except MemoryError:\n"
            "    print('MemoryError', flush=True)\n"
            "else:\n"
            "    print('allocated', flush=True)\n"
        )
        proc = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", script],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert proc.stdout is not None
            assert proc.stdout.readline() == "ready\n"  # started: its own mappings are in place
            vms_mb = psutil.Process(proc.pid).memory_info().vms / 2**20
            report = exhaust_resources(proc.pid, memory_mb=vms_mb + 64, open_files=64)
            assert [limit.name for limit in report.applied] == ["memory", "open_files"]
            assert psutil.Process(proc.pid).rlimit(psutil.RLIMIT_NOFILE)[0] == 64
            out, _ = proc.communicate("go\n", timeout=30)
            assert out.strip() == "MemoryError"
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    def test_restore_puts_the_limits_back(self, child_process: Callable[..., Any]) -> None:
        proc = child_process()
        before = psutil.Process(proc.pid).rlimit(psutil.RLIMIT_CPU)
        report = exhaust_resources(proc.pid, cpu_seconds=1)
        assert psutil.Process(proc.pid).rlimit(psutil.RLIMIT_CPU)[0] == 1
        report.restore()
        assert psutil.Process(proc.pid).rlimit(psutil.RLIMIT_CPU) == before

    def test_needs_at_least_one_limit(self) -> None:
        with pytest.raises(ValueError, match="needs memory_mb="):
            exhaust_resources(1)


class TestRunChaosSuite:
    async def test_reports_passed_failed_timed_out_and_not_run(self) -> None:
        forever = asyncio.Event()

        async def ok() -> None:
            pass

        async def broken() -> None:
            raise RuntimeError("worker did not come back")

        async def hangs() -> None:
            await forever.wait()

        report = await run_chaos_suite(
            {"ok": ok, "broken": broken, "hangs": hangs, "late": ok}, deadline=0.05
        )
        statuses = {o.name: o.status for o in report.outcomes}
        assert statuses == {
            "ok": "passed",
            "broken": "failed",
            "hangs": "timed_out",
            "late": "not_run",
        }
        assert report.passed == ("ok",)
        assert isinstance(report.outcomes[1].error, RuntimeError)
        with pytest.raises(AssertionError) as info:
            report.assert_all_passed()
        message = str(info.value)
        assert "3 did not" in message
        assert "broken: failed (RuntimeError('worker did not come back'))" in message
        assert "hangs: timed_out" in message

    async def test_a_sequence_is_named_after_the_callables(self) -> None:
        async def crash_one_worker() -> None:
            pass

        report = await run_chaos_suite([crash_one_worker], deadline=5)
        assert report.passed == (
            "TestRunChaosSuite.test_a_sequence_is_named_after_the_callables.<locals>.crash_one_worker",
        )
        report.assert_all_passed()

    async def test_a_scenario_raising_its_own_timeout_error_failed(self) -> None:
        async def own_timeout() -> None:
            raise TimeoutError("rpc deadline")

        report = await run_chaos_suite({"rpc": own_timeout}, deadline=5)
        assert report.outcomes[0].status == "failed"
