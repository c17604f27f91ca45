"""Telling a process apart from a later one that reuses its pid.

A pid alone names a process only while that process lives; afterwards the
number can be handed to anything. So what we may kill later is recorded as
``(pid, start time)`` and checked against the live process first.

Process groups are safer than they look: a number stays reserved while any
process still uses it as its group id, so while a dead worker's group has a
member left, no new process can be given that number. If something runs
under the number again, the group is empty.
"""

from __future__ import annotations

import contextlib
import os

import psutil

__all__ = [
    "create_time",
    "group_members",
    "pid_in_use",
    "pid_taken_by_a_live_process",
    "running",
    "same_process",
]

TOLERANCE = 0.05  # seconds: psutil's start times are rounded


def create_time(pid: int) -> float | None:
    """The start time of process ``pid`` (a zombie has one too), or None when there is none."""
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def same_process(pid: int, created: float) -> bool:
    """True when ``pid`` is still the process that started at ``created``."""
    actual = create_time(pid)
    return actual is not None and abs(actual - created) < TOLERANCE


def running(pid: int, created: float) -> bool:
    """True when ``pid`` is still the process that started at ``created`` and has not exited
    (a zombie, dead but not yet reaped by its parent, does not count)."""
    if not same_process(pid, created):
        return False
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def pid_in_use(pid: int) -> bool:
    """True when some process (of any user, a zombie included) has this pid now."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def pid_taken_by_a_live_process(pid: int) -> bool:
    """True when a process that has not exited has this pid now. A zombie does not count:
    a dead process that its parent has not reaped yet still holds its pid, and with it
    the number of its process group, which no new process can be given meanwhile."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:
        return pid_in_use(pid)


def group_members(pgid: int, *, since: float) -> list[int]:
    """The pids of the processes in group ``pgid`` that started at or after ``since``.

    Every process of a worker's group started after the worker that created the
    group, so ``since`` (the worker's start time) leaves out anything older.
    """
    members = []
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error, OSError):
            if os.getpgid(proc.pid) == pgid and proc.create_time() >= since - TOLERANCE:
                members.append(proc.pid)
    return members
