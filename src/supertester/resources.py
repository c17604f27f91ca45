"""Resource exhaustion: clamp a child's rlimits so it runs out of memory, CPU or fds.

Uses ``psutil.Process(pid).rlimit`` (``prlimit(2)``, Linux only). Only the
soft limit is lowered; the hard limit is kept, so :meth:`ResourceReport.restore`
can put things back.
"""

from __future__ import annotations

import resource
import sys
from dataclasses import dataclass

import psutil

__all__ = ["AppliedLimit", "ResourceReport", "exhaust_resources"]


@dataclass(frozen=True)
class AppliedLimit:
    """One rlimit that was changed.

    Attributes:
        name: ``"memory"`` (RLIMIT_AS), ``"cpu"`` (RLIMIT_CPU) or ``"open_files"`` (RLIMIT_NOFILE).
        resource: the ``resource.RLIMIT_*`` constant.
        before: ``(soft, hard)`` before.
        after: ``(soft, hard)`` now.
    """

    name: str
    resource: int
    before: tuple[int, int]
    after: tuple[int, int]


@dataclass(frozen=True)
class ResourceReport:
    """What :func:`exhaust_resources` did to process ``pid``."""

    pid: int
    applied: tuple[AppliedLimit, ...]

    def restore(self) -> None:
        """Put the soft limits back as they were (a no-op for a process that is gone)."""
        try:
            proc = psutil.Process(self.pid)
            for limit in self.applied:
                proc.rlimit(limit.resource, limit.before)
        except psutil.NoSuchProcess:
            pass


def exhaust_resources(
    pid: int,
    *,
    memory_mb: float | None = None,
    cpu_seconds: int | None = None,
    open_files: int | None = None,
) -> ResourceReport:
    """Clamp process ``pid``'s soft rlimits so it hits them soon.

    Args:
        pid: the victim (a child of this test, usually).
        memory_mb: address-space limit (RLIMIT_AS) in MiB; allocations past it fail
            (``MemoryError`` in Python). Count the interpreter's own mappings.
        cpu_seconds: CPU-time limit (RLIMIT_CPU); past it the process gets SIGXCPU.
        open_files: fd limit (RLIMIT_NOFILE); past it ``open()`` fails with EMFILE.

    Returns:
        A :class:`ResourceReport` of each limit changed (with ``restore()``).

    Raises:
        NotImplementedError: not on Linux (prlimit is Linux-only).
        ValueError: no limit given.
        psutil.NoSuchProcess: ``pid`` does not exist.
    """
    if not sys.platform.startswith("linux"):
        raise NotImplementedError("exhaust_resources needs Linux (prlimit)")
    wanted: list[tuple[str, int, int]] = []
    if memory_mb is not None:
        wanted.append(("memory", resource.RLIMIT_AS, int(memory_mb * 1024 * 1024)))
    if cpu_seconds is not None:
        wanted.append(("cpu", resource.RLIMIT_CPU, int(cpu_seconds)))
    if open_files is not None:
        wanted.append(("open_files", resource.RLIMIT_NOFILE, int(open_files)))
    if not wanted:
        raise ValueError("exhaust_resources needs memory_mb=, cpu_seconds= or open_files=")
    proc = psutil.Process(pid)
    applied = []
    for name, which, soft in wanted:
        before_soft, hard = proc.rlimit(which)
        if hard != resource.RLIM_INFINITY:
            soft = min(soft, hard)
        proc.rlimit(which, (soft, hard))
        applied.append(AppliedLimit(name, which, (before_soft, hard), (soft, hard)))
    return ResourceReport(pid=pid, applied=tuple(applied))
