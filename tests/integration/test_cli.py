"""The command line: demo and doctor run real workers and report what happened."""

from __future__ import annotations

import pytest

from snakepit.cli import main


class TestCli:
    def test_demo_runs_every_scenario_and_recovers(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """`snakepit demo` runs calls, a stream, a session, a crash and a timeout, and recovers."""
        assert main(["demo", "--size", "2"]) == 0
        out = capsys.readouterr().out
        for step in ("parallel calls", "a stream", "a session", "a crash", "a timeout"):
            assert step in out
        assert "WorkerCrashedError" in out and "ExecutionTimeoutError" in out
        assert out.count("next call works: add(20, 22) = 42") == 2
        assert "no worker left behind" in out

    def test_doctor_passes_here(self, capsys: pytest.CaptureFixture[str]) -> None:
        """`snakepit doctor` checks the environment, starts one worker, and says all passed."""
        assert main(["doctor"]) == 0
        out = capsys.readouterr().out
        assert "[ok  ] grpcio" in out and "[ok  ] worker" in out
        assert "all checks passed" in out

    def test_doctor_names_a_missing_adapter_and_the_fix(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """An adapter that does not import fails the check with the reason and a fix."""
        assert main(["doctor", "--adapter", "no_such_pkg_xyz:Thing"]) == 1
        out = capsys.readouterr().out
        assert "[FAIL] adapter" in out and "no_such_pkg_xyz" in out
        assert "fix:" in out

    def test_bad_arguments_exit_with_usage(self, capsys: pytest.CaptureFixture[str]) -> None:
        """An unknown command is a usage error (exit 2)."""
        with pytest.raises(SystemExit) as info:
            main(["nope"])
        assert info.value.code == 2
