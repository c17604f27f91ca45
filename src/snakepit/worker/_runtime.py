"""Private runtime directories for a pool's sockets, and the sweep of dead pools' ones.

A Unix socket path may not exceed 107 bytes, so the directory lives under a
short base (``$XDG_RUNTIME_DIR`` when it is set and short, else the system
temp directory), is created with mode 0700, and is removed on close.

A host that is killed cannot remove its directory, so each one carries an
owner file naming the process that made it (pid and start time). A new pool
removes the directories in its base whose owner is gone, and only those: a
directory without a readable owner file, not ours, or not a directory is
left alone.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import stat
import tempfile
from pathlib import Path

from snakepit.worker._identity import create_time, running

__all__ = ["make_runtime_dir", "remove_abandoned", "remove_runtime_dir", "sweep_runtime_dirs"]

log = logging.getLogger("snakepit.runtime")
_MAX_BASE = 60
_PREFIX = "sp-"
_OWNER = "owner.json"


def _base() -> str:
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg and len(xdg) <= _MAX_BASE and os.access(xdg, os.W_OK):
        return xdg
    tmp = tempfile.gettempdir()
    return tmp if len(tmp) <= _MAX_BASE else "/tmp"


def make_runtime_dir(name: str, base: str | os.PathLike[str] | None = None) -> Path:
    """Create a fresh private (0700) directory for one pool; its path is short enough for sockets.

    The directory records this process as its owner, so that a later pool can remove it
    if this process dies without doing so.
    """
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:20] or "pool"
    path = Path(tempfile.mkdtemp(prefix=f"{_PREFIX}{safe}-", dir=str(base) if base else _base()))
    path.chmod(0o700)
    owner = {"pid": os.getpid(), "create_time": create_time(os.getpid())}
    tmp = path / f"{_OWNER}.tmp"
    tmp.write_text(json.dumps(owner))
    os.replace(tmp, path / _OWNER)  # a sweeper never sees a half-written owner
    return path


def remove_runtime_dir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def remove_abandoned(path: Path) -> bool:
    """Remove ``path`` if it is a runtime directory whose owner process is gone.

    Returns whether it was removed. Anything that is not plainly ours (a symlink, another
    user's, no ``sp-`` prefix, no readable owner file) is left alone.
    """
    try:
        info = os.lstat(path)
    except OSError:
        return False
    if (
        not stat.S_ISDIR(info.st_mode)
        or info.st_uid != os.getuid()
        or not path.name.startswith(_PREFIX)
    ):
        return False
    try:
        owner = json.loads((path / _OWNER).read_text())
        pid, created = int(owner["pid"]), float(owner["create_time"])
    except (OSError, ValueError, KeyError, TypeError):
        return False
    if running(pid, created):
        return False
    log.warning("removing runtime directory %s left behind by dead host pid %d", path, pid)
    shutil.rmtree(path, ignore_errors=True)
    return True


def sweep_runtime_dirs(base: str | os.PathLike[str] | None = None) -> list[Path]:
    """Remove the runtime directories under ``base`` whose owner process is gone."""
    root = Path(base) if base else Path(_base())
    with contextlib.suppress(OSError):
        return [path for path in sorted(root.glob(f"{_PREFIX}*")) if remove_abandoned(path)]
    return []
