"""What a worker process does about its own life: dying with its host, and leaving at once."""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
from typing import TYPE_CHECKING, NoReturn

if TYPE_CHECKING:
    import signal

__all__ = ["die_with_parent", "exit_now"]

_PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int, signum: signal.Signals) -> bool:
    """Ask Linux to send ``signum`` when the parent dies; False if it is already gone.

    The pid check after ``prctl`` closes the race of a parent that died before it.
    """
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):  # not on glibc/musl
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0)
    return not parent_pid or os.getppid() == parent_pid


def exit_now(code: int) -> NoReturn:
    """Leave at once (a hung tool thread must not keep the process alive), after saving
    coverage data when the process runs under coverage (as the test suite does)."""
    measuring = sys.modules.get("coverage")
    if measuring is not None:
        with contextlib.suppress(Exception):
            current = measuring.Coverage.current()
            if current is not None:
                current.stop()
                current.save()
    with contextlib.suppress(Exception):
        sys.stderr.flush()
    os._exit(code)
