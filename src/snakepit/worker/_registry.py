"""The on-disk process registry that lets a new pool clean up after a SIGKILLed host.

Workers exit by themselves when their host dies (stdin EOF, parent-death
signal), but what they started does not. As a last line of defence each
running pool records its run id, its own pid and start time, its runtime
directory, and every worker's pid, process group and start time in one small
JSON file in a per-user data directory. When a pool starts, it reads the
other files. A file whose host is gone names processes that must not outlive
it: each worker still alive **with the recorded start time** (so a reused pid
is never killed) is killed with its process group, and the group of a worker
that is already gone is killed if processes are left in it (the helpers it
started). The dead host's runtime directory is removed too.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import signal
from pathlib import Path
from typing import Any

from snakepit.worker._identity import (
    create_time,
    group_members,
    pid_in_use,
    running,
    same_process,
)
from snakepit.worker._runtime import remove_abandoned

__all__ = ["ProcessRegistry", "default_registry_dir"]

log = logging.getLogger("snakepit.registry")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.:-]")


def default_registry_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "share"
    )
    return Path(base) / "snakepit" / "registry"


def _file_name(run_id: str) -> str:
    """A file name for ``run_id`` that stays in the registry directory, whatever it holds."""
    return (_UNSAFE.sub("_", run_id)[:150].lstrip(".") or "run") + ".json"


class ProcessRegistry:
    """One pool's record of its workers, and the sweeper of other runs' leftovers.

    Args:
        run_id: this run's unique id; the file name is derived from it (characters
            outside ``[A-Za-z0-9_.:-]`` are replaced), so it never leaves ``directory``.
        directory: where the files live (default: :func:`default_registry_dir`).
        runtime_dir: this run's runtime directory, removed by a later run if this
            host dies without removing it.
    """

    def __init__(
        self, run_id: str, directory: Path | None = None, *, runtime_dir: Path | None = None
    ) -> None:
        self.run_id = run_id
        self.directory = directory or default_registry_dir()
        self.path = self.directory / _file_name(run_id)
        self.runtime_dir = runtime_dir
        self._host_pid = os.getpid()
        self._host_create_time = create_time(self._host_pid) or 0.0
        self._workers: dict[str, dict[str, Any]] = {}
        self._enabled = True

    def open(self) -> list[int]:
        """Create the directory, kill leftovers of dead hosts, and write this run's file.

        Returns the pids that were killed. A registry that cannot be written
        (read-only home) is disabled with a warning: it is a safety net, not a
        reason to refuse to start.
        """
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            killed = self.reap_leftovers()
            self._write()
        except OSError as exc:
            log.warning("process registry disabled (%s): %s", self.directory, exc)
            self._enabled = False
            return []
        return killed

    def reap_leftovers(self) -> list[int]:
        """Kill what every run whose host is gone left running, remove its runtime
        directory and its file; returns the pids killed."""
        killed: list[int] = []
        for path in sorted(self.directory.glob("*.json")):
            if path == self.path:
                continue
            try:
                record = json.loads(path.read_text())
                host_pid = int(record["host_pid"])
                host_time = float(record["host_create_time"])
                workers = {
                    str(worker_id): (
                        int(info["pid"]),
                        float(info["create_time"]),
                        int(info.get("pgid", info["pid"])),
                    )
                    for worker_id, info in dict(record.get("workers", {})).items()
                }
                runtime_dir = record.get("runtime_dir")
            except (OSError, ValueError, KeyError, TypeError, AttributeError):
                with contextlib.suppress(OSError):
                    path.unlink()
                continue
            if running(host_pid, host_time):
                continue  # that host is alive: its workers are its business
            for worker_id, (pid, created, pgid) in workers.items():
                what = (
                    f"worker {worker_id} of dead host pid {host_pid} (run {record.get('run_id')})"
                )
                killed += _kill_leftover(what, pid, created, pgid)
            if isinstance(runtime_dir, str):
                remove_abandoned(Path(runtime_dir))
            with contextlib.suppress(OSError):
                path.unlink()
        return killed

    def add(self, worker_id: str, pid: int) -> None:
        """Record a started worker, its process group and its start time."""
        created = create_time(pid)
        if created is None:
            return
        try:
            pgid = os.getpgid(pid)
        except OSError:
            pgid = pid
        self._workers[worker_id] = {"pid": pid, "pgid": pgid, "create_time": created}
        self._write()

    def remove(self, worker_id: str) -> None:
        """Forget a worker that has exited."""
        if self._workers.pop(worker_id, None) is not None:
            self._write()

    def close(self) -> None:
        """Remove this run's file (the pool stopped all its workers)."""
        self._workers.clear()
        if self._enabled:
            with contextlib.suppress(OSError):
                self.path.unlink()
        self._enabled = False

    def _write(self) -> None:
        if not self._enabled:
            return
        record = {
            "run_id": self.run_id,
            "host_pid": self._host_pid,
            "host_create_time": self._host_create_time,
            "runtime_dir": str(self.runtime_dir) if self.runtime_dir is not None else None,
            "workers": self._workers,
        }
        tmp = self.path.with_suffix(".tmp")
        try:
            tmp.write_text(json.dumps(record))
            os.replace(tmp, self.path)
        except OSError as exc:
            log.warning("cannot write process registry %s: %s", self.path, exc)


def _kill_leftover(what: str, pid: int, created: float, pgid: int) -> list[int]:
    """Kill a dead host's worker and its process group, or what is left of the group.

    A group is signalled only when the worker led it (``pgid == pid``, as every worker
    the pool starts does) and the group is provably the worker's: the worker itself still
    runs with its recorded start time, or its pid is in no one's use (were it reused, the
    group would be empty; see ``_identity``) and members that started after it remain.
    """
    if same_process(pid, created):
        log.warning("killing %s (pid %d) and its process group", what, pid)
        if pgid == pid:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
        return [pid]
    if pgid != pid or pid_in_use(pid):
        return []
    members = group_members(pgid, since=created)
    if members:
        log.warning(
            "killing %d process(es) %s left in the group of %s (pid %d)",
            len(members),
            members,
            what,
            pid,
        )
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
    return members
