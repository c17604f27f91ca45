"""The scheduler's decisions: dispatch, queue, reject, affinity, deadlines."""

from __future__ import annotations

import itertools
import random
from collections import Counter

import pytest

from snakepit.errors import (
    PoolSaturatedError,
    QueueTimeoutError,
    SessionWorkerUnavailableError,
    WorkerBusyError,
)
from snakepit.pool._scheduler import (
    AffinityMode,
    Dispatch,
    Queued,
    Rejected,
    Scheduler,
    Ticket,
)

_ids = itertools.count(1)


def ticket(
    preferred: str | None = None,
    *,
    deadline: float | None = None,
    session: str | None = None,
    tool: str = "echo",
) -> Ticket:
    return Ticket(
        id=next(_ids),
        tool=tool,
        session_id=session if session is not None else ("s" if preferred else None),
        preferred_worker=preferred,
        queue_deadline=deadline,
    )


def scheduler(
    *workers: str,
    capacity: int = 1,
    max_queue: int = 1000,
    affinity: AffinityMode = "hint",
) -> Scheduler:
    sched = Scheduler(name="p", max_queue=max_queue, affinity=affinity)
    for worker_id in workers:
        assert sched.add_worker(worker_id, capacity) == []
    return sched


def dispatched_to(decision: object) -> str:
    assert isinstance(decision, Dispatch), decision
    return decision.worker_id


def occupy(sched: Scheduler, *workers: str) -> None:
    """Fill every slot of the given workers with unrelated tickets."""
    for worker_id in workers:
        while sched.in_flight(worker_id) < _capacity_of(sched, worker_id):
            assert isinstance(sched.submit(ticket(worker_id, session="filler"), 0.0), Dispatch)


def _capacity_of(sched: Scheduler, worker_id: str) -> int:
    return sched._workers[worker_id].capacity


class TestConstruction:
    def test_a_negative_max_queue_is_refused(self) -> None:
        with pytest.raises(ValueError, match="max_queue"):
            Scheduler(max_queue=-1)

    def test_an_unknown_affinity_mode_is_refused(self) -> None:
        with pytest.raises(ValueError, match="affinity"):
            Scheduler(affinity="sticky")  # type: ignore[arg-type]

    def test_a_new_scheduler_has_no_workers_and_an_empty_queue(self) -> None:
        sched = Scheduler()
        assert (sched.worker_ids, sched.queued, sched.capacity) == ([], 0, 0)


class TestWorkerChoice:
    def test_a_ticket_is_dispatched_at_once_to_an_idle_worker(self) -> None:
        sched = scheduler("w1")
        t = ticket()
        assert sched.submit(t, 0.0) == Dispatch(t, "w1")
        assert sched.in_flight("w1") == 1

    def test_the_worker_running_fewest_requests_is_chosen_first(self) -> None:
        sched = scheduler("w1", "w2", capacity=3)
        assert dispatched_to(sched.submit(ticket(), 0.0)) == "w1"
        assert dispatched_to(sched.submit(ticket(), 0.0)) == "w2"
        assert dispatched_to(sched.submit(ticket(), 0.0)) == "w1"
        assert (sched.in_flight("w1"), sched.in_flight("w2")) == (2, 1)

    def test_among_equally_loaded_workers_the_one_idle_longest_is_chosen(self) -> None:
        sched = scheduler("w1", "w2", "w3")
        for _ in range(3):
            sched.submit(ticket(), 0.0)
        sched.release("w3", 1.0)
        sched.release("w1", 2.0)
        sched.release("w2", 3.0)
        order = [dispatched_to(sched.submit(ticket(), 4.0)) for _ in range(3)]
        assert order == ["w3", "w1", "w2"]

    def test_a_worker_never_used_counts_as_idle_longer_than_one_released(self) -> None:
        sched = scheduler("w1", "w2")
        sched.submit(ticket(), 0.0)
        sched.release("w1", 1.0)
        assert dispatched_to(sched.submit(ticket(), 2.0)) == "w2"

    @pytest.mark.parametrize("clock_moves", [True, False])
    def test_sequential_calls_spread_evenly_over_every_worker(self, clock_moves: bool) -> None:
        sched = scheduler("w1", "w2", "w3", "w4")
        used: Counter[str] = Counter()
        for i in range(100):
            now = float(i) if clock_moves else 0.0
            worker_id = dispatched_to(sched.submit(ticket(), now))
            used[worker_id] += 1
            sched.release(worker_id, now)
        assert used == {"w1": 25, "w2": 25, "w3": 25, "w4": 25}

    def test_overlapping_calls_use_every_worker(self) -> None:
        sched = scheduler("w1", "w2", "w3", "w4")
        rng = random.Random(7)
        running: list[str] = []
        used: set[str] = set()
        for i in range(100):
            decision = sched.submit(ticket(), float(i))
            if isinstance(decision, Dispatch):
                running.append(decision.worker_id)
                used.add(decision.worker_id)
            while running and rng.random() < 0.6:
                sched.release(running.pop(rng.randrange(len(running))), float(i))
        assert used == {"w1", "w2", "w3", "w4"}

    def test_a_worker_with_capacity_above_one_runs_that_many_requests_at_once(self) -> None:
        sched = scheduler("w1", capacity=3)
        assert [dispatched_to(sched.submit(ticket(), 0.0)) for _ in range(3)] == ["w1"] * 3
        assert isinstance(sched.submit(ticket(), 0.0), Queued)
        assert sched.in_flight("w1") == 3

    def test_submit_records_when_the_ticket_arrived(self) -> None:
        sched = scheduler()
        t = ticket()
        sched.submit(t, 12.5)
        assert t.enqueued_at == 12.5


