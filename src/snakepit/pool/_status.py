"""Each running pool publishes a small status file, for ``snakepit status`` in another terminal.

The files live in one private directory per user (:func:`status_dir`: mode 0700,
owned by the user). A pool writes ``<name>-<pid>-<token>.json`` atomically
(a temporary file renamed over it), at most :data:`MIN_INTERVAL` apart while its
events say something changed, and removes it when it closes. A pool killed
before it could remove it leaves a file whose pid is gone (or is another
process): readers skip it. The file carries no paths; readers never follow one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import stat
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil

from snakepit.events import (
    Event,
    PoolClosed,
    PoolClosing,
    PoolStarted,
    RequestCancelled,
    RequestCompleted,
    RequestDispatched,
    RequestFailed,
)

if TYPE_CHECKING:
    from snakepit.pool._pool import Pool

__all__ = ["MIN_INTERVAL", "StatusPublisher", "read_statuses", "status_dir"]

MIN_INTERVAL = 0.5
"""Seconds between two writes of one pool's status file, at least."""
FORMAT = 1
_MAX_FILE = 1 << 20


def status_dir() -> Path:
    """This user's status directory: ``$SNAKEPIT_STATUS_DIR``, else ``snakepit-<uid>`` under
    ``$XDG_RUNTIME_DIR`` (or the temp directory)."""
    override = os.environ.get("SNAKEPIT_STATUS_DIR")
    if override:
        return Path(override)
    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    return Path(base) / f"snakepit-status-{os.getuid()}"


def _private_dir(path: Path, *, create: bool) -> bool:
    """True when ``path`` is a real directory of ours that nobody else can write."""
    if create:
        with contextlib.suppress(FileExistsError):
            path.mkdir(mode=0o700, parents=False)
    try:
        info = path.lstat()
    except OSError:
        return False
    return (
        stat.S_ISDIR(info.st_mode)
        and info.st_uid == os.getuid()
        and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    )


