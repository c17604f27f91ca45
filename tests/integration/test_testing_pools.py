"""snakepit.testing._pools: the check that a pool left no worker process behind."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from snakepit.testing import assert_no_worker_left


def _child(code: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-I", "-S", "-c", code], stdin=subprocess.PIPE)


class TestAssertNoWorkerLeft:
    def test_a_survivor_is_named_and_killed(self) -> None:
        with _child("import sys; sys.stdin.read()") as proc:  # runs until its stdin closes
            try:
                with pytest.raises(AssertionError, match=rf"outlived their pool: \[{proc.pid}\]"):
                    assert_no_worker_left({proc.pid}, timeout=0.05)
                assert proc.wait(timeout=5) == -9
            finally:
                proc.kill()

    def test_an_exited_process_not_yet_reaped_is_gone(self) -> None:
        with _child("pass") as proc:
            # Wait for its exit but leave it a zombie, as an orphan of a dead fork server is.
            os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
            assert_no_worker_left({proc.pid}, timeout=5)

    def test_no_pids_is_nothing_left(self) -> None:
        assert_no_worker_left(set(), timeout=0)
