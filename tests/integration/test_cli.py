"""The command line: demo and doctor run real workers and report what happened."""

from __future__ import annotations

import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from snakepit.cli import main

if TYPE_CHECKING:
    from pathlib import Path


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


class TestNewcomerMistakes:
    def test_doctor_with_a_missing_interpreter(self, capsys: pytest.CaptureFixture[str]) -> None:
        assert main(["doctor", "--python", "/nope/python"]) == 1
        out = capsys.readouterr().out
        assert "[FAIL] python: cannot run '/nope/python'" in out
        assert "fix: pass --python" in out

    def test_doctor_with_a_dot_for_a_colon(self, capsys: pytest.CaptureFixture[str]) -> None:
        assert main(["doctor", "--adapter", "mytools.TextTools"]) == 2
        err = capsys.readouterr().err
        assert "'pkg.module:Class'" in err
        assert "did you mean mytools:TextTools?" in err

    def test_doctor_prints_why_setup_failed(self, capsys: pytest.CaptureFixture[str]) -> None:
        assert main(["doctor", "--adapter", "snakepit.testing.adapters:FailingSetup"]) == 1
        out = capsys.readouterr().out
        assert "[FAIL] worker" in out
        assert "setup() raised" in out
        assert "RuntimeError: FailingSetup.setup refuses to start (on purpose)" in out

    def test_doctor_reports_the_interpreter_it_was_given(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """--python X checks X (here a virtualenv's python), not the interpreter running doctor."""
        venv = tmp_path / "venv"
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
        python = str(venv / "bin" / "python")
        main(["doctor", "--python", python])
        out = capsys.readouterr().out
        assert f"[ok  ] python: {sys.version.split()[0]} at {python}" in out

    def test_demo_with_an_adapter_that_does_not_exist(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        assert main(["demo", "--size", "1", "--adapter", "other:Adapter"]) == 1
        err = capsys.readouterr().err
        assert "snakepit demo: worker" in err
        assert "could not be imported" in err
        assert "Traceback" not in err.split("snakepit demo:", 1)[0]

    def test_demo_with_an_adapter_without_the_showcase_tools(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        assert main(["demo", "--size", "1", "--adapter", "snakepit.testing.adapters:Minimal"]) == 1
        assert "lacks add, count" in capsys.readouterr().err
