"""The supervisor's decisions, without a loop or a process: slot states in, actions out."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from snakepit.config import PoolConfig
from snakepit.errors import ExecutionTimeoutError, PoolDegradedError, ToolError, WorkerCrashedError
from snakepit.pool._actions import (
    CountCrash,
    CountRestart,
    Degrade,
    Kill,
    Recycle,
    Restart,
    Retire,
    SlotState,
)
from snakepit.pool._scheduler import Scheduler
from snakepit.pool._supervision import Supervision


def supervision(**options: Any) -> Supervision:
    """A running supervision whose slots all hold a ready worker (w1, w2, ...)."""
    config = PoolConfig(adapter="pkg.mod:Adapter", **{"size": 2, **options})
    scheduler = Scheduler(name="p")
    sup = Supervision(name="p", config=config, scheduler=scheduler, rng=random.Random(7))
    sup.start()
    for slot in sup.slots:
        occupy(sup, slot)
    return sup


def occupy(sup: Supervision, slot: SlotState) -> str:
    """What the engine does when a new occupant of ``slot`` becomes ready."""
    worker_id = sup.new_worker_id(slot)
    sup.scheduler.add_worker(worker_id)
    sup.occupy(slot, worker_id, now=0.0)
    return worker_id


READY: dict[str, Any] = {"deadline": 2.0, "on_thread": True, "ready": True, "exited": False}


def gone(sup: Supervision, worker_id: str) -> None:
    """What the engine does when a worker exits, before asking what to do."""
    sup.scheduler.remove_worker(worker_id)


class TestSlots:
    def test_each_occupant_of_a_slot_gets_a_new_id(self) -> None:
        sup = supervision(size=1)
        slot = sup.slots[0]
        assert slot.worker_id == "w1"
        assert occupy(sup, slot) == "w1-2"
        assert occupy(sup, slot) == "w1-3"
        assert sup.slot_of["w1-3"] is slot

    def test_the_displaced_occupant_retires(self) -> None:
        sup = supervision(size=1)
        slot = sup.slots[0]
        new = sup.new_worker_id(slot)
        assert sup.occupy(slot, new, now=0.0) == [Retire("w1")]
        assert slot.worker_id == new
        assert sup.exited("w1", None, 0, now=0.0) == []  # expected, and no longer its slot's

    def test_a_displaced_occupant_that_exited_already_is_not_retired(self) -> None:
        sup = supervision(size=1)
        sup.exited("w1", None, 1, now=0.0)
        slot = sup.slots[0]
        assert sup.occupy(slot, sup.new_worker_id(slot), now=1.0) == [CountRestart(1)]

    def test_a_start_that_never_became_ready_leaves_no_trace(self) -> None:
        sup = supervision(size=1)
        doomed = sup.new_worker_id(sup.slots[0])
        assert doomed not in sup.slot_of
        assert sup.slots[0].worker_id == "w1"


class TestExits:
    def test_a_crash_is_counted_and_restarted_after_backoff(self) -> None:
        sup = supervision()
        gone(sup, "w1")
        actions = sup.exited("w1", 1234, 3, now=10.0)
        assert actions[0] == CountCrash("w1", 1234, 3)
        restart = actions[1]
        assert isinstance(restart, Restart)
        assert (restart.slot, restart.attempt) == (1, 1)
        assert restart.delay > 0
        assert len(actions) == 2

    def test_consecutive_failures_of_a_slot_back_off_longer(self) -> None:
        sup = supervision(size=1, backoff_initial=1.0, backoff_max=100.0, max_restarts=50)
        slot = sup.slots[0]
        restart = sup.exited("w1", None, 1, now=0.0)[-1]
        assert isinstance(restart, Restart)
        delays = [restart.delay]
        for _ in range(3):
            (restart,) = sup.start_failed(slot, 0.0, "no module named x")
            assert isinstance(restart, Restart)
            delays.append(restart.delay)
        assert delays == sorted(delays)
        assert delays[-1] > 4 * delays[0]
        assert restart.attempt == 4

    def test_an_exit_the_pool_caused_is_replaced_at_once_and_not_counted(self) -> None:
        sup = supervision()
        overrun = ExecutionTimeoutError("too slow")
        assert sup.call_failed("w1", "call 1", overrun, **READY) == [
            Kill("w1", "call 1 ran past its 2.0s deadline")
        ]
        assert sup.exited("w1", None, -9, now=0.0) == [Restart(1, 0.0)]
        assert sup.slots[0].replacing
        assert sup.restarts.restarts_in_window(0.0) == 0

    def test_a_counted_kill_is_a_crash(self) -> None:
        sup = supervision()
        sup.heartbeat_failed("w2", "ExecutionTimeoutError", ready=True)
        actions = sup.exited("w2", None, -9, now=0.0)
        assert isinstance(actions[0], CountCrash)
        assert sup.restarts.restarts_in_window(0.0) == 1

    def test_a_retired_worker_exits_quietly(self) -> None:
        sup = supervision(size=1)
        occupy(sup, sup.slots[0])  # its replacement holds the slot already, it retires
        assert sup.exited("w1", None, 0, now=0.0) == []

    def test_beyond_the_intensity_the_pool_degrades_and_the_slot_stays_empty(self) -> None:
        sup = supervision(max_restarts=1)
        first = sup.exited("w1", None, 1, now=0.0)
        assert isinstance(first[-1], Restart)
        second = sup.exited("w2", None, 1, now=1.0)
        assert isinstance(second[0], CountCrash)
        degrade = second[1]
        assert isinstance(degrade, Degrade)
        assert degrade.slot == 2
        assert "more than 1 unexpected worker exits" in degrade.reason
        assert sup.slots[1].worker_id is None
        assert sup.degraded

    def test_no_restart_while_closing(self) -> None:
        sup = supervision()
        sup.stop()
        assert sup.exited("w1", None, 1, now=0.0) == []

    def test_no_second_replacement_while_one_is_under_way(self) -> None:
        sup = supervision(max_requests=1)
        assert sup.dispatched("w1", 0) == [Recycle("w1", "max_requests (1)")]
        assert sup.exited("w1", None, 1, now=0.0) == [CountCrash("w1", None, 1)]

    def test_a_failed_start_is_retried_after_backoff_then_degrades(self) -> None:
        sup = supervision(max_restarts=2)
        slot = sup.slots[0]
        (restart,) = sup.exited("w1", None, 1, now=0.0)[1:]
        assert restart == Restart(1, restart.delay, attempt=1)
        (retry,) = sup.start_failed(slot, 0.5, "no module named x")
        assert isinstance(retry, Restart)
        assert (retry.attempt, retry.retry) == (2, True)  # failures in a row, announced already
        assert retry.delay > restart.delay
        assert slot.replacing
        (degrade,) = sup.start_failed(slot, 1.0, "no module named x")
        assert isinstance(degrade, Degrade)
        assert degrade.slot == 1
        assert "replacements keep failing to start: no module named x" in degrade.reason
        assert (slot.worker_id, slot.replacing) == (None, False)
        assert sup.vacant(slot)

    def test_a_failed_start_outside_a_replacement_is_its_callers_error(self) -> None:
        sup = supervision(size=1)
        sup.exited("w1", None, 1, now=0.0)
        sup.replacement_ended(sup.slots[0])  # say the pool closed meanwhile
        assert sup.start_failed(sup.slots[0], 0.0, "boom") == []

    def test_a_replacement_that_serves_is_counted_and_resets_its_backoff(self) -> None:
        sup = supervision()
        sup.exited("w1", None, 1, now=0.0)
        assert sup.restarts.consecutive_failures("w1") == 1
        slot = sup.slots[0]
        assert sup.occupy(slot, sup.new_worker_id(slot), now=0.5) == [CountRestart(1)]
        assert sup.restarts.consecutive_failures("w1") == 0
        assert not slot.replacing

    def test_an_expected_exit_while_a_replacement_is_under_way_starts_no_second(self) -> None:
        sup = supervision(size=1, max_requests=1)
        sup.dispatched("w1", 0)  # recycled: its successor is starting
        assert sup.call_failed("w1", "call 1", ExecutionTimeoutError("late"), **READY)
        assert sup.exited("w1", None, -9, now=0.0) == []
        assert sup.slots[0].replacing


class TestRecycling:
    def test_the_last_call_max_requests_allows_recycles_the_worker(self) -> None:
        sup = supervision(max_requests=3)
        assert sup.dispatched("w1", requests=0) == []
        assert sup.dispatched("w1", requests=1) == []
        assert sup.dispatched("w1", requests=2) == [Recycle("w1", "max_requests (3)")]

    def test_no_limit_never_recycles(self) -> None:
        assert supervision().dispatched("w1", requests=10**6) == []

    def test_a_draining_worker_is_not_recycled_twice(self) -> None:
        sup = supervision(max_requests=1)
        sup.scheduler.set_accepting("w1", False)
        assert sup.dispatched("w1", requests=0) == []

    def test_a_slot_being_replaced_is_not_recycled(self) -> None:
        sup = supervision()
        assert sup.recycle("w1", "ttl") == [Recycle("w1", "ttl")]
        assert sup.slots[0].replacing
        sup.scheduler.set_accepting("w1", True)
        assert sup.recycle("w1", "memory") == []

    def test_a_displaced_or_gone_worker_is_not_recycled(self) -> None:
        sup = supervision(size=1)
        occupy(sup, sup.slots[0])
        assert sup.recycle("w1", "ttl") == []
        assert sup.recycle("nobody", "ttl") == []

    def test_ttl_recycles_the_workers_that_lived_long_enough(self) -> None:
        sup = supervision(ttl=30.0)
        actions = sup.too_old(100.0, [("w1", 70.0), ("w2", 70.5)])
        assert actions == [Recycle("w1", "ttl (30.0s)")]

    def test_ttl_unset_or_worker_not_ready_recycles_nothing(self) -> None:
        assert supervision().too_old(1e9, [("w1", 0.0)]) == []
        assert supervision(ttl=1.0).too_old(1e9, [("w1", None)]) == []

    def test_memory_limit_recycles_the_workers_above_it(self) -> None:
        sup = supervision(memory_limit_mb=100)
        actions = sup.too_big([("w1", 101 * 2**20), ("w2", 100 * 2**20)])
        assert actions == [Recycle("w1", "memory (101 MiB > 100 MiB)")]
        assert sup.too_big([("w1", None)]) == []
        assert supervision().too_big([("w1", 10**12)]) == []


class TestKills:
    def test_an_exited_worker_is_not_killed(self) -> None:
        sup = supervision()
        late = ExecutionTimeoutError("late")
        assert (
            sup.call_failed("w1", "call 1", late, **{**READY, "ready": False, "exited": True}) == []
        )
        sup.exited("w2", None, 1, now=0.0)  # its exit was seen: nothing left to kill
        assert sup.call_failed("w2", "call 2", late, **READY) == []
        assert sup.heartbeat_failed("w2", "WorkerCrashedError", ready=True) == []

    def test_a_skipped_kill_leaves_no_expectation_behind(self) -> None:
        sup = supervision()
        sup.exited("w1", None, 1, now=0.0)
        sup.call_failed("w1", "call 1", ExecutionTimeoutError("late"), **READY)
        assert "w1" not in sup._intentional

    def test_a_broken_channel_kills_a_worker_that_still_runs_counted(self) -> None:
        sup = supervision()
        crashed = WorkerCrashedError("channel broke")
        assert sup.call_failed("w1", "call 1", crashed, **READY) == [
            Kill("w1", "its channel broke while the process still ran")
        ]
        assert isinstance(sup.exited("w1", None, -9, now=0.0)[0], CountCrash)
        stopping = {**READY, "ready": False, "exited": False}
        assert sup.call_failed("w2", "call 2", crashed, **stopping) == []

    def test_an_overrun_kills_a_stopping_worker_too(self) -> None:
        """Neither ready nor exited: its overrunning call may hold up its stop."""
        sup = supervision()
        stopping = {**READY, "ready": False, "exited": False}
        assert sup.call_failed("w1", "call 1", ExecutionTimeoutError("late"), **stopping) == [
            Kill("w1", "call 1 ran past its 2.0s deadline")
        ]

    def test_a_cancelled_call_kills_its_worker_only_in_a_tool_thread(self) -> None:
        sup = supervision()
        cancelled = asyncio.CancelledError()
        assert sup.call_failed("w1", "call 1", cancelled, **READY) == [
            Kill("w1", "call 1 was cancelled while running")
        ]
        in_loop = {**READY, "on_thread": False}
        assert sup.call_failed("w2", "call 2", cancelled, **in_loop) == []
        assert sup.exited("w1", None, -9, now=0.0) == [Restart(1, 0.0)]  # not counted

    def test_a_tools_own_error_leaves_its_worker_alone(self) -> None:
        sup = supervision()
        assert sup.call_failed("w1", "call 1", ToolError("bad input"), **READY) == []
        assert sup.call_failed("w1", "call 1", ValueError("odd"), **READY) == []

    def test_a_failed_heartbeat_kills_a_ready_worker_counted(self) -> None:
        sup = supervision()
        assert sup.heartbeat_failed("w1", "ExecutionTimeoutError", ready=False) == []
        assert sup.heartbeat_failed("w1", "ExecutionTimeoutError", ready=True) == [
            Kill("w1", "heartbeat failed: ExecutionTimeoutError")
        ]
        assert isinstance(sup.exited("w1", None, -9, now=0.0)[0], CountCrash)


class TestSettle:
    def test_a_tool_thread_still_running_recycles_its_worker(self) -> None:
        sup = supervision()
        assert sup.settled("w1", running=True, reason="stuck", ready=True) == [
            Recycle("w1", "stuck")
        ]

    def test_a_free_thread_or_a_worker_gone_keeps_things_as_they_are(self) -> None:
        sup = supervision()
        assert sup.settled("w1", running=False, reason="stuck", ready=True) == []
        assert sup.settled("w1", running=True, reason="stuck", ready=False) == []


class TestRecycledSuccessor:
    def recycled(self) -> tuple[Supervision, SlotState]:
        sup = supervision(size=1, max_requests=1)
        assert sup.dispatched("w1", 0) == [Recycle("w1", "max_requests (1)")]
        sup.scheduler.set_accepting("w1", False)  # as the engine does with a Recycle
        slot = sup.slots[0]
        assert slot.replacing
        sup.new_worker_id(slot)  # its successor, w1-2, is starting
        return sup, slot

    def test_the_successor_takes_over_and_the_recycled_worker_retires(self) -> None:
        sup, slot = self.recycled()
        assert sup.occupy(slot, "w1-2", now=0.0) == [Retire("w1")]  # a recycle is no restart
        assert not slot.replacing
        assert sup.exited("w1", None, 0, now=0.0) == []

    def test_a_successor_that_fails_to_start_retires_the_recycled_worker(self) -> None:
        sup, slot = self.recycled()
        assert sup.start_failed(slot, 0.0, "boom") == [Retire("w1")]
        assert not slot.replacing
        sup.scheduler.remove_worker("w1")
        # The retired worker's exit refills the slot at once, however late it is seen.
        assert sup.exited("w1", 1, 0, now=0.0) == [Restart(1, 0.0)]
        assert slot.replacing
        assert sup.restarts.restarts_in_window(0.0) == 0

    def test_a_successor_that_fails_after_its_predecessor_crashed_restarts_the_slot(
        self,
    ) -> None:
        sup, slot = self.recycled()
        assert sup.exited("w1", None, 1, now=0.0) == [CountCrash("w1", None, 1)]
        (restart,) = sup.start_failed(slot, 0.0, "boom")
        assert isinstance(restart, Restart)
        assert restart.delay > 0
        assert slot.replacing

    def test_a_replacement_that_ends_unstarted_frees_the_slot(self) -> None:
        sup, slot = self.recycled()
        sup.replacement_ended(slot)
        assert not slot.replacing
        assert sup.recycle("w1", "ttl") == []  # still draining: not accepting


class TestDegraded:
    def degraded(self) -> Supervision:
        sup = supervision(size=1, max_restarts=0)
        gone(sup, "w1")
        (_, degrade) = sup.exited("w1", None, 1, now=0.0)
        assert isinstance(degrade, Degrade)
        return sup

    def test_a_degraded_pool_with_no_worker_cannot_serve(self) -> None:
        error = self.degraded().unservable()
        assert isinstance(error, PoolDegradedError)
        assert "pool.recover()" in str(error)

    def test_a_healthy_pool_can_serve(self) -> None:
        assert supervision().unservable() is None

    def test_a_replacement_on_its_way_can_serve(self) -> None:
        sup = supervision(size=1, max_restarts=1)
        gone(sup, "w1")
        sup.exited("w1", None, 1, now=0.0)  # restarting...
        assert sup.unservable() is None
        (degrade,) = sup.start_failed(sup.slots[0], 0.1, "boom")  # ... and no more
        assert isinstance(degrade, Degrade)
        assert isinstance(sup.unservable(), PoolDegradedError)

    def test_reset_leaves_the_degraded_state_and_the_empty_slot_is_vacant(self) -> None:
        sup = self.degraded()
        assert sup.vacant(sup.slots[0])
        sup.reset()
        assert not sup.degraded
        occupy(sup, sup.slots[0])
        assert not sup.vacant(sup.slots[0])


class TestMaintenance:
    @pytest.mark.parametrize(
        ("options", "interval"),
        [
            ({"heartbeat_interval": None}, None),
            ({"heartbeat_interval": 2.0}, 2.0),
            ({"heartbeat_interval": None, "ttl": 0.5}, 0.5),
            ({"heartbeat_interval": None, "ttl": 30.0}, 1.0),
            ({"heartbeat_interval": None, "memory_limit_mb": 64}, 1.0),
        ],
    )
    def test_the_interval_follows_the_checks_that_are_set(
        self, options: dict[str, Any], interval: float | None
    ) -> None:
        assert supervision(**options).maintenance_interval() == interval