class TestQueue:
    def test_a_ticket_waits_when_every_slot_is_taken(self) -> None:
        sched = scheduler("w1")
        sched.submit(ticket(), 0.0)
        t = ticket()
        assert sched.submit(t, 0.0) == Queued(t)
        assert sched.queued == 1

    def test_a_ticket_waits_when_there_are_no_workers_yet(self) -> None:
        sched = scheduler()
        assert isinstance(sched.submit(ticket(), 0.0), Queued)

    def test_a_freed_slot_goes_to_queued_tickets_in_arrival_order(self) -> None:
        sched = scheduler("w1")
        sched.submit(ticket(), 0.0)
        waiting = [ticket() for _ in range(3)]
        for t in waiting:
            sched.submit(t, 0.0)
        served = []
        for i in range(3):
            (dispatch,) = sched.release("w1", float(i))
            served.append(dispatch.ticket)
        assert served == waiting
        assert sched.queued == 0

    def test_a_release_with_nothing_queued_dispatches_nothing(self) -> None:
        sched = scheduler("w1")
        sched.submit(ticket(), 0.0)
        assert sched.release("w1", 1.0) == []
        assert sched.is_idle("w1")

    def test_the_queue_is_full_at_exactly_max_queue(self) -> None:
        sched = scheduler("w1", max_queue=3)
        sched.submit(ticket(), 0.0)
        for _ in range(3):
            assert isinstance(sched.submit(ticket(), 0.0), Queued)
        t = ticket()
        decision = sched.submit(t, 0.0)
        assert isinstance(decision, Rejected)
        assert decision.ticket is t
        assert isinstance(decision.error, PoolSaturatedError)
        assert sched.queued == 3

    def test_the_saturation_error_says_what_happened_and_what_to_do(self) -> None:
        sched = scheduler("w1", max_queue=1)
        sched.submit(ticket(), 0.0)
        sched.submit(ticket(), 0.0)
        decision = sched.submit(ticket(), 0.0)
        assert isinstance(decision, Rejected)
        assert str(decision.error) == (
            "pool 'p' queue is full (max_queue=1); retry later or raise max_queue/size"
        )
        assert decision.error.details["max_queue"] == 1

    def test_a_full_queue_still_dispatches_a_ticket_that_finds_a_free_slot(self) -> None:
        sched = scheduler("w1", "w2", max_queue=1, affinity="strict_queue")
        occupy(sched, "w1")
        assert isinstance(sched.submit(ticket("w1"), 0.0), Queued)
        assert dispatched_to(sched.submit(ticket(), 0.0)) == "w2"

    def test_with_max_queue_zero_a_ticket_without_a_slot_is_rejected_at_once(self) -> None:
        sched = scheduler("w1", max_queue=0)
        assert isinstance(sched.submit(ticket(), 0.0), Dispatch)
        decision = sched.submit(ticket(), 0.0)
        assert isinstance(decision, Rejected)
        assert isinstance(decision.error, PoolSaturatedError)
        assert "max_queue=0" in str(decision.error)

    def test_a_rejected_ticket_leaves_a_place_once_a_queued_one_is_served(self) -> None:
        sched = scheduler("w1", max_queue=1)
        sched.submit(ticket(), 0.0)
        sched.submit(ticket(), 0.0)
        assert isinstance(sched.submit(ticket(), 0.0), Rejected)
        sched.release("w1", 1.0)
        assert isinstance(sched.submit(ticket(), 1.0), Queued)

    def test_submitting_a_ticket_that_is_already_queued_is_a_bug(self) -> None:
        sched = scheduler()
        t = ticket()
        sched.submit(t, 0.0)
        with pytest.raises(ValueError, match="already queued"):
            sched.submit(t, 0.0)

    def test_clear_queue_returns_every_waiting_ticket_oldest_first(self) -> None:
        sched = scheduler("w1", affinity="strict_queue")
        occupy(sched, "w1")
        waiting = [ticket(), ticket("w1", deadline=5.0), ticket()]
        for t in waiting:
            sched.submit(t, 0.0)
        assert sched.clear_queue() == waiting
        assert (sched.queued, sched.next_deadline()) == (0, None)
        assert sched.release("w1", 1.0) == []


