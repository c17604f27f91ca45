"""Isolation: a unique name and a private directory per test, and proof that nothing leaked.

::

    async with isolated("pool") as iso:
        pool = Pool(name=iso.name, runtime_dir=iso.path)
        ...
    # here: no child process, task or thread started inside is still running

The same object works with plain ``with`` in synchronous code (the task
check is then skipped: there is no loop to look at).
"""

from __future__ import annotations

import itertools
import os
import secrets
import shutil
import tempfile
from pathlib import Path

from supertester._blocks import Block
from supertester.leaks import (
    DEFAULT_THREAD_ALLOW,
    FdLeakCheck,
    Leak,
    LeakCheck,
    TaskLeakCheck,
    ThreadLeakCheck,
    _report_leaks,
)
from supertester.process_leaks import ProcessLeakCheck

__all__ = ["Isolation", "isolated", "unique_name"]

_counter = itertools.count(1)


def unique_name(prefix: str = "st") -> str:
    """A name no other test, process or xdist worker will produce: ``prefix-<random>-<n>``.

    It is short (sockets and process titles have small limits) and contains
    only letters, digits and ``-``.
    """
    return f"{prefix}-{secrets.token_hex(4)}-{next(_counter)}"


class Isolation(Block):
    """The isolated context of one block: its name, its private directory and its leak checks.

    Create it with :func:`isolated`; enter it with ``async with`` (all checks)
    or ``with`` (no task check).

    Attributes:
        name: a unique name for whatever the block starts (a pool, a registry).
        path: a private (0700), short-path directory removed at exit.
        leaks: the leaks found at exit (empty until then).
    """

    def __init__(
        self,
        prefix: str,
        *,
        processes: bool,
        tasks: bool,
        threads: bool,
        fds: bool,
        grace: float,
        kill_leaked: bool,
        thread_allow: tuple[str, ...],
        fd_tolerance: int,
        keep_path: bool,
    ) -> None:
        self.name = unique_name(prefix)
        self._prefix = prefix
        self._path: Path | None = None
        self._keep_path = keep_path
        self.leaks: list[Leak] = []
        self._checks: list[LeakCheck] = []
        self.process_check = (
            ProcessLeakCheck(grace=grace, kill_leaked=kill_leaked) if processes else None
        )
        self._task_check = TaskLeakCheck(grace=grace, kill_leaked=kill_leaked) if tasks else None
        self._other_checks: list[LeakCheck] = []
        if threads:
            self._other_checks.append(ThreadLeakCheck(grace=grace, allow=thread_allow))
        if fds:
            self._other_checks.append(FdLeakCheck(tolerance=fd_tolerance))

    @property
    def path(self) -> Path:
        """The private directory (0700) of this block.

        Raises:
            RuntimeError: the block has not been entered.
        """
        if self._path is None:
            raise RuntimeError("Isolation.path is available inside `with`/`async with` only")
        return self._path

    def unique(self, prefix: str) -> str:
        """Another unique name, e.g. for a second component in the same test."""
        return unique_name(f"{self._prefix}-{prefix}")

    def watch_process_group(self, pgid: int) -> None:
        """Also check process group ``pgid`` for leaks (for children that start their own session)."""
        if self.process_check is not None:
            self.process_check.watch_group(pgid)

    def _begin(self, *, in_loop: bool) -> None:
        checks: list[LeakCheck] = []
        if in_loop and self._task_check is not None:
            checks.append(self._task_check)  # first: cancelling a task may stop its processes
        if self.process_check is not None:
            checks.append(self.process_check)
        checks.extend(self._other_checks)
        for check in checks:
            check.snapshot()
        self._checks = checks
        # Short and private: Unix socket paths are limited to ~107 bytes.
        self._path = Path(tempfile.mkdtemp(prefix=f"st-{secrets.token_hex(3)}-"))
        os.chmod(self._path, 0o700)

    def _end(self, exc: BaseException | None) -> None:
        self._close([leak for check in self._checks for leak in check.check()], exc)

    async def _end_async(self, exc: BaseException | None) -> None:
        self._close([leak for check in self._checks for leak in await check.check_async()], exc)

    def _close(self, leaks: list[Leak], exc: BaseException | None) -> None:
        self.leaks = leaks
        if self._path is not None and not self._keep_path:
            shutil.rmtree(self._path, ignore_errors=True)
        _report_leaks(leaks, exc, context=f"isolated block {self.name!r}")

    def __repr__(self) -> str:
        return f"<Isolation {self.name} path={self._path}>"


def isolated(
    prefix: str = "test",
    *,
    processes: bool = True,
    tasks: bool = True,
    threads: bool = True,
    fds: bool = False,
    grace: float = 2.0,
    kill_leaked: bool = True,
    thread_allow: tuple[str, ...] = DEFAULT_THREAD_ALLOW,
    fd_tolerance: int = 0,
    keep_path: bool = False,
) -> Isolation:
    """An isolated block: unique name, private temp directory, leak checks at exit.

    Use ``async with isolated() as iso:`` in async code (checks processes,
    tasks and threads) or ``with isolated() as iso:`` in sync code (no task
    check). At exit the directory is removed and, if anything leaked,
    :class:`~supertester.LeakError` is raised naming each leak (or, when
    the block already raised, the leaks are added as a note to its error).

    Args:
        prefix: start of the unique name.
        processes: check child processes (and watched process groups).
        tasks: check asyncio tasks (async use only).
        threads: check threads (names starting with ``thread_allow`` are ignored).
        fds: check file descriptors (off by default: other threads open some).
        grace: real seconds each check waits for things already on their way out.
        kill_leaked: kill leaked processes and cancel leaked tasks.
        thread_allow: thread-name prefixes that are never leaks.
        fd_tolerance: net new fds accepted when ``fds`` is on.
        keep_path: keep the directory at exit (for debugging).

    Returns:
        The :class:`Isolation`, to enter.
    """
    return Isolation(
        prefix,
        processes=processes,
        tasks=tasks,
        threads=threads,
        fds=fds,
        grace=grace,
        kill_leaked=kill_leaked,
        thread_allow=thread_allow,
        fd_tolerance=fd_tolerance,
        keep_path=keep_path,
    )
