"""Isolation: unique names, private short directories, and leak proof at exit."""

from __future__ import annotations

import asyncio
import stat
import threading
from typing import TYPE_CHECKING

import pytest

from supertester import Isolation, LeakError, isolated, unique_name

if TYPE_CHECKING:
    import subprocess
    from collections.abc import Callable


class TestUniqueName:
    def test_names_are_unique_and_keep_the_prefix(self) -> None:
        names = {unique_name("pool") for _ in range(100)}
        assert len(names) == 100
        assert all(name.startswith("pool-") for name in names)
        assert all(name.replace("-", "").isalnum() for name in names)


class TestIsolated:
    async def test_gives_a_private_short_directory_removed_at_exit(self) -> None:
        async with isolated("pool") as iso:
            assert iso.name.startswith("pool-")
            assert iso.path.is_dir()
            assert stat.S_IMODE(iso.path.stat().st_mode) == 0o700
            assert len(str(iso.path / "worker-123.sock")) < 100  # fits a Unix socket path
            path = iso.path
        assert not path.exists()

    async def test_two_blocks_never_share_a_name_or_a_directory(self) -> None:
        async with isolated() as one, isolated() as two:
            assert one.name != two.name
            assert one.path != two.path
            assert one.unique("registry") != two.unique("registry")

    async def test_a_leaked_task_fails_the_block_and_is_cancelled(self) -> None:
        forever = asyncio.Event()
        tasks: list[asyncio.Task[object]] = []

        async def leak_a_task() -> None:
            async with isolated(grace=0.01):
                tasks.append(asyncio.create_task(forever.wait(), name="orphan-task"))

        with pytest.raises(LeakError, match=r"task 'orphan-task'") as info:
            await leak_a_task()
        assert "isolated block" in str(info.value)
        assert tasks[0].cancelled()

    def test_the_sync_form_reports_a_leaked_thread(self) -> None:
        release = threading.Event()
        thread = threading.Thread(target=release.wait, name="left-behind")

        def leak_a_thread() -> None:
            with isolated(grace=0.01):
                thread.start()

        with pytest.raises(LeakError, match="thread 'left-behind'"):
            leak_a_thread()
        release.set()
        thread.join()

    async def test_a_leaked_child_process_fails_the_block_and_is_killed(
        self, child_process: Callable[..., subprocess.Popen[bytes]]
    ) -> None:
        procs: list[subprocess.Popen[bytes]] = []

        async def leak_a_process() -> None:
            async with isolated(grace=0.01):
                procs.append(child_process())

        with pytest.raises(LeakError, match=r"process: pid \d+") as info:
            await leak_a_process()
        assert "killed by the leak check" in str(info.value)
        assert procs[0].wait() == -9

    async def test_an_error_in_the_block_wins_and_carries_the_leaks_as_a_note(self) -> None:
        forever = asyncio.Event()
        tasks: list[asyncio.Task[object]] = []

        async def fail_and_leak() -> None:
            async with isolated(grace=0.01):
                tasks.append(asyncio.create_task(forever.wait(), name="noted-task"))
                raise ValueError("boom")

        with pytest.raises(ValueError, match="boom") as info:
            await fail_and_leak()
        assert any("noted-task" in note for note in info.value.__notes__)
        assert tasks[0].cancelled()

    def test_path_outside_the_block_is_a_usage_error(self) -> None:
        with pytest.raises(RuntimeError, match="inside"):
            _ = isolated().path


class TestIsolationFixture:
    async def test_gives_a_name_from_the_test_and_a_directory(self, isolation: Isolation) -> None:
        assert isolation.name.startswith("test-gives-a-name")
        assert isolation.path.is_dir()

    def test_a_leak_fails_the_test_at_teardown(
        self, run_inner: Callable[[str], pytest.RunResult]
    ) -> None:
        result = run_inner(
            """
            import asyncio

            async def test_leaks(isolation):
                asyncio.create_task(asyncio.Event().wait(), name="leaky-task")

            async def test_clean(isolation):
                pass
            """
        )
        result.assert_outcomes(passed=2, errors=1)
        result.stdout.fnmatch_lines(["*LeakError*", "*task 'leaky-task' running Event.wait()*"])