class TestCancel:
    def test_a_cancelled_ticket_leaves_the_queue(self) -> None:
        sched = scheduler("w1")
        sched.submit(ticket(), 0.0)
        first, second = ticket(), ticket()
        sched.submit(first, 0.0)
        sched.submit(second, 0.0)
        assert sched.cancel(first) is True
        assert sched.queued == 1
        assert sched.release("w1", 1.0) == [Dispatch(second, "w1")]

    def test_cancelling_a_ticket_that_is_not_queued_returns_false(self) -> None:
        sched = scheduler("w1")
        running = ticket()
        sched.submit(running, 0.0)
        assert sched.cancel(running) is False
        assert sched.cancel(ticket()) is False
        assert sched.in_flight("w1") == 1

    def test_cancelling_twice_returns_false_the_second_time(self) -> None:
        sched = scheduler()
        t = ticket()
        sched.submit(t, 0.0)
        assert sched.cancel(t) is True
        assert sched.cancel(t) is False

    def test_a_cancelled_strict_waiter_no_longer_waits_for_its_worker(self) -> None:
        sched = scheduler("w1", affinity="strict_queue")
        occupy(sched, "w1")
        t = ticket("w1")
        sched.submit(t, 0.0)
        assert sched.cancel(t) is True
        assert sched.release("w1", 1.0) == []
        assert sched.remove_worker("w1") == []

    def test_a_cancelled_ticket_frees_its_place_in_a_full_queue(self) -> None:
        sched = scheduler("w1", max_queue=1)
        sched.submit(ticket(), 0.0)
        t = ticket()
        sched.submit(t, 0.0)
        sched.cancel(t)
        assert isinstance(sched.submit(ticket(), 0.0), Queued)

    def test_a_cancelled_ticket_no_longer_sets_the_next_deadline(self) -> None:
        sched = scheduler()
        early, late = ticket(deadline=1.0), ticket(deadline=2.0)
        sched.submit(early, 0.0)
        sched.submit(late, 0.0)
        sched.cancel(early)
        assert sched.next_deadline() == 2.0
        assert sched.expire(1.5) == []


