"""The orphan registry: what it records, what it sweeps, and what it never touches."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil

from snakepit.worker._registry import ProcessRegistry
from snakepit.worker._runtime import make_runtime_dir, sweep_runtime_dirs
from supertester import is_alive, wait_for_exit

if TYPE_CHECKING:
    from collections.abc import Iterator

BOUND = 10.0


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

    def test_records_process_groups_and_the_runtime_dir(self, tmp_path: Path) -> None:
        """Each worker is recorded with its process group; the run with its runtime directory."""
        reg = ProcessRegistry("run-f", tmp_path, runtime_dir=tmp_path / "sp-x")
        reg.open()
        reg.add("w1", os.getpid())
        record = json.loads(reg.path.read_text())
        assert record["runtime_dir"] == str(tmp_path / "sp-x")
        assert record["workers"]["w1"]["pgid"] == os.getpgid(os.getpid())
        reg.close()


# A group leader that starts a helper in its group, prints the helper's pid, and waits for a
# line on stdin before it exits (leaving the helper behind, as a dead worker does).
_LEADER = "sleep 86400 & echo $!; read line; exit 0"


@contextlib.contextmanager
def _leader() -> Iterator[tuple[subprocess.Popen[str], int, float]]:
    """A group leader, its helper's pid and its start time; at exit both are gone."""
    leader = subprocess.Popen(
        ["/bin/sh", "-c", _LEADER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert leader.stdin is not None and leader.stdout is not None
    helper = int(leader.stdout.readline())
    try:
        yield leader, helper, psutil.Process(leader.pid).create_time()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(helper, signal.SIGKILL)
        leader.stdin.close()
        leader.stdout.close()
        leader.wait(BOUND)


def _dead_host_record(tmp_path: Path, run: str, workers: dict[str, Any], **extra: Any) -> Path:
    path = tmp_path / f"{run}.json"
    record = {"run_id": run, "host_pid": os.getpid(), "host_create_time": 1.0, **extra}
    path.write_text(json.dumps({**record, "workers": workers}))
    return path


class TestSweepingDeadHosts:
    async def test_the_group_of_a_dead_worker_is_killed(self, tmp_path: Path) -> None:
        """A dead host's worker that is gone (reaped) but left a helper in its process group:
        the next registry kills the helper."""
        with _leader() as (leader, helper, created):
            assert leader.stdin is not None
            leader.stdin.close()
            assert leader.wait(BOUND) == 0  # reaped: its pid may now be anyone's
            worker = {"pid": leader.pid, "pgid": leader.pid, "create_time": created}
            _dead_host_record(tmp_path, "dead", {"w1": worker})
            reg = ProcessRegistry("run-g", tmp_path)
            assert reg.open() == [helper]
            await wait_for_exit(helper, BOUND, what="the dead worker's helper")
            reg.close()

    async def test_a_host_that_exited_unreaped_counts_as_dead(self, tmp_path: Path) -> None:
        """A host that has exited but was not reaped by its parent yet (a zombie) is dead:
        its live worker is killed with its group."""
        host = subprocess.Popen(["/bin/sh", "-c", "exit 0"])
        try:
            await wait_for_exit(host.pid, BOUND)  # exited; this test, its parent, has not reaped it
            with _leader() as (worker, helper, created):
                record = {
                    "run_id": "zombie",
                    "host_pid": host.pid,
                    "host_create_time": psutil.Process(host.pid).create_time(),
                    "workers": {
                        "w1": {"pid": worker.pid, "pgid": worker.pid, "create_time": created}
                    },
                }
                (tmp_path / "zombie.json").write_text(json.dumps(record))
                reg = ProcessRegistry("run-j", tmp_path)
                assert reg.open() == [worker.pid]
                await wait_for_exit(
                    [worker.pid, helper], BOUND, what="the dead host's worker group"
                )
                reg.close()
        finally:
            assert host.wait(BOUND) == 0

    async def test_a_group_whose_leader_pid_is_in_use_is_left_alone(self, tmp_path: Path) -> None:
        """A recorded worker pid that now belongs to another process (other start time) means
        the worker's group is gone; that process and its group are never touched."""
        with _leader() as (bystander, helper, _):
            worker = {"pid": bystander.pid, "pgid": bystander.pid, "create_time": 12345.0}
            _dead_host_record(tmp_path, "old", {"w1": worker})
            reg = ProcessRegistry("run-h", tmp_path)
            assert reg.open() == []
            assert is_alive(bystander.pid) and is_alive(helper)
            reg.close()

    def test_a_dead_hosts_runtime_dir_is_removed_and_a_live_ones_kept(self, tmp_path: Path) -> None:
        """The runtime directory named by a dead host's record goes; one whose owner (this
        process) lives, or one that has no owner file, stays."""
        base = tmp_path / "run"
        base.mkdir()
        dead, live, unowned = (make_runtime_dir(n, base) for n in ("dead", "live", "unowned"))
        (dead / "owner.json").write_text(json.dumps({"pid": os.getpid(), "create_time": 1.0}))
        (unowned / "owner.json").unlink()
        _dead_host_record(tmp_path, "d1", {}, runtime_dir=str(dead))
        _dead_host_record(tmp_path, "d2", {}, runtime_dir=str(live))
        _dead_host_record(tmp_path, "d3", {}, runtime_dir=str(unowned))
        reg = ProcessRegistry("run-i", tmp_path)
        reg.open()
        assert (dead.exists(), live.exists(), unowned.exists()) == (False, True, True)
        reg.close()


class TestRuntimeDirs:
    def test_a_sweep_removes_only_dirs_of_dead_owners(self, tmp_path: Path) -> None:
        """Sweeping a base removes the runtime directories whose owner is gone, and nothing
        else: not a live owner's, not one without an owner file, not a symlink to one, not
        a directory without the sp- prefix."""
        base = tmp_path / "run"
        base.mkdir()
        dead, live = make_runtime_dir("dead", base), make_runtime_dir("live", base)
        gone = json.dumps({"pid": os.getpid(), "create_time": 1.0})
        (dead / "owner.json").write_text(gone)
        (dead / "w1.sock").write_text("")
        foreign = base / "other"
        foreign.mkdir()
        (foreign / "owner.json").write_text(gone)
        target = tmp_path / "elsewhere"
        target.mkdir()
        (target / "owner.json").write_text(gone)
        (base / "sp-link").symlink_to(target)
        assert sweep_runtime_dirs(base) == [dead]
        assert sorted(p.name for p in base.iterdir()) == sorted([live.name, "other", "sp-link"])
        assert (target / "owner.json").exists()
        assert live.stat().st_mode & 0o777 == 0o700
