"""Process checks: alive means running and not a zombie; waiting for exit is an event."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable

import pytest

from supertester import SupertesterTimeout, assert_alive, describe_process, is_alive, wait_for_exit

Spawn = Callable[..., subprocess.Popen[bytes]]
NEVER_A_PID = 2**22 + 4321  # above the default pid_max


class TestAlive:
    def test_this_process_is_alive_and_described(self) -> None:
        assert is_alive(os.getpid())
        assert_alive(os.getpid())
        assert describe_process(os.getpid()).startswith(f"pid {os.getpid()} [")

    def test_a_missing_pid_is_not_alive_and_the_message_says_so(self) -> None:
        assert not is_alive(NEVER_A_PID)
        with pytest.raises(
            AssertionError, match=rf"expected worker to be alive, but pid {NEVER_A_PID} \[gone\]"
        ):
            assert_alive(NEVER_A_PID, what="worker")

    async def test_an_exited_unreaped_child_is_not_alive(self, child_process: Spawn) -> None:
        proc = child_process()
        assert proc.stdin is not None
        proc.stdin.close()
        await wait_for_exit(proc.pid, timeout=5)
        assert not is_alive(proc.pid)  # a zombie until reaped
        assert "zombie" in describe_process(proc.pid)
        assert proc.wait() == 0  # wait_for_exit did not steal the exit status


class TestWaitForExit:
    async def test_returns_at_once_for_processes_already_gone(self) -> None:
        await wait_for_exit([NEVER_A_PID], timeout=0.01)

    async def test_times_out_describing_the_survivors(self, child_process: Spawn) -> None:
        proc = child_process()
        with pytest.raises(
            SupertesterTimeout,
            match=rf"expected the worker to exit within 0.01s, still alive: pid {proc.pid}",
        ):
            await wait_for_exit(proc.pid, timeout=0.01, what="the worker")