class TestQueueDeadlines:
    def test_next_deadline_is_none_without_queued_deadlines(self) -> None:
        sched = scheduler()
        assert sched.next_deadline() is None
        sched.submit(ticket(), 0.0)
        assert sched.next_deadline() is None

    def test_next_deadline_is_the_earliest_among_queued_tickets(self) -> None:
        sched = scheduler()
        for deadline in (5.0, 2.0, None, 9.0):
            sched.submit(ticket(deadline=deadline), 0.0)
        assert sched.next_deadline() == 2.0

    def test_a_dispatched_ticket_no_longer_sets_the_next_deadline(self) -> None:
        sched = scheduler()
        t = ticket(deadline=3.0)
        sched.submit(t, 0.0)
        assert sched.add_worker("w1") == [Dispatch(t, "w1")]
        assert sched.next_deadline() is None
        assert sched.expire(10.0) == []

    def test_nothing_expires_before_its_deadline(self) -> None:
        sched = scheduler()
        sched.submit(ticket(deadline=5.0), 0.0)
        assert sched.expire(4.999) == []
        assert sched.queued == 1

    def test_tickets_expire_at_their_deadline_earliest_first(self) -> None:
        sched = scheduler()
        late, none, early, middle = (ticket(deadline=d) for d in (3.0, None, 1.0, 2.0))
        for t in (late, none, early, middle):
            sched.submit(t, 0.0)
        expired = sched.expire(2.0)
        assert [r.ticket for r in expired] == [early, middle]
        assert all(isinstance(r.error, QueueTimeoutError) for r in expired)
        assert sched.queued == 2
        assert sched.next_deadline() == 3.0

    def test_the_timeout_error_names_the_wait_and_the_queue_length(self) -> None:
        sched = scheduler()
        sched.submit(ticket(), 0.0)
        t = ticket(deadline=11.0, tool="slow")
        sched.submit(t, 1.0)
        sched.submit(ticket(), 2.0)
        (rejected,) = sched.expire(11.5)
        error = rejected.error
        assert isinstance(error, QueueTimeoutError)
        assert "waited 10.500s" in str(error)
        assert "3 requests queued" in str(error)
        assert "queue_timeout" in str(error)
        assert (error.details["waited"], error.details["queued"], error.details["tool"]) == (
            10.5,
            3,
            "slow",
        )

    def test_an_expired_ticket_is_forgotten(self) -> None:
        sched = scheduler()
        t = ticket(deadline=1.0)
        sched.submit(t, 0.0)
        sched.expire(1.0)
        assert sched.cancel(t) is False
        assert sched.add_worker("w1") == []

    def test_a_resubmitted_ticket_keeps_only_its_new_deadline(self) -> None:
        sched = scheduler()
        t = ticket(deadline=1.0)
        sched.submit(t, 0.0)
        sched.cancel(t)
        t.queue_deadline = 5.0
        sched.submit(t, 0.0)
        assert sched.next_deadline() == 5.0
        assert sched.expire(2.0) == []
        assert [r.ticket for r in sched.expire(5.0)] == [t]

    def test_many_short_lived_waiters_do_not_pile_up_deadline_entries(self) -> None:
        sched = scheduler()
        for _ in range(1000):
            t = ticket(deadline=100.0)
            sched.submit(t, 0.0)
            sched.cancel(t)
        assert len(sched._deadlines) < 100


class TestHintAffinity:
    def test_a_ticket_goes_to_its_preferred_worker_when_it_is_free(self) -> None:
        sched = scheduler("w1", "w2", "w3")
        assert dispatched_to(sched.submit(ticket("w3"), 0.0)) == "w3"

    def test_a_ticket_goes_to_another_worker_when_its_preferred_one_is_busy(self) -> None:
        sched = scheduler("w1", "w2")
        occupy(sched, "w2")
        assert dispatched_to(sched.submit(ticket("w2"), 0.0)) == "w1"

    def test_a_ticket_whose_preferred_worker_is_gone_runs_anywhere(self) -> None:
        sched = scheduler("w1")
        assert dispatched_to(sched.submit(ticket("gone"), 0.0)) == "w1"

    def test_a_ticket_waits_when_every_worker_is_busy(self) -> None:
        sched = scheduler("w1", "w2")
        occupy(sched, "w1", "w2")
        assert isinstance(sched.submit(ticket("w1"), 0.0), Queued)

    def test_a_queued_ticket_takes_whichever_worker_frees_first(self) -> None:
        sched = scheduler("w1", "w2")
        occupy(sched, "w1", "w2")
        t = ticket("w1")
        sched.submit(t, 0.0)
        assert sched.release("w2", 1.0) == [Dispatch(t, "w2")]

    def test_hint_tickets_are_served_in_arrival_order(self) -> None:
        sched = scheduler("w1", "w2")
        occupy(sched, "w1", "w2")
        first, second = ticket("w2"), ticket("w1")
        sched.submit(first, 0.0)
        sched.submit(second, 0.0)
        assert sched.release("w1", 1.0) == [Dispatch(first, "w1")]
        assert sched.release("w2", 1.0) == [Dispatch(second, "w2")]

    def test_a_draining_preferred_worker_is_passed_over(self) -> None:
        sched = scheduler("w1", "w2")
        sched.set_accepting("w1", False)
        assert dispatched_to(sched.submit(ticket("w1"), 0.0)) == "w2"


