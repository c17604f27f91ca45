"""The supervisor's decisions, without a loop or a process: slot states in, actions out."""

from __future__ import annotations

import random
from typing import Any

import pytest

from snakepit.config import PoolConfig
from snakepit.errors import PoolDegradedError
from snakepit.pool._scheduler import Scheduler
from snakepit.pool._supervision import (
    CountCrash,
    Degrade,
    Kill,
    Recycle,
    Restart,
    SlotState,
    Supervision,
)


def supervision(**options: Any) -> Supervision:
    """A running supervision whose slots all hold a ready worker (w1, w2, ...)."""
    config = PoolConfig(adapter="pkg.mod:Adapter", **{"size": 2, **options})
    scheduler = Scheduler(name="p")
    sup = Supervision(name="p", config=config, scheduler=scheduler, rng=random.Random(7))
    sup.running = True
    for slot in sup.slots:
        occupy(sup, slot)
    return sup


def occupy(sup: Supervision, slot: SlotState) -> str:
    """What the engine does when a new occupant of ``slot`` becomes ready."""
    worker_id = sup.new_worker_id(slot)
    sup.occupy(slot, worker_id)
    sup.scheduler.add_worker(worker_id)
    return worker_id


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

    def test_occupy_returns_the_displaced_occupant(self) -> None:
        sup = supervision(size=1)
        slot = sup.slots[0]
        new = sup.new_worker_id(slot)
        assert sup.occupy(slot, new) == "w1"
        assert slot.worker_id == new

    def test_a_start_that_never_became_ready_leaves_no_trace(self) -> None:
        sup = supervision(size=1)
        doomed = sup.new_worker_id(sup.slots[0])
        sup.start_abandoned(doomed)
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

    def test_consecutive_crashes_of_a_slot_back_off_longer(self) -> None:
        sup = supervision(size=1, backoff_initial=1.0, backoff_max=100.0, max_restarts=50)
        delays = []
        for _ in range(4):
            worker_id = sup.slots[0].worker_id
            assert worker_id is not None
            actions = sup.exited(worker_id, None, 1, now=0.0)
            restart = actions[-1]
            assert isinstance(restart, Restart)
            delays.append(restart.delay)
            occupy(sup, sup.slots[0])
        assert delays == sorted(delays)
        assert delays[-1] > 4 * delays[0]

    def test_an_exit_the_pool_caused_is_replaced_at_once_and_not_counted(self) -> None:
        sup = supervision()
        assert sup.kill("w1", "deadline", counted=False, exited=False) == [
            Kill("w1", "deadline", counted=False)
        ]
        assert sup.exited("w1", None, -9, now=0.0) == [Restart(1, 0.0)]
        assert sup.restarts.restarts_in_window(0.0) == 0

    def test_a_counted_kill_is_a_crash(self) -> None:
        sup = supervision()
        sup.kill("w2", "heartbeat failed", counted=True, exited=False)
        actions = sup.exited("w2", None, -9, now=0.0)
        assert isinstance(actions[0], CountCrash)
        assert sup.restarts.restarts_in_window(0.0) == 1

    def test_a_retired_worker_exits_quietly(self) -> None:
        sup = supervision(size=1)
        sup.retiring("w1")
        occupy(sup, sup.slots[0])  # its replacement holds the slot already
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
        sup.running = False
        assert sup.exited("w1", None, 1, now=0.0) == []

    def test_no_second_replacement_while_one_is_under_way(self) -> None:
        sup = supervision()
        sup.slots[0].replacing = True
        assert sup.exited("w1", None, 1, now=0.0) == [CountCrash("w1", None, 1)]

    def test_a_failed_start_is_retried_after_backoff_then_degrades(self) -> None:
        sup = supervision(max_restarts=1)
        slot = sup.slots[0]
        retry = sup.start_failed(slot, 0.0, "no module named x")
        assert isinstance(retry, Restart)
        assert retry.delay > 0
        degrade = sup.start_failed(slot, 0.1, "no module named x")
        assert isinstance(degrade, Degrade)
        assert "replacements keep failing to start: no module named x" in degrade.reason

    def test_a_replacement_that_serves_resets_its_backoff(self) -> None:
        sup = supervision()
        sup.exited("w1", None, 1, now=0.0)
        assert sup.restarts.consecutive_failures("w1") == 1
        sup.restarted(sup.slots[0], 0.5)
        assert sup.restarts.consecutive_failures("w1") == 0


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
        sup.slots[0].replacing = True
        assert sup.recycle("w1", "ttl") == []

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
        assert supervision().kill("w1", "deadline", counted=False, exited=True) == []

    def test_a_kill_carries_its_reason(self) -> None:
        (kill,) = supervision().kill("w2", "heartbeat failed", counted=True, exited=False)
        assert kill == Kill("w2", "heartbeat failed", counted=True)


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
        sup = self.degraded()
        sup.slots[0].replacing = True
        assert sup.unservable() is None

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
