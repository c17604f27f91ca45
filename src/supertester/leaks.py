"""Leak checks: prove that a block stopped everything it started.

Each check takes a :meth:`~LeakCheck.snapshot` when the block starts and
reports, from :meth:`~LeakCheck.check` (or :meth:`~LeakCheck.check_async`),
what was started during the block and is still there, after a bounded grace
for things that are already on their way out. Every check is also a (sync and
async) context manager that raises :class:`~supertester.LeakError`::

    async with TaskLeakCheck(), ProcessLeakCheck():
        async with Pool(...) as pool:
            ...

This module holds the base class and the task, thread and fd checks; the
process check lives in :mod:`supertester.process_leaks`.
"""

from __future__ import annotations

import abc
import asyncio
import os
import sys
import threading
import time
import weakref
from dataclasses import dataclass
from typing import ClassVar

import psutil

from supertester._aio import checkpoint
from supertester._blocks import Block
from supertester.errors import LeakError

__all__ = [
    "DEFAULT_THREAD_ALLOW",
    "FdLeakCheck",
    "Leak",
    "LeakCheck",
    "TaskLeakCheck",
    "ThreadLeakCheck",
]

DEFAULT_THREAD_ALLOW: tuple[str, ...] = (
    "asyncio_",  # the event loop's default executor (run_in_executor, to_thread); lives with the loop
    "waitpid-",  # asyncio's ThreadedChildWatcher: ends when its child exits (the process check covers it)
    "ThreadPoolExecutor-",  # shared executors (grpc servers, libraries) owned outside the test
    "pydevd.",  # debugger
)
"""Thread-name prefixes :class:`ThreadLeakCheck` ignores unless told otherwise."""


@dataclass(frozen=True)
class Leak:
    """One thing left behind.

    Attributes:
        kind: ``"process"``, ``"task"``, ``"thread"`` or ``"fd"``.
        description: what it is (pid and command line, task repr, thread name, fd target).
    """

    kind: str
    description: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.description}"


class LeakCheck(Block, abc.ABC):
    """Base class of the leak checks: snapshot at the start, check at the end."""

    kind: ClassVar[str]

    def __init__(self) -> None:
        self._snapped = False

    @abc.abstractmethod
    def snapshot(self) -> None:
        """Record what exists now; anything new at :meth:`check` time is a candidate leak."""

    @abc.abstractmethod
    def check(self) -> list[Leak]:
        """Report what was started since the snapshot and is still there (blocking grace)."""

    async def check_async(self) -> list[Leak]:
        """Like :meth:`check`, but waits its grace without blocking the event loop."""
        return self.check()

    def _require_snapshot(self) -> None:
        if not self._snapped:
            raise RuntimeError(
                f"{type(self).__name__}.check() called before snapshot(); "
                "call snapshot() when the block starts (or use it as a context manager)"
            )

    def _begin(self, *, in_loop: bool) -> None:
        self.snapshot()

    def _end(self, exc: BaseException | None) -> None:
        _report_leaks(self.check(), exc, context=type(self).__name__)

    async def _end_async(self, exc: BaseException | None) -> None:
        _report_leaks(await self.check_async(), exc, context=type(self).__name__)


def _report_leaks(leaks: list[Leak], exc: BaseException | None, *, context: str = "") -> None:
    """Raise :class:`LeakError` for ``leaks``; if the block already failed, note them on its error.

    Raises:
        LeakError: there are leaks and the block did not raise.
    """
    if not leaks:
        return
    error = LeakError(leaks, context=context)
    if exc is None:
        raise error
    exc.add_note(str(error))


# -- asyncio tasks -----------------------------------------------------------------------------


class TaskLeakCheck(LeakCheck):
    """Reports asyncio tasks created during the block that are still pending at its end.

    Args:
        grace: real seconds :meth:`check_async` waits for new tasks to finish
            on their own before calling them leaked (an event wait on the tasks).
        kill_leaked: cancel the leaked tasks, so they do not outlive the test.
    """

    kind = "task"

    def __init__(self, *, grace: float = 1.0, kill_leaked: bool = True) -> None:
        super().__init__()
        self.grace = grace
        self.kill_leaked = kill_leaked
        self._loop: asyncio.AbstractEventLoop | None = None
        self._before: weakref.WeakSet[asyncio.Task[object]] = weakref.WeakSet()

    def snapshot(self) -> None:
        """Record the running loop's tasks.

        Raises:
            RuntimeError: there is no running event loop.
        """
        self._loop = asyncio.get_running_loop()
        self._before = weakref.WeakSet(asyncio.all_tasks(self._loop))
        self._snapped = True

    def _candidates(self) -> list[asyncio.Task[object]]:
        assert self._loop is not None
        current = asyncio.current_task(self._loop) if self._loop.is_running() else None
        return [
            task
            for task in asyncio.all_tasks(self._loop)
            if task not in self._before and task is not current and not task.done()
        ]

    def check(self) -> list[Leak]:
        """Report pending new tasks now, without a grace (there is no loop turn to wait in)."""
        self._require_snapshot()
        leaked = self._candidates()
        if self.kill_leaked:
            for task in leaked:
                task.cancel()
        return [Leak(self.kind, self._describe(task)) for task in leaked]

    async def check_async(self) -> list[Leak]:
        """Let the loop run, wait up to ``grace`` for new tasks to finish, report the rest."""
        self._require_snapshot()
        await checkpoint(3)
        leaked = self._candidates()
        if leaked and self.grace > 0:
            await asyncio.wait(leaked, timeout=self.grace)
            leaked = [task for task in leaked if not task.done()]
        leaks = [Leak(self.kind, self._describe(task)) for task in leaked]
        if self.kill_leaked and leaked:
            for task in leaked:
                task.cancel()
            await asyncio.wait(leaked, timeout=self.grace or None)
        return leaks

    @staticmethod
    def _describe(task: asyncio.Task[object]) -> str:
        coro = task.get_coro()
        name = getattr(coro, "__qualname__", repr(coro))
        where = ""
        stack = task.get_stack(limit=1)
        if stack:
            frame = stack[-1]
            where = f", suspended at {frame.f_code.co_filename}:{frame.f_lineno}"
        return f"task {task.get_name()!r} running {name}(){where}"