class TestStrictQueueAffinity:
    def test_a_ticket_goes_to_its_worker_when_it_is_free(self) -> None:
        sched = scheduler("w1", "w2", affinity="strict_queue")
        assert dispatched_to(sched.submit(ticket("w2"), 0.0)) == "w2"

    def test_a_ticket_waits_for_its_busy_worker_even_when_others_are_idle(self) -> None:
        sched = scheduler("w1", "w2", affinity="strict_queue")
        occupy(sched, "w1")
        t = ticket("w1")
        assert sched.submit(t, 0.0) == Queued(t)
        assert sched.is_idle("w2")

    def test_a_waiting_ticket_runs_when_its_worker_frees(self) -> None:
        sched = scheduler("w1", "w2", affinity="strict_queue")
        occupy(sched, "w1", "w2")
        t = ticket("w1")
        sched.submit(t, 0.0)
        assert sched.release("w2", 1.0) == []
        assert sched.release("w1", 2.0) == [Dispatch(t, "w1")]

    def test_tickets_behind_a_strict_waiter_still_run_on_other_workers(self) -> None:
        sched = scheduler("w1", "w2", affinity="strict_queue")
        occupy(sched, "w1", "w2")
        pinned, free, pinned_elsewhere = ticket("w1"), ticket(), ticket("w2")
        for t in (pinned, free, pinned_elsewhere):
            sched.submit(t, 0.0)
        assert sched.release("w2", 1.0) == [Dispatch(free, "w2")]
        assert sched.queued == 2
        assert sched.release("w2", 2.0) == [Dispatch(pinned_elsewhere, "w2")]
        assert sched.release("w1", 3.0) == [Dispatch(pinned, "w1")]

    def test_a_new_ticket_runs_on_an_idle_worker_while_a_strict_waiter_waits(self) -> None:
        sched = scheduler("w1", "w2", affinity="strict_queue")
        occupy(sched, "w1")
        sched.submit(ticket("w1"), 0.0)
        assert dispatched_to(sched.submit(ticket(), 0.0)) == "w2"

    def test_the_oldest_ticket_that_may_run_there_gets_the_freed_slot(self) -> None:
        sched = scheduler("w1", affinity="strict_queue")
        occupy(sched, "w1")
        free, pinned = ticket(), ticket("w1")
        sched.submit(free, 0.0)
        sched.submit(pinned, 0.0)
        assert sched.release("w1", 1.0) == [Dispatch(free, "w1")]
        assert sched.release("w1", 2.0) == [Dispatch(pinned, "w1")]

    def test_an_older_strict_waiter_goes_before_a_newer_free_ticket(self) -> None:
        sched = scheduler("w1", affinity="strict_queue")
        occupy(sched, "w1")
        pinned, free = ticket("w1"), ticket()
        sched.submit(pinned, 0.0)
        sched.submit(free, 0.0)
        assert sched.release("w1", 1.0) == [Dispatch(pinned, "w1")]

    def test_a_ticket_for_a_worker_that_is_gone_is_rejected(self) -> None:
        sched = scheduler("w1", affinity="strict_queue")
        decision = sched.submit(ticket("gone", session="s1"), 0.0)
        assert isinstance(decision, Rejected)
        assert isinstance(decision.error, SessionWorkerUnavailableError)
        assert decision.error.details["worker_id"] == "gone"
        assert "session 's1'" in str(decision.error)

    def test_removing_a_worker_rejects_the_tickets_waiting_for_it(self) -> None:
        sched = scheduler("w1", "w2", affinity="strict_queue")
        occupy(sched, "w1", "w2")
        for_w1 = [ticket("w1"), ticket("w1")]
        others = [ticket("w2"), ticket()]
        for t in (for_w1[0], others[0], for_w1[1], others[1]):
            sched.submit(t, 0.0)
        rejected = sched.remove_worker("w1")
        assert [r.ticket for r in rejected] == for_w1
        assert all(isinstance(r.error, SessionWorkerUnavailableError) for r in rejected)
        assert sched.queued == 2
        assert sched.release("w2", 1.0) == [Dispatch(others[0], "w2")]

    def test_waiters_for_a_draining_worker_keep_waiting_until_it_accepts_again(self) -> None:
        sched = scheduler("w1", affinity="strict_queue")
        sched.set_accepting("w1", False)
        t = ticket("w1")
        assert isinstance(sched.submit(t, 0.0), Queued)
        assert sched.set_accepting("w1", True) == [Dispatch(t, "w1")]

    def test_a_strict_waiter_counts_against_max_queue(self) -> None:
        sched = scheduler("w1", max_queue=1, affinity="strict_queue")
        occupy(sched, "w1")
        sched.submit(ticket("w1"), 0.0)
        decision = sched.submit(ticket("w1"), 0.0)
        assert isinstance(decision, Rejected)
        assert isinstance(decision.error, PoolSaturatedError)

    def test_a_ticket_without_a_preferred_worker_runs_anywhere(self) -> None:
        sched = scheduler("w1", "w2", affinity="strict_queue")
        occupy(sched, "w1")
        assert dispatched_to(sched.submit(ticket(), 0.0)) == "w2"


