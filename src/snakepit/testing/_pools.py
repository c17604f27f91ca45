"""Isolated pools for tests: private registry, no background heartbeat, nothing left behind."""

from __future__ import annotations

import contextlib
import itertools
import os
import tempfile
from contextlib import asynccontextmanager, contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import psutil

from snakepit.events import WorkerReady
from snakepit.pool import Pool
from snakepit.testing import _servers as servers
from snakepit.testing._servers import SHOWCASE

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterator

    from snakepit.pool import SyncPool

__all__ = [
    "assert_no_worker_left",
    "cleanup_sessions",
    "isolated_pool",
    "isolated_sync_pool",
    "pool_mailbox",
]

_names = itertools.count(1)
_P = TypeVar("_P", bound="Pool | SyncPool")


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


@contextmanager
def _checked(make: Callable[..., _P], adapter: str, options: dict[str, Any]) -> Iterator[_P]:
    """A pool made by ``make`` with its own registry directory (unless ``options`` name one),
    whose worker processes are proven gone when the block ends."""
    with contextlib.ExitStack() as stack:
        if "registry_dir" not in options:
            options["registry_dir"] = stack.enter_context(
                tempfile.TemporaryDirectory(prefix="sp-reg-")
            )
        pool = make(adapter=adapter, **_test_defaults(options))
        pids: set[int] = set()
        remove = pool.events.add_listener(
            lambda e: pids.add(e.pid) if isinstance(e, WorkerReady) else None, WorkerReady
        )
        try:
            yield pool
        finally:
            remove()
            assert_no_worker_left(pids)


@asynccontextmanager
async def isolated_pool(adapter: str = SHOWCASE, **options: Any) -> AsyncIterator[Pool]:
    """A started pool with its own registry directory; at exit it is closed and every worker
    process it ever started is proven gone.

    Options are ``PoolConfig`` fields (``size`` defaults to 1, heartbeats are off).

    Raises:
        AssertionError: a worker process outlived the pool.
    """
    with _checked(Pool, adapter, options) as pool:
        async with pool:
            yield pool


@contextmanager
def isolated_sync_pool(adapter: str = SHOWCASE, **options: Any) -> Iterator[SyncPool]:
    """:func:`isolated_pool` for synchronous code: a started ``SyncPool`` with its own
    registry directory; at exit it is closed and every worker it started is proven gone.

    Raises:
        AssertionError: a worker process outlived the pool.
    """
    from snakepit.pool import SyncPool

    with _checked(SyncPool, adapter, options) as pool, pool:
        yield pool


def assert_no_worker_left(pids: set[int], timeout: float = 10.0) -> None:
    """Wait (bounded) for each pid to be gone; fail naming the survivors (and kill them).

    Raises:
        AssertionError: a process still runs after ``timeout`` seconds.
    """
    from supertester.processes import _wait_exited_blocking

    procs = []
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess):
            procs.append(psutil.Process(pid))  # who it is now: a reused pid is not ours
    # Ended is enough: a worker orphaned by a dead fork server stays a zombie until init
    # reaps it, which some inits do only every few seconds.
    alive = _wait_exited_blocking([p.pid for p in procs], timeout)
    survivors = [p for p in procs if p.pid in alive and p.is_running()]
    for p in survivors:
        with contextlib.suppress(psutil.Error):
            p.kill()
    assert not survivors, f"worker processes outlived their pool: {[p.pid for p in survivors]}"


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