# -- threads -----------------------------------------------------------------------------------


class ThreadLeakCheck(LeakCheck):
    """Reports threads started during the block that are still alive at its end.

    Args:
        grace: real seconds to wait (``Thread.join``) for new threads to end.
        allow: thread-name prefixes never reported (see :data:`DEFAULT_THREAD_ALLOW`).
    """

    kind = "thread"

    def __init__(
        self, *, grace: float = 1.0, allow: tuple[str, ...] = DEFAULT_THREAD_ALLOW
    ) -> None:
        super().__init__()
        self.grace = grace
        self.allow = tuple(allow)
        self._before: set[int] = set()

    def snapshot(self) -> None:
        """Record the threads alive now."""
        self._before = {id(thread) for thread in threading.enumerate()}
        self._snapped = True

    def _candidates(self) -> list[threading.Thread]:
        return [
            thread
            for thread in threading.enumerate()
            if id(thread) not in self._before
            and thread is not threading.current_thread()
            and not thread.name.startswith(self.allow)
        ]

    def check(self) -> list[Leak]:
        """Join new threads for up to ``grace`` seconds in all; report those still alive."""
        self._require_snapshot()
        return self._join(self._candidates())

    async def check_async(self) -> list[Leak]:
        """Like :meth:`check`, joining off the event loop so loop-bound threads can finish."""
        self._require_snapshot()
        await checkpoint(3)
        candidates = self._candidates()
        if not candidates:
            return []
        return await asyncio.to_thread(self._join, candidates)

    def _join(self, candidates: list[threading.Thread]) -> list[Leak]:
        deadline = time.monotonic() + self.grace
        for thread in candidates:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        frames = sys._current_frames()
        leaks = []
        for thread in candidates:
            if not thread.is_alive():
                continue
            where = ""
            frame = frames.get(thread.ident) if thread.ident is not None else None
            if frame is not None:
                where = f", at {frame.f_code.co_filename}:{frame.f_lineno}"
            leaks.append(Leak(self.kind, f"thread {thread.name!r} (daemon={thread.daemon}){where}"))
        return leaks


# -- file descriptors --------------------------------------------------------------------------


class FdLeakCheck(LeakCheck):
    """Reports file descriptors opened during the block and still open at its end.

    Reads ``/proc/self/fd`` (Linux) to name each fd's target; elsewhere it
    compares counts from ``psutil.Process().num_fds()``.

    Args:
        tolerance: how many more open fds than at the start are accepted
            (other threads of the process may open some meanwhile).
    """

    kind = "fd"

    def __init__(self, *, tolerance: int = 0) -> None:
        super().__init__()
        self.tolerance = tolerance
        self._before: dict[int, str] = {}
        self._before_count = 0

    def snapshot(self) -> None:
        """Record the open fds."""
        self._before = _open_fds()
        self._before_count = psutil.Process().num_fds()
        self._snapped = True

    def check(self) -> list[Leak]:
        """Report new fds if the net growth exceeds ``tolerance``."""
        self._require_snapshot()
        now = _open_fds()
        count = psutil.Process().num_fds()
        growth = count - self._before_count
        if growth <= self.tolerance:
            return []
        new = {fd: target for fd, target in now.items() if self._before.get(fd) != target}
        if not new:
            return [Leak(self.kind, f"{growth} more open fds than at the start")]
        return [Leak(self.kind, f"fd {fd} -> {target}") for fd, target in sorted(new.items())]


def _open_fds() -> dict[int, str]:
    directory = "/proc/self/fd"
    if not os.path.isdir(directory):
        return {}
    fds: dict[int, str] = {}
    for entry in os.listdir(directory):
        try:
            fds[int(entry)] = os.readlink(os.path.join(directory, entry))
        except OSError:  # the fd listdir itself used, or one closed meanwhile
            continue
    return fds