class TestStrictFailFastAffinity:
    def test_a_ticket_goes_to_its_worker_when_it_is_free(self) -> None:
        sched = scheduler("w1", "w2", affinity="strict_fail_fast")
        assert dispatched_to(sched.submit(ticket("w2"), 0.0)) == "w2"

    def test_a_ticket_for_a_busy_worker_is_rejected_at_once(self) -> None:
        sched = scheduler("w1", "w2", affinity="strict_fail_fast")
        occupy(sched, "w1")
        decision = sched.submit(ticket("w1", session="s1"), 0.0)
        assert isinstance(decision, Rejected)
        assert isinstance(decision.error, WorkerBusyError)
        assert "strict_fail_fast" in str(decision.error)
        assert decision.error.details["worker_id"] == "w1"
        assert sched.queued == 0

    def test_a_ticket_for_a_worker_that_is_gone_is_rejected_as_unavailable(self) -> None:
        sched = scheduler("w1", affinity="strict_fail_fast")
        decision = sched.submit(ticket("gone"), 0.0)
        assert isinstance(decision, Rejected)
        assert isinstance(decision.error, SessionWorkerUnavailableError)

    def test_a_ticket_for_a_draining_worker_is_rejected_as_unavailable(self) -> None:
        sched = scheduler("w1", "w2", affinity="strict_fail_fast")
        sched.set_accepting("w1", False)
        decision = sched.submit(ticket("w1"), 0.0)
        assert isinstance(decision, Rejected)
        assert isinstance(decision.error, SessionWorkerUnavailableError)
        assert decision.error.details["draining"] is True

    def test_a_busy_worker_with_a_spare_slot_still_takes_the_ticket(self) -> None:
        sched = scheduler("w1", capacity=2, affinity="strict_fail_fast")
        sched.submit(ticket(), 0.0)
        assert dispatched_to(sched.submit(ticket("w1"), 0.0)) == "w1"

    def test_a_ticket_without_a_preferred_worker_queues_as_usual(self) -> None:
        sched = scheduler("w1", affinity="strict_fail_fast")
        occupy(sched, "w1")
        assert isinstance(sched.submit(ticket(), 0.0), Queued)


