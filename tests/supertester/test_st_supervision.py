"""Supervision helpers, against a toy supervisor of real ``python -c`` processes."""

from __future__ import annotations

import os
import signal
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import pytest

from supertester import (
    ChildInfo,
    Mailbox,
    RestartReport,
    SupertesterTimeout,
    Supervised,
    assert_all_children_alive,
    assert_child_count,
    assert_process_restarted,
    check_restart_strategy,
    wait_for_children,
)

MakeSupervisor = Callable[..., Awaitable[Any]]


class StaticSupervisor:
    """A supervisor that reports a fixed list and never publishes events."""

    def __init__(self, children: Sequence[ChildInfo]) -> None:
        self._children = list(children)

    def children(self) -> Sequence[ChildInfo]:
        return self._children

    def subscribe_events(self, callback: Callable[[object], None]) -> Callable[[], None]:
        return lambda: None


class TestProtocol:
    async def test_the_toy_and_a_static_list_are_supervised(
        self, toy_supervisor: MakeSupervisor
    ) -> None:
        assert isinstance(await toy_supervisor(1), Supervised)
        assert isinstance(StaticSupervisor([]), Supervised)
        assert not isinstance(object(), Supervised)


class TestChildCount:
    async def test_passes_on_the_right_count(self, toy_supervisor: MakeSupervisor) -> None:
        sup = await toy_supervisor(3)
        assert_child_count(sup, 3)
        assert_child_count(sup, 3, alive_only=True)

    def test_fails_listing_the_children(self) -> None:
        sup = StaticSupervisor([ChildInfo("a", None, False)])
        with pytest.raises(
            AssertionError, match=r"expected 2 children of .*, saw 1:\n  a: pid None"
        ):
            assert_child_count(sup, 2)
        with pytest.raises(AssertionError, match="expected 1 alive children"):
            assert_child_count(sup, 1, alive_only=True)


class TestAllChildrenAlive:
    async def test_passes_when_every_process_runs(self, toy_supervisor: MakeSupervisor) -> None:
        assert_all_children_alive(await toy_supervisor(2))

    def test_fails_naming_children_that_are_down_or_whose_process_is_gone(self) -> None:
        gone_pid = 2**22 + 12345  # above the default pid_max: never a live process
        sup = StaticSupervisor(
            [
                ChildInfo("up", os.getpid(), True),
                ChildInfo("down", None, False),
                ChildInfo("ghost", gone_pid, True),
                ChildInfo("nopid", None, True),
            ]
        )
        with pytest.raises(AssertionError) as info:
            assert_all_children_alive(sup)
        message = str(info.value)
        assert "'up'" not in message
        assert "child 'down' (pid None) is not alive for its supervisor" in message
        assert (
            f"child 'ghost' is alive for its supervisor but its process is not: pid {gone_pid}"
            in message
        )
        assert "child 'nopid' is alive for its supervisor but has no pid" in message


class TestProcessRestarted:
    async def test_a_killed_child_comes_back_with_a_new_pid(
        self, toy_supervisor: MakeSupervisor
    ) -> None:
        sup = await toy_supervisor(2)
        old = sup.children()[1]
        os.kill(old.pid, signal.SIGKILL)
        child = await assert_process_restarted(sup, old.id, old.pid, timeout=5)
        assert child.id == old.id
        assert child.pid != old.pid
        assert_all_children_alive(sup)

    async def test_fails_naming_the_old_pid_and_the_events_when_nobody_restarts(
        self, toy_supervisor: MakeSupervisor
    ) -> None:
        sup = await toy_supervisor(1, restart=False)
        old = sup.children()[0]
        events: Mailbox[Any] = Mailbox()
        unsubscribe = sup.subscribe_events(events.put)
        os.kill(old.pid, signal.SIGKILL)
        await events.assert_receive(lambda e: e.kind == "exited", timeout=5)
        unsubscribe()
        with pytest.raises(SupertesterTimeout) as info:
            await assert_process_restarted(sup, old.id, old.pid, timeout=0.01)
        message = str(info.value)
        assert f"child-0' to be restarted with a new live pid (old pid {old.pid})" in message
        assert f"child-0: pid {old.pid}, not alive (process gone)" in message
        assert "events seen while waiting (0):" in message


class TestWaitForChildren:
    async def test_returns_once_the_condition_holds(self, toy_supervisor: MakeSupervisor) -> None:
        sup = await toy_supervisor(2)
        children = await wait_for_children(sup, lambda cs: len(cs) == 2, timeout=1)
        assert [c.id for c in children] == ["child-0", "child-1"]

    async def test_times_out_naming_the_state(self) -> None:
        sup = StaticSupervisor([])
        with pytest.raises(SupertesterTimeout, match=r"expected three children within 0\.01s"):
            await wait_for_children(
                sup, lambda cs: len(cs) == 3, timeout=0.01, what="three children"
            )


class TestRestartStrategy:
    @pytest.mark.parametrize(
        ("strategy", "restarted"),
        [
            ("one_for_one", ("child-1",)),
            ("rest_for_one", ("child-1", "child-2")),
            ("one_for_all", ("child-0", "child-1", "child-2")),
        ],
    )
    async def test_reports_which_children_were_restarted(
        self, toy_supervisor: MakeSupervisor, strategy: str, restarted: tuple[str, ...]
    ) -> None:
        sup = await toy_supervisor(3, strategy=strategy)
        report = await check_restart_strategy(sup, ["child-1"], timeout=5)
        assert report.killed == ("child-1",)
        assert report.restarted == restarted
        assert set(report.kept) == {"child-0", "child-1", "child-2"} - set(restarted)
        assert report.inferred_strategy == strategy
        report.assert_strategy(strategy)
        assert all(report.after[cid] != report.before[cid] for cid in restarted)
        assert report.events

    def test_assert_strategy_explains_a_mismatch(self) -> None:
        report = RestartReport(
            order=("a", "b"),
            killed=("a",),
            restarted=("a", "b"),
            kept=(),
            before={"a": 1, "b": 2},
            after={"a": 3, "b": 4},
        )
        with pytest.raises(
            AssertionError, match=r"expected a one_for_one .* looks like one_for_all"
        ):
            report.assert_strategy("one_for_one")

    async def test_an_unknown_child_is_a_usage_error(self, toy_supervisor: MakeSupervisor) -> None:
        sup = await toy_supervisor(1)
        with pytest.raises(ValueError, match="cannot kill child 'nope'"):
            await check_restart_strategy(sup, ["nope"])
