"""Leak checks: each reports what was left running, names it, and cleans up when asked."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from supertester import (
    FdLeakCheck,
    Leak,
    LeakError,
    ProcessLeakCheck,
    TaskLeakCheck,
    ThreadLeakCheck,
    is_alive,
    wait_for_exit,
)

if TYPE_CHECKING:
    from pathlib import Path

Spawn = Callable[..., subprocess.Popen[bytes]]


class TestProcessLeakCheck:
    def test_a_child_left_running_is_reported_with_pid_and_command_then_killed(
        self, child_process: Spawn
    ) -> None:
        check = ProcessLeakCheck(grace=0.05)
        check.snapshot()
        proc = child_process()
        leaks = check.check()
        assert len(leaks) == 1
        assert leaks[0].kind == "process"
        assert f"pid {proc.pid}" in leaks[0].description
        assert "sys.stdin.read()" in leaks[0].description
        assert "killed by the leak check" in leaks[0].description
        assert proc.wait() == -9

    async def test_the_async_check_reports_without_killing_when_told(
        self, child_process: Spawn
    ) -> None:
        check = ProcessLeakCheck(grace=0.05, kill_leaked=False)
        check.snapshot()
        proc = child_process()
        leaks = await check.check_async()
        assert [leak.kind for leak in leaks] == ["process"]
        assert "killed" not in leaks[0].description
        assert is_alive(proc.pid)

    async def test_a_child_that_is_exiting_gets_its_grace(self, child_process: Spawn) -> None:
        check = ProcessLeakCheck(grace=5)
        check.snapshot()
        proc = child_process()
        assert proc.stdin is not None
        proc.stdin.close()  # it exits on EOF; the check waits for that, event-driven
        assert await check.check_async() == []
        assert proc.wait() == 0

    def test_a_child_started_before_the_snapshot_is_not_a_leak(self, child_process: Spawn) -> None:
        child_process()
        with ProcessLeakCheck(grace=0.05):
            pass

    def test_as_a_context_manager_it_raises_leak_error(self, child_process: Spawn) -> None:
        def leak_a_process() -> None:
            with ProcessLeakCheck(grace=0.01):
                child_process()

        with pytest.raises(LeakError, match=r"expected no leaked resources in ProcessLeakCheck"):
            leak_a_process()

    async def test_an_orphan_in_a_watched_process_group_is_reported(self) -> None:
        # The child starts a grandchild in its own session and exits: the grandchild is
        # re-parented away from us, so only its process group can find it.
        script = (
            "import subprocess, sys\n"
            "p = subprocess.Popen([sys.executable, '-I', '-S', '-c', 'import signal; signal.pause()'],"
            " start_new_session=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,"
            " stderr=subprocess.DEVNULL)\n"
            "print(p.pid, flush=True)\n"
        )
        check = ProcessLeakCheck(grace=0.05)
        check.snapshot()
        out = subprocess.run(
            [sys.executable, "-I", "-S", "-c", script], capture_output=True, check=True, text=True
        )
        orphan = int(out.stdout)
        try:
            check.watch_group(orphan)
            leaks = await check.check_async()
            assert [f"pid {orphan}" in leak.description for leak in leaks] == [True]
            await wait_for_exit(orphan, timeout=5)
        finally:
            if is_alive(orphan):
                os.kill(orphan, 9)

    def test_check_before_snapshot_is_a_usage_error(self) -> None:
        with pytest.raises(RuntimeError, match="before snapshot"):
            ProcessLeakCheck().check()


class TestTaskLeakCheck:
    async def test_a_pending_task_is_reported_by_name_and_cancelled(self) -> None:
        check = TaskLeakCheck(grace=0.01)
        check.snapshot()
        forever = asyncio.Event()
        task = asyncio.create_task(forever.wait(), name="forgotten-heartbeat")
        leaks = await check.check_async()
        assert len(leaks) == 1
        assert "task 'forgotten-heartbeat' running Event.wait()" in leaks[0].description
        assert "suspended at" in leaks[0].description
        assert task.cancelled()

    async def test_a_task_that_finishes_within_the_grace_is_not_a_leak(self) -> None:
        done = asyncio.Event()
        async with TaskLeakCheck(grace=5):
            task = asyncio.create_task(done.wait())
            asyncio.get_running_loop().call_soon(done.set)
        assert task.done()

    async def test_tasks_that_existed_before_are_ignored(self) -> None:
        forever = asyncio.Event()
        older = asyncio.create_task(forever.wait())
        async with TaskLeakCheck(grace=0.01):
            pass
        older.cancel()

    async def test_the_sync_check_reports_without_a_grace(self) -> None:
        check = TaskLeakCheck()
        check.snapshot()
        task = asyncio.create_task(asyncio.Event().wait())
        assert [leak.kind for leak in check.check()] == ["task"]
        with pytest.raises(asyncio.CancelledError):
            await task

    def test_snapshot_needs_a_running_loop(self) -> None:
        with pytest.raises(RuntimeError):
            TaskLeakCheck().snapshot()


class TestThreadLeakCheck:
    def test_a_live_thread_is_reported_by_name_and_place(self) -> None:
        release = threading.Event()
        check = ThreadLeakCheck(grace=0.01)
        check.snapshot()
        thread = threading.Thread(target=release.wait, name="stuck-reader")
        thread.start()
        try:
            leaks = check.check()
            assert len(leaks) == 1
            assert "thread 'stuck-reader' (daemon=False), at" in leaks[0].description
        finally:
            release.set()
            thread.join()

    async def test_a_thread_that_ends_within_the_grace_is_not_a_leak(self) -> None:
        release = threading.Event()
        async with ThreadLeakCheck(grace=5):
            thread = threading.Thread(target=release.wait, name="short-lived")
            thread.start()
            release.set()

    def test_allowed_prefixes_are_ignored(self) -> None:
        release = threading.Event()
        with ThreadLeakCheck(grace=0.01, allow=("grpc-poller",)):
            thread = threading.Thread(target=release.wait, name="grpc-poller-1")
            thread.start()
        release.set()
        thread.join()


class TestFdLeakCheck:
    def test_an_open_file_is_reported_with_its_path(self, tmp_path: Path) -> None:
        check = FdLeakCheck()
        check.snapshot()
        handle = open(tmp_path / "left-open.txt", "w")  # noqa: SIM115 - the leak under test
        try:
            leaks = check.check()
            assert any(str(tmp_path / "left-open.txt") in leak.description for leak in leaks)
        finally:
            handle.close()

    def test_a_closed_file_is_not_a_leak(self, tmp_path: Path) -> None:
        with FdLeakCheck(), open(tmp_path / "closed.txt", "w") as handle:
            handle.write("x")

    def test_tolerance_allows_a_few(self, tmp_path: Path) -> None:
        check = FdLeakCheck(tolerance=1)
        check.snapshot()
        with open(tmp_path / "one.txt", "w"):
            assert check.check() == []


class TestLeakError:
    def test_names_each_leak_and_what_to_do(self) -> None:
        error = LeakError([Leak("task", "task 'a'"), Leak("thread", "thread 'b'")], context="t1")
        text = str(error)
        assert "expected no leaked resources in t1, found 2:" in text
        assert "  - task: task 'a'" in text
        assert "  - thread: thread 'b'" in text
        assert "before it ends" in text

    def test_a_failing_block_keeps_its_error_and_gets_the_leaks_as_a_note(self) -> None:
        release = threading.Event()
        thread = threading.Thread(target=release.wait, name="noted")

        def fail_and_leak() -> None:
            with ThreadLeakCheck(grace=0.01):
                thread.start()
                raise KeyError("original")

        with pytest.raises(KeyError) as info:
            fail_and_leak()
        release.set()
        thread.join()
        assert any("thread 'noted'" in note for note in info.value.__notes__)