class TestWorkers:
    def test_an_added_worker_takes_queued_tickets_at_once(self) -> None:
        sched = scheduler()
        t = ticket()
        sched.submit(t, 0.0)
        assert sched.add_worker("w1") == [Dispatch(t, "w1")]
        assert sched.queued == 0

    def test_an_added_worker_with_capacity_takes_that_many_queued_tickets(self) -> None:
        sched = scheduler()
        waiting = [ticket() for _ in range(4)]
        for t in waiting:
            sched.submit(t, 0.0)
        assert [d.ticket for d in sched.add_worker("w1", capacity=3)] == waiting[:3]
        assert sched.queued == 1

    def test_an_added_worker_takes_the_strict_waiters_for_it(self) -> None:
        sched = scheduler("w1", affinity="strict_queue")
        occupy(sched, "w1")
        sched.submit(ticket("w1"), 0.0)
        free = ticket()
        sched.submit(free, 0.0)
        assert sched.add_worker("w2") == [Dispatch(free, "w2")]

    def test_adding_a_worker_twice_is_refused(self) -> None:
        sched = scheduler("w1")
        with pytest.raises(ValueError, match="already"):
            sched.add_worker("w1")

    def test_a_capacity_below_one_is_refused(self) -> None:
        with pytest.raises(ValueError, match="capacity"):
            scheduler().add_worker("w1", capacity=0)

    def test_a_removed_worker_is_forgotten_with_its_in_flight_requests(self) -> None:
        sched = scheduler("w1", "w2")
        occupy(sched, "w1")
        assert sched.remove_worker("w1") == []
        assert not sched.has_worker("w1")
        assert sched.worker_ids == ["w2"]
        assert (sched.busy_workers, sched.capacity) == (0, 1)

    def test_removing_an_unknown_worker_does_nothing(self) -> None:
        assert scheduler("w1").remove_worker("nope") == []

    def test_a_late_release_of_a_removed_worker_does_nothing(self) -> None:
        sched = scheduler("w1")
        occupy(sched, "w1")
        sched.remove_worker("w1")
        assert sched.release("w1", 1.0) == []

    def test_releasing_a_worker_that_runs_nothing_is_a_bug(self) -> None:
        sched = scheduler("w1")
        with pytest.raises(ValueError, match="runs no request"):
            sched.release("w1", 0.0)

    def test_a_draining_worker_takes_no_new_work(self) -> None:
        sched = scheduler("w1", "w2")
        assert sched.set_accepting("w1", False) == []
        assert dispatched_to(sched.submit(ticket(), 0.0)) == "w2"
        assert isinstance(sched.submit(ticket(), 0.0), Queued)

    def test_a_draining_worker_finishes_its_requests_without_taking_queued_ones(self) -> None:
        sched = scheduler("w1")
        occupy(sched, "w1")
        sched.submit(ticket(), 0.0)
        sched.set_accepting("w1", False)
        assert sched.release("w1", 1.0) == []
        assert sched.is_idle("w1")
        assert sched.queued == 1

    def test_a_worker_accepting_again_takes_queued_tickets(self) -> None:
        sched = scheduler("w1")
        sched.set_accepting("w1", False)
        t = ticket()
        sched.submit(t, 0.0)
        assert sched.set_accepting("w1", True) == [Dispatch(t, "w1")]

    def test_setting_accepting_on_an_unknown_worker_is_refused(self) -> None:
        with pytest.raises(ValueError, match="unknown worker"):
            scheduler().set_accepting("nope", False)


