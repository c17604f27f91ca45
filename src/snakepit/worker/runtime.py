"""Private runtime directories for a pool's sockets.

A Unix socket path may not exceed 107 bytes, so the directory lives under a
short base (``$XDG_RUNTIME_DIR`` when it is set and short, else the system
temp directory), is created with mode 0700, and is removed on close.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

__all__ = ["make_runtime_dir", "remove_runtime_dir"]

_MAX_BASE = 60


def _base() -> str:
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg and len(xdg) <= _MAX_BASE and os.access(xdg, os.W_OK):
        return xdg
    tmp = tempfile.gettempdir()
    return tmp if len(tmp) <= _MAX_BASE else "/tmp"


def make_runtime_dir(name: str, base: str | os.PathLike[str] | None = None) -> Path:
    """Create a fresh private (0700) directory for one pool; its path is short enough for sockets."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:20] or "pool"
    path = Path(tempfile.mkdtemp(prefix=f"sp-{safe}-", dir=str(base) if base else _base()))
    path.chmod(0o700)
    return path


def remove_runtime_dir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
