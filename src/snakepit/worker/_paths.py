"""Which of the host's import paths a worker gets, so it imports what the host imports.

``multiprocessing``'s spawn hands a child the parent's ``sys.path``; snakepit does the
same for the entries that belong to the user's project (the script's directory, the
current directory for ``''``, paths added by ``sys.path.insert`` or pytest), and leaves
out the interpreter's own standard library and site-packages: a worker may run another
interpreter (``python=``), whose own versions of those must win.
"""

from __future__ import annotations

import contextlib
import os
import site
import sys
from pathlib import Path

__all__ = ["PACKAGE_ROOT", "host_import_paths", "worker_pythonpath"]

#: The directory ``snakepit`` itself is imported from.
PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])


def _interpreter_roots() -> tuple[str, ...]:
    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    with contextlib.suppress(AttributeError):  # some virtualenv tools strip it
        roots.update(site.getsitepackages())
    user_site = site.getusersitepackages()
    if isinstance(user_site, str):
        roots.add(user_site)
    return tuple(os.path.join(os.path.realpath(r), "") for r in roots if r)


def host_import_paths() -> list[str]:
    """The host's ``sys.path`` entries that a worker needs: absolute, existing, in order,
    without the interpreter's standard library and site-packages."""
    roots = _interpreter_roots()
    out: list[str] = []
    for entry in sys.path:
        if not isinstance(entry, str):
            continue
        path = os.path.abspath(entry or os.getcwd())
        real = os.path.join(os.path.realpath(path), "")
        if real.startswith(roots) or not os.path.exists(path) or path in out:
            continue
        out.append(path)
    return out


def worker_pythonpath(existing: str, package_root: str) -> str:
    """``PYTHONPATH`` for a worker: what the caller set first, then the host's project
    paths, then the directory snakepit itself is imported from."""
    parts = [p for p in existing.split(os.pathsep) if p]
    for path in [*host_import_paths(), package_root]:
        if path not in parts:
            parts.append(path)
    return os.pathsep.join(parts)
