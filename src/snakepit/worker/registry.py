"""The on-disk process registry that lets a new pool clean up after a SIGKILLed host.

Workers exit by themselves when their host dies (stdin EOF, parent-death
signal). As a last line of defence each running pool records its run id, its
own pid and start time, and every worker's pid and start time in one small
JSON file in a per-user data directory. When a pool starts, it reads the
other files: a file whose host is gone names workers that must not outlive
it, and each one still alive **with the recorded start time** (so a reused
pid is never killed) is killed with its process group.
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

import psutil

__all__ = ["ProcessRegistry", "default_registry_dir"]

log = logging.getLogger("snakepit.registry")
_TOLERANCE = 0.05  # seconds: psutil create_time is rounded
_UNSAFE = re.compile(r"[^A-Za-z0-9_.:-]")


def default_registry_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "share"
    )
    return Path(base) / "snakepit" / "registry"


def _file_name(run_id: str) -> str:
    """A file name for ``run_id`` that stays in the registry directory, whatever it holds."""
    return (_UNSAFE.sub("_", run_id)[:150].lstrip(".") or "run") + ".json"


def _create_time(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None


def _same_process(pid: int, create_time: float) -> bool:
    actual = _create_time(pid)
    return actual is not None and abs(actual - create_time) < _TOLERANCE


class ProcessRegistry:
    """One pool's record of its workers, and the sweeper of other runs' leftovers.

    Args:
        run_id: this run's unique id; the file name is derived from it (characters
            outside ``[A-Za-z0-9_.:-]`` are replaced), so it never leaves ``directory``.
        directory: where the files live (default: :func:`default_registry_dir`).
    """

    def __init__(self, run_id: str, directory: Path | None = None) -> None:
        self.run_id = run_id
        self.directory = directory or default_registry_dir()
        self.path = self.directory / _file_name(run_id)
        self._host_pid = os.getpid()
        self._host_create_time = _create_time(self._host_pid) or 0.0
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
        """Kill the recorded workers of every run whose host is gone; remove their files."""
        killed: list[int] = []
        for path in sorted(self.directory.glob("*.json")):
            if path == self.path:
                continue
            try:
                record = json.loads(path.read_text())
                host_pid = int(record["host_pid"])
                host_time = float(record["host_create_time"])
                workers = dict(record.get("workers", {}))
            except (OSError, ValueError, KeyError, TypeError):
                with contextlib.suppress(OSError):
                    path.unlink()
                continue
            if _same_process(host_pid, host_time):
                continue  # that host is alive: its workers are its business
            for worker_id, info in workers.items():
                pid, created = int(info["pid"]), float(info["create_time"])
                if _same_process(pid, created):
                    log.warning(
                        "killing worker %s (pid %d) left behind by dead host pid %d (run %s)",
                        worker_id,
                        pid,
                        host_pid,
                        record.get("run_id"),
                    )
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(pid, signal.SIGKILL)
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
            with contextlib.suppress(OSError):
                path.unlink()
        return killed

    def add(self, worker_id: str, pid: int) -> None:
        """Record a started worker."""
        created = _create_time(pid)
        if created is None:
            return
        self._workers[worker_id] = {"pid": pid, "create_time": created}
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
            "workers": self._workers,
        }
        tmp = self.path.with_suffix(".tmp")
        try:
            tmp.write_text(json.dumps(record))
            os.replace(tmp, self.path)
        except OSError as exc:
            log.warning("cannot write process registry %s: %s", self.path, exc)
