"""OS process checks: is a pid alive, describe it, and wait for it to exit without polling.

"Alive" means the process exists and is not a zombie: a process that has
exited but was not reaped yet is dead for every purpose a test cares about.

Waiting uses Linux pidfds (``os.pidfd_open``), which become readable when the
process exits: the wait is an event, not a polling loop, and it never reaps
(collecting the exit status stays the job of whoever started the process).
Without pidfd support it falls back to ``psutil.wait_procs``.
"""

from __future__ import annotations

import asyncio
import os
import select
import time
from typing import TYPE_CHECKING

import psutil

from supertester.errors import SupertesterTimeout

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["assert_alive", "describe_process", "is_alive", "wait_for_exit"]


def is_alive(pid: int) -> bool:
    """True if a process with this pid exists and is not a zombie."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:  # it exists, we just may not look at it
        return True


def describe_process(pid: int) -> str:
    """One line naming a process: pid, command line, status and parent, for messages."""
    try:
        proc = psutil.Process(pid)
        with proc.oneshot():
            cmdline = " ".join(proc.cmdline()) or proc.name()
            status = proc.status()
            ppid = proc.ppid()
        if len(cmdline) > 160:
            cmdline = cmdline[:157] + "..."
        return f"pid {pid} [{status}] parent {ppid}: {cmdline}"
    except psutil.ZombieProcess:
        return f"pid {pid} [zombie: exited, not reaped yet]"
    except psutil.NoSuchProcess:
        return f"pid {pid} [gone]"
    except psutil.AccessDenied:
        return f"pid {pid} [access denied]"


def assert_alive(pid: int, what: str | None = None) -> None:
    """Assert that ``pid`` is a live (non-zombie) process.

    Raises:
        AssertionError: it does not exist or has exited.
    """
    if not is_alive(pid):
        label = what or f"process {pid}"
        raise AssertionError(
            f"expected {label} to be alive, but {describe_process(pid)}. "
            "Check the component's exit events or the process's stderr for why it stopped."
        )


async def wait_for_exit(
    pids: int | Iterable[int], timeout: float = 5.0, what: str | None = None
) -> None:
    """Wait until every given process has exited (event-driven; it does not reap).

    Args:
        pids: one pid or several.
        timeout: real seconds.
        what: names the processes in the failure message.

    Raises:
        SupertesterTimeout: some are still alive after ``timeout``; the
            message describes each.
    """
    wanted = [pids] if isinstance(pids, int) else list(pids)
    alive = await _wait_exited(wanted, timeout)
    if alive:
        label = what or f"process(es) {', '.join(map(str, wanted))}"
        details = "; ".join(describe_process(pid) for pid in sorted(alive))
        raise SupertesterTimeout(
            f"expected {label} to exit within {timeout}s, still alive: {details}. "
            "Did the component send the stop signal, and does the process handle it?",
            what=label,
            timeout=timeout,
        )


async def _wait_exited(pids: Iterable[int], timeout: float) -> set[int]:
    """Wait up to ``timeout`` for the processes to exit; return the pids still alive."""
    alive = {pid for pid in pids if is_alive(pid)}
    if not alive or timeout <= 0:
        return alive
    loop = asyncio.get_running_loop()
    try:
        fds = _open_pidfds(alive)
    except _NoPidfd:
        procs = [psutil.Process(pid) for pid in alive]
        _, still = await asyncio.to_thread(psutil.wait_procs, procs, timeout)
        return {proc.pid for proc in still if is_alive(proc.pid)}
    everyone_gone = asyncio.Event()

    def exited(pid: int) -> None:
        loop.remove_reader(fds[pid])
        alive.discard(pid)
        if not alive:
            everyone_gone.set()

    try:
        alive.intersection_update(fds)
        for pid, fd in fds.items():
            loop.add_reader(fd, exited, pid)
        if alive:
            try:
                async with asyncio.timeout(timeout):
                    await everyone_gone.wait()
            except TimeoutError:
                pass
        return {pid for pid in alive if is_alive(pid)}
    finally:
        for fd in fds.values():
            loop.remove_reader(fd)
            os.close(fd)


def _wait_exited_blocking(pids: Iterable[int], timeout: float) -> set[int]:
    """Block up to ``timeout`` for the processes to exit; return the pids still alive."""
    alive = {pid for pid in pids if is_alive(pid)}
    if not alive or timeout <= 0:
        return alive
    try:
        fds = _open_pidfds(alive)
    except _NoPidfd:
        _, still = psutil.wait_procs([psutil.Process(pid) for pid in alive], timeout)
        return {proc.pid for proc in still if is_alive(proc.pid)}
    try:
        by_fd = {fd: pid for pid, fd in fds.items()}
        alive.intersection_update(fds)
        poller = select.poll()
        for fd in by_fd:
            poller.register(fd, select.POLLIN)
        deadline = time.monotonic() + timeout
        while alive:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            for fd, _ in poller.poll(remaining * 1000):
                poller.unregister(fd)
                alive.discard(by_fd[fd])
        return {pid for pid in alive if is_alive(pid)}
    finally:
        for fd in fds.values():
            os.close(fd)


class _NoPidfd(Exception):
    """Raised when this system cannot give pidfds (not Linux, or a kernel before 5.3)."""


def _open_pidfds(pids: Iterable[int]) -> dict[int, int]:
    pidfd_open = getattr(os, "pidfd_open", None)
    if pidfd_open is None:
        raise _NoPidfd
    fds: dict[int, int] = {}
    try:
        for pid in pids:
            try:
                fds[pid] = pidfd_open(pid)
            except ProcessLookupError:  # already gone (and reaped)
                continue
    except OSError as exc:
        for fd in fds.values():
            os.close(fd)
        raise _NoPidfd from exc
    return fds
