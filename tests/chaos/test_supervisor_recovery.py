"""The supervisor restarts exactly what died (one for one), and gives up loudly when it must."""

from __future__ import annotations

from snakepit.events import PoolDegraded
from snakepit.testing import isolated_pool, pool_mailbox, supervised
from supertester import (
    assert_all_children_alive,
    assert_child_count,
    assert_process_restarted,
    check_restart_strategy,
    kill_children,
)

BOUND = 30.0


class TestSupervisorRecovery:
    async def test_one_for_one_restarts_only_the_killed_workers(self) -> None:
        """Killing two of four workers restarts those two (new pids); the others keep theirs."""
        async with isolated_pool(size=4) as pool:
            sup = supervised(pool)
            assert_child_count(sup, 4)
            assert_all_children_alive(sup)
            report = await check_restart_strategy(sup, kill=["w1", "w3"], timeout=BOUND)
            assert set(report.restarted) == {"w1", "w3"}
            assert set(report.kept) == {"w2", "w4"}
            report.assert_strategy("one_for_one")
            assert await pool.execute("ping") == {"status": "pong"}

    async def test_killed_worker_comes_back_with_a_new_pid(self) -> None:
        """A SIGKILLed worker is seen restarted: a new live pid and a restart event."""
        async with isolated_pool(size=2) as pool:
            sup = supervised(pool)
            report = kill_children(sup, count=1, seed=5)
            (victim,) = report.killed
            await assert_process_restarted(sup, victim.id, victim.pid, timeout=BOUND)
            assert_all_children_alive(sup)

    async def test_crash_loop_degrades_the_pool_and_recover_refills_it(self) -> None:
        """Crashes beyond the restart intensity stop restarts (degraded); recover() refills."""
        async with isolated_pool(size=2, max_restarts=0) as pool:
            box = pool_mailbox(pool)
            sup = supervised(pool)
            kill_children(sup, count=1, seed=1)
            await box.assert_receive(PoolDegraded, BOUND)
            assert pool.stats().degraded
            assert pool.stats().live_workers == 1
            await pool.recover()
            assert_all_children_alive(sup)
            assert not pool.stats().degraded