class StatusPublisher:
    """Keeps one pool's status file current from its events (a listener on ``pool.events``)."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool
        self._path: Path | None = None
        self._tools: dict[int, tuple[str, str]] = {}  # request id -> (worker id, tool)
        self._timer: asyncio.TimerHandle | None = None
        self._last = 0.0
        self._started_at = 0.0
        pool.events.add_listener(self._on_event)

    def _on_event(self, event: Event) -> None:
        if isinstance(event, RequestDispatched):
            self._tools[event.request_id] = (event.worker_id, event.tool)
        elif isinstance(event, RequestCompleted | RequestFailed | RequestCancelled):
            self._tools.pop(event.request_id, None)
        if isinstance(event, PoolStarted):
            self._open()
        elif isinstance(event, PoolClosing | PoolClosed):
            self._remove()
            return
        if self._path is not None and self._timer is None:
            self._schedule()

    def _open(self) -> None:
        folder = status_dir()
        try:
            folder.parent.mkdir(parents=True, exist_ok=True)
        except OSError:
            return
        if not _private_dir(folder, create=True):
            return  # someone else's or a link: publish nothing rather than write there
        token = secrets.token_hex(4)
        self._path = folder / f"{_safe(self._pool.name)}-{os.getpid()}-{token}.json"
        self._started_at = time.time()
        self._write()

    def _schedule(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # published from a thread: the next event in the loop writes
            return
        delay = max(0.0, self._last + MIN_INTERVAL - time.monotonic())
        self._timer = loop.call_later(delay, self._write)

    def flush(self) -> None:
        """Write the status file now (the pool writes it on its own at a bounded rate)."""
        if self._timer is not None:
            self._timer.cancel()
        self._write()

    def _write(self) -> None:
        self._timer = None
        if self._path is None:
            return
        self._last = time.monotonic()
        try:
            text = json.dumps(self.snapshot())
            tmp = self._path.with_suffix(".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(text)
            os.replace(tmp, self._path)
        except (OSError, RuntimeError):  # a full disk or a table changing must not hurt the pool
            pass

    def snapshot(self) -> dict[str, Any]:
        """What the status file holds now."""
        pool = self._pool
        stats = pool.stats()
        tools: dict[str, list[str]] = {}
        for worker_id, tool in self._tools.values():
            tools.setdefault(worker_id, []).append(tool)
        me = psutil.Process()
        return {
            "format": FORMAT,
            "pool": pool.name,
            "pid": os.getpid(),
            "pid_started": me.create_time(),
            "adapter": pool.config.adapter,
            "started_at": self._started_at,
            "updated_at": time.time(),
            "state": stats.state,
            "size": stats.size,
            "queued": stats.queued,
            "requests": stats.requests,
            "errors": stats.errors,
            "restarts": stats.restarts,
            "workers": [
                {
                    "id": w.id,
                    "pid": w.pid,
                    "state": "busy" if w.state == "ready" and w.in_flight else w.state,
                    "requests": w.requests,
                    "in_flight": w.in_flight,
                    "tools": sorted(tools.get(w.id, [])),
                }
                for w in pool.workers()
            ],
        }

    def _remove(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._path is not None:
            with contextlib.suppress(OSError):
                self._path.unlink()
            with contextlib.suppress(OSError):
                self._path.with_suffix(".tmp").unlink()
            self._path = None


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "_.-" else "_" for c in name)[:40] or "pool"


def _alive(pid: Any, started: Any) -> bool:
    if not isinstance(pid, int) or not isinstance(started, int | float):
        return False
    try:
        proc = psutil.Process(pid)
        return proc.uids().real == os.getuid() and abs(proc.create_time() - started) < 1.0
    except psutil.Error:
        return False


def remove_dead_statuses(folder: Path | None = None) -> list[Path]:
    """Remove the status files that pools of dead processes left behind (a host killed
    before it could remove its own); returns what was removed.

    Only regular files of this user in a private directory of this user that are status
    documents naming a process that is gone are removed; anything else is left alone.
    """
    folder = status_dir() if folder is None else folder
    removed: list[Path] = []
    if not _private_dir(folder, create=False):
        return removed
    for path in sorted(folder.glob("*.json")):
        doc = _read_status(path)
        if (
            doc is None
            or not isinstance(doc.get("pid"), int)
            or not isinstance(doc.get("pid_started"), int | float)
        ):
            continue
        if not _alive(doc["pid"], doc["pid_started"]):
            with contextlib.suppress(OSError):
                path.unlink()
                removed.append(path)
    return removed


def _read_status(path: Path) -> dict[str, Any] | None:
    """The status document in ``path``: a regular file of this user (no link followed)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid():
            return None
        raw = f.read(_MAX_FILE + 1)
    if len(raw) > _MAX_FILE:
        return None
    try:
        doc = json.loads(raw)
    except ValueError:
        return None
    if isinstance(doc, dict) and doc.get("format") == FORMAT:
        return doc
    return None


def read_statuses(folder: Path | None = None) -> list[dict[str, Any]]:
    """The status of every live pool of this user, by pool name; dead pools are skipped.

    Only regular files of this user in a private directory of this user are read
    (no links followed); a file that is not a status document is skipped.
    """
    folder = status_dir() if folder is None else folder
    if not _private_dir(folder, create=False):
        return []
    found = []
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        if not entry.name.endswith(".json"):
            continue
        try:
            fd = os.open(os.path.join(folder, entry.name), os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            continue
        with os.fdopen(fd, "rb") as f:
            info = os.fstat(f.fileno())
            if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid():
                continue
            raw = f.read(_MAX_FILE + 1)
        if len(raw) > _MAX_FILE:
            continue
        try:
            doc = json.loads(raw)
        except ValueError:
            continue
        if (
            isinstance(doc, dict)
            and doc.get("format") == FORMAT
            and isinstance(doc.get("workers"), list)
            and _alive(doc.get("pid"), doc.get("pid_started"))
        ):
            found.append(doc)
    return sorted(found, key=lambda d: (str(d.get("pool")), d.get("pid", 0)))
