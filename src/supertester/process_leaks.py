"""The process leak check: children of this process, and members of given process groups.

A process started during the block (a descendant of this process, or a
member of a watched process group) that is still alive at its end is a leak,
after a bounded grace in which exiting processes may finish (an event wait on
pidfds, never a poll). With ``kill_leaked`` the leaks are SIGKILLed and waited
for, so a failing test leaves no orphans behind. The check never reaps: the
exit status stays with whoever started the process (its ``Popen.wait()``).

Orphans re-parented to init are no longer our descendants; watch their
process group (``start_new_session=True`` makes the child a group leader)
to catch them.
"""

from __future__ import annotations

import contextlib
import os
import signal
from typing import TYPE_CHECKING

import psutil

from supertester.leaks import Leak, LeakCheck
from supertester.processes import _wait_exited, _wait_exited_blocking, describe_process

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

__all__ = ["ProcessLeakCheck"]

_Key = tuple[int, float]  # (pid, create_time): a pid alone may be reused


class ProcessLeakCheck(LeakCheck):
    """Reports processes started during the block that are still alive at its end.

    Args:
        grace: real seconds to wait for candidate processes to exit before
            calling them leaked.
        kill_leaked: SIGKILL leaked processes (and wait for them, bounded).
        process_groups: process-group ids to watch besides this process's
            descendants, or a callable returning them at check time (groups
            are often created during the block); see also :meth:`watch_group`.
        report_zombies: also report children that exited but were never
            reaped (off by default: reaping is asynchronous in asyncio).
    """

    kind = "process"

    def __init__(
        self,
        *,
        grace: float = 2.0,
        kill_leaked: bool = True,
        process_groups: Iterable[int] | Callable[[], Iterable[int]] = (),
        report_zombies: bool = False,
    ) -> None:
        super().__init__()
        self.grace = grace
        self.kill_leaked = kill_leaked
        self.report_zombies = report_zombies
        self._group_source = process_groups if callable(process_groups) else None
        self._groups: set[int] = set() if callable(process_groups) else set(process_groups)
        self._before: set[_Key] = set()

    def watch_group(self, pgid: int) -> None:
        """Also report live members of process group ``pgid`` at check time."""
        self._groups.add(pgid)

    def snapshot(self) -> None:
        """Record the descendants (and watched group members) alive now."""
        before = set()
        for proc in self._scan():
            with contextlib.suppress(psutil.NoSuchProcess):
                before.add(_key(proc))
        self._before = before
        self._snapped = True

    def _scan(self) -> list[psutil.Process]:
        procs = {proc.pid: proc for proc in psutil.Process().children(recursive=True)}
        groups = set(self._groups)
        if self._group_source is not None:
            groups.update(self._group_source())
        groups.discard(os.getpgrp())  # our own group holds pytest itself
        if groups:
            for proc in psutil.process_iter():
                with contextlib.suppress(OSError):
                    if os.getpgid(proc.pid) in groups and proc.pid != os.getpid():
                        procs.setdefault(proc.pid, proc)
        return list(procs.values())

    def _candidates(self) -> list[psutil.Process]:
        found = []
        for proc in self._scan():
            try:
                key = _key(proc)
                zombie = proc.status() == psutil.STATUS_ZOMBIE
            except psutil.NoSuchProcess:
                continue
            if key in self._before or (zombie and not self.report_zombies):
                continue
            found.append(proc)
        return found

    def check(self) -> list[Leak]:
        """Wait up to ``grace`` for new processes to exit (blocking); report and kill the rest."""
        self._require_snapshot()
        candidates = self._candidates()
        if not candidates:
            return []
        alive = _wait_exited_blocking([proc.pid for proc in candidates], self.grace)
        leaked = [proc for proc in candidates if proc.pid in alive or self._zombie(proc)]
        leaks = [Leak(self.kind, describe_process(proc.pid)) for proc in leaked]
        if self.kill_leaked and leaked:
            self._kill(leaked)
            _wait_exited_blocking([proc.pid for proc in leaked], self.grace)
        return self._mark_killed(leaks)

    async def check_async(self) -> list[Leak]:
        """Like :meth:`check`, waiting on the event loop (pidfd readers), not blocking it."""
        self._require_snapshot()
        candidates = self._candidates()
        if not candidates:
            return []
        alive = await _wait_exited([proc.pid for proc in candidates], self.grace)
        leaked = [proc for proc in candidates if proc.pid in alive or self._zombie(proc)]
        leaks = [Leak(self.kind, describe_process(proc.pid)) for proc in leaked]
        if self.kill_leaked and leaked:
            self._kill(leaked)
            await _wait_exited([proc.pid for proc in leaked], self.grace)
        return self._mark_killed(leaks)

    def _zombie(self, proc: psutil.Process) -> bool:
        if not self.report_zombies:
            return False
        try:
            return proc.status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    def _mark_killed(self, leaks: list[Leak]) -> list[Leak]:
        if not self.kill_leaked:
            return leaks
        return [Leak(leak.kind, f"{leak.description} (killed by the leak check)") for leak in leaks]

    @staticmethod
    def _kill(procs: list[psutil.Process]) -> None:
        for proc in procs:
            with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                proc.send_signal(signal.SIGKILL)


def _key(proc: psutil.Process) -> _Key:
    return (proc.pid, proc.create_time())
