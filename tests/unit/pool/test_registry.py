"""The orphan registry: what it records, what it sweeps, and what it never touches."""

from __future__ import annotations

import json
import os
from pathlib import Path

from snakepit.worker.registry import ProcessRegistry


class TestProcessRegistry:
    def test_records_workers_and_removes_its_file_on_close(self, tmp_path: Path) -> None:
        """A run's file names the host and each live worker; close() removes it."""
        reg = ProcessRegistry("run-a", tmp_path)
        assert reg.open() == []
        reg.add("w1", os.getpid())  # any live pid: the registry records its start time
        record = json.loads(reg.path.read_text())
        assert record["host_pid"] == os.getpid()
        assert record["workers"]["w1"]["pid"] == os.getpid()
        reg.remove("w1")
        assert json.loads(reg.path.read_text())["workers"] == {}
        reg.close()
        assert not reg.path.exists()

    def test_a_live_hosts_file_is_left_alone(self, tmp_path: Path) -> None:
        """Another run whose host is alive (this process) is not swept."""
        other = ProcessRegistry("run-b", tmp_path)
        other.open()
        other.add("w1", os.getpid())
        mine = ProcessRegistry("run-c", tmp_path)
        assert mine.open() == []
        assert other.path.exists()
        other.close()
        mine.close()

    def test_unreadable_files_are_removed(self, tmp_path: Path) -> None:
        """A corrupt registry file (a crash mid-write) is deleted, not fatal."""
        (tmp_path / "broken.json").write_text("{not json")
        reg = ProcessRegistry("run-d", tmp_path)
        assert reg.open() == []
        assert not (tmp_path / "broken.json").exists()
        reg.close()

    def test_an_unwritable_directory_disables_it_without_failing(self, tmp_path: Path) -> None:
        """A registry that cannot be written is a warning, never a reason to refuse to start."""
        blocker = tmp_path / "file"
        blocker.write_text("")
        reg = ProcessRegistry("run-e", blocker / "sub")
        assert reg.open() == []
        reg.add("w1", os.getpid())
        reg.close()

    def test_a_run_id_cannot_leave_the_directory(self, tmp_path: Path) -> None:
        """Whatever a run id holds (separators, dots, NUL), its file stays in the directory."""
        directory = tmp_path / "a" / "registry"
        for run_id in ("../../x", "/etc/x", "..", "a\x00b", "x" * 1000, "é/../.."):
            reg = ProcessRegistry(run_id, directory)
            reg.open()
            assert reg.path.parent == directory and reg.path.exists()
            reg.close()
        assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == [
            Path("a"),
            Path("a/registry"),
        ]