class TestIntrospection:
    def test_counts_reflect_busy_idle_queued_and_capacity(self) -> None:
        sched = scheduler("w1", "w2", "w3", capacity=2)
        sched.set_accepting("w3", False)
        sched.submit(ticket("w1"), 0.0)
        assert sched.in_flight("w1") == 1
        assert not sched.is_idle("w1")
        assert sched.idle_workers() == ["w2", "w3"]
        assert (sched.busy_workers, sched.idle_count, sched.capacity) == (1, 2, 4)
        assert (sched.is_accepting("w1"), sched.is_accepting("w3")) == (True, False)

    def test_worker_ids_keep_the_order_workers_were_added(self) -> None:
        assert scheduler("b", "a", "c").worker_ids == ["b", "a", "c"]

    def test_queued_tickets_lists_waiters_oldest_first(self) -> None:
        sched = scheduler("w1", affinity="strict_queue")
        occupy(sched, "w1")
        waiting = [ticket("w1"), ticket(), ticket("w1")]
        for t in waiting:
            sched.submit(t, 0.0)
        assert sched.queued_tickets() == waiting

    def test_asking_about_an_unknown_worker_is_refused(self) -> None:
        sched = scheduler()
        with pytest.raises(ValueError, match="unknown worker 'x'"):
            sched.in_flight("x")
        with pytest.raises(ValueError, match="unknown worker"):
            sched.is_idle("x")
        assert not sched.has_worker("x")

    def test_repr_tells_the_state_at_a_glance(self) -> None:
        sched = scheduler("w1", "w2")
        occupy(sched, "w1")
        sched.set_accepting("w2", False)
        sched.submit(ticket(), 0.0)
        assert repr(sched) == "<Scheduler 'p' [busy 1, idle 1 | queued 1]>"

    def test_tickets_compare_by_identity(self) -> None:
        a = Ticket(id=1, tool="t")
        b = Ticket(id=1, tool="t")
        assert a != b
        assert len({a, b}) == 2


class TestInvariants:
    @pytest.mark.parametrize("affinity", ["hint", "strict_queue", "strict_fail_fast"])
    def test_random_operations_never_leave_a_runnable_ticket_queued(
        self, affinity: AffinityMode
    ) -> None:
        rng = random.Random(f"scheduler-{affinity}")
        sched = Scheduler(name="p", max_queue=8, affinity=affinity)
        running: list[tuple[Ticket, str]] = []
        outcomes: set[str] = set()
        names = iter(f"w{i}" for i in range(1000))
        now = 0.0

        def absorb(decisions: list[Dispatch] | list[Rejected]) -> None:
            for d in decisions:
                if isinstance(d, Dispatch):
                    running.append((d.ticket, d.worker_id))
                    outcomes.add("dispatched-later")

        for _ in range(3):
            absorb(sched.add_worker(next(names), rng.choice([1, 2])))
        for _ in range(3000):
            now += rng.random()
            op = rng.random()
            workers = sched.worker_ids
            if op < 0.45:
                preferred = rng.choice([*workers, "gone", None, None]) if workers else None
                deadline = now + rng.uniform(0, 5) if rng.random() < 0.3 else None
                decision = sched.submit(ticket(preferred, deadline=deadline), now)
                outcomes.add(type(decision).__name__)
                if isinstance(decision, Dispatch):
                    running.append((decision.ticket, decision.worker_id))
            elif op < 0.8 and running:
                _, worker_id = running.pop(rng.randrange(len(running)))
                absorb(sched.release(worker_id, now))
            elif op < 0.85 and sched.queued:
                assert sched.cancel(rng.choice(sched.queued_tickets()))
            elif op < 0.9:
                for r in sched.expire(now):
                    assert r.ticket.queue_deadline is not None
                    assert r.ticket.queue_deadline <= now
            elif op < 0.93 and workers:
                gone = rng.choice(workers)
                sched.remove_worker(gone)
                running = [(t, w) for t, w in running if w != gone]
            elif op < 0.96:
                absorb(sched.add_worker(next(names), rng.choice([1, 2, 3])))
            elif workers:
                absorb(sched.set_accepting(rng.choice(workers), rng.random() < 0.6))
            self._check(sched, running)
        assert {"Dispatch", "Queued", "Rejected", "dispatched-later"} <= outcomes

    @staticmethod
    def _check(sched: Scheduler, running: list[tuple[Ticket, str]]) -> None:
        per_worker = Counter(w for _, w in running)
        available = []
        for worker_id in sched.worker_ids:
            worker = sched._workers[worker_id]
            assert sched.in_flight(worker_id) == per_worker[worker_id]
            assert worker.in_flight <= worker.capacity
            if worker.accepting and worker.in_flight < worker.capacity:
                available.append(worker_id)
        assert sched.queued <= sched.max_queue
        for t in sched.queued_tickets():
            if sched.affinity == "strict_queue" and t.preferred_worker is not None:
                assert t.preferred_worker not in available
            else:
                assert not available
        deadlines = [t.queue_deadline for t in sched.queued_tickets() if t.queue_deadline]
        assert sched.next_deadline() == (min(deadlines) if deadlines else None)
