"""Isolated pools for tests: private registry, no background heartbeat, nothing left behind."""

from __future__ import annotations

import contextlib
import itertools
import os
import select
import tempfile
import time
from contextlib import asynccontextmanager, contextmanager
from typing import TYPE_CHECKING, Any

import psutil

from snakepit.events import WorkerReady
from snakepit.pool import Pool
from snakepit.testing import _servers as servers
from snakepit.testing._servers import SHOWCASE

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

    from snakepit.pool import SyncPool

__all__ = [
    "assert_no_worker_left",
    "cleanup_sessions",
    "isolated_pool",
    "isolated_sync_pool",
    "pool_mailbox",
]

_names = itertools.count(1)


def _test_defaults(options: dict[str, Any]) -> dict[str, Any]:
    options.setdefault("size", 1)
    options.setdefault("heartbeat_interval", None)  # tests drive time; no background pings
    options.setdefault("shutdown_grace", 2.0)
    options.setdefault("drain_timeout", 2.0)
    options.setdefault("startup_timeout", 20.0)
    options.setdefault("name", f"t{os.getpid()}-{next(_names)}")
    if servers.default_transport is not None:
        options.setdefault("transport", servers.default_transport)
    return options


@asynccontextmanager
async def isolated_pool(adapter: str = SHOWCASE, **options: Any) -> AsyncIterator[Pool]:
    """A started pool with its own registry directory; at exit it is closed and every worker
    process it ever started is proven gone.

    Options are ``PoolConfig`` fields (``size`` defaults to 1, heartbeats are off).

    Raises:
        AssertionError: a worker process outlived the pool.
    """
    with contextlib.ExitStack() as stack:
        if "registry_dir" not in options:
            options["registry_dir"] = stack.enter_context(
                tempfile.TemporaryDirectory(prefix="sp-reg-")
            )
        pool = Pool(adapter=adapter, **_test_defaults(options))
        pids: set[int] = set()
        remove = pool.events.add_listener(
            lambda e: pids.add(e.pid) if isinstance(e, WorkerReady) else None, WorkerReady
        )
        try:
            async with pool:
                yield pool
        finally:
            remove()
            assert_no_worker_left(pids)


@contextmanager
def isolated_sync_pool(adapter: str = SHOWCASE, **options: Any) -> Iterator[SyncPool]:
    """:func:`isolated_pool` for synchronous code: a started ``SyncPool`` with its own
    registry directory; at exit it is closed and every worker it started is proven gone.

    Raises:
        AssertionError: a worker process outlived the pool.
    """
    from snakepit.pool import SyncPool

    with contextlib.ExitStack() as stack:
        if "registry_dir" not in options:
            options["registry_dir"] = stack.enter_context(
                tempfile.TemporaryDirectory(prefix="sp-reg-")
            )
        pool = SyncPool(adapter=adapter, **_test_defaults(options))
        pids: set[int] = set()
        remove = pool.events.add_listener(
            lambda e: pids.add(e.pid) if isinstance(e, WorkerReady) else None, WorkerReady
        )
        try:
            with pool:
                yield pool
        finally:
            remove()
            assert_no_worker_left(pids)


def assert_no_worker_left(pids: set[int], timeout: float = 10.0) -> None:
    """Wait (bounded) for each pid to be gone; fail naming the survivors (and kill them).

    Raises:
        AssertionError: a process still runs after ``timeout`` seconds.
    """
    procs = []
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess):
            procs.append(psutil.Process(pid))
    if hasattr(os, "pidfd_open"):
        # Ended is enough: a worker orphaned by a dead fork server stays a zombie until init
        # reaps it, which some inits do only every few seconds.
        alive = _wait_ended(procs, timeout)
    else:  # pragma: no cover - not Linux
        _, alive = psutil.wait_procs(procs, timeout=timeout)
    survivors = []
    for p in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            if p.status() != psutil.STATUS_ZOMBIE:
                survivors.append(p)
    for p in survivors:
        with contextlib.suppress(psutil.Error):
            p.kill()
    assert not survivors, f"worker processes outlived their pool: {[p.pid for p in survivors]}"


def _wait_ended(procs: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """The processes still running after ``timeout`` (each watched through a pidfd)."""
    fds: dict[int, psutil.Process] = {}
    try:
        for p in procs:
            with contextlib.suppress(ProcessLookupError):
                if p.is_running():  # the pid is still this process (start time checked)
                    fds[os.pidfd_open(p.pid)] = p
        poller = select.poll()
        for fd in fds:
            poller.register(fd, select.POLLIN)
        deadline = time.monotonic() + timeout
        pending = set(fds)
        while pending:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            for fd, _ in poller.poll(left * 1000):
                pending.discard(fd)
                poller.unregister(fd)
        return [fds[fd] for fd in pending]
    finally:
        for fd in fds:
            os.close(fd)


def pool_mailbox(pool: Pool) -> Any:
    """A ``supertester.Mailbox`` that receives every event of ``pool`` from now on."""
    from supertester import Mailbox

    box: Any = Mailbox(name=f"events of {pool.name}")
    pool.events.add_listener(box.put)
    return box


async def cleanup_sessions(pool: Pool, pattern: str = "*") -> list[str]:
    """Delete every live session of ``pool`` whose id matches ``pattern`` (``fnmatch``).

    Their variables go with them and their watches end. Returns the deleted ids.
    """
    import fnmatch

    deleted = []
    for session in await pool.sessions.list():
        if fnmatch.fnmatchcase(session.id, pattern) and await pool.sessions.delete(session.id):
            deleted.append(session.id)
    return deleted
