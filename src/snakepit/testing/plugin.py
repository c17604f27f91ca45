"""The snakepit pytest plugin (entry point ``pytest11: snakepit``).

Fixtures for testing adapters and pools (see docs/testing.md):

* ``snakepit_pool`` - an async factory: ``pool = await snakepit_pool(adapter, size=2, ...)``
  gives a started, isolated pool that is closed at teardown, proving its workers are gone;
* ``snakepit_mock_pool`` - a factory for pools of in-process ``MockWorker`` s (no processes);
* ``snakepit_worker`` - an async factory for one standalone worker process (protocol tests);
* ``snakepit_sync_pool`` - a plain factory of started, isolated ``SyncPool`` s, for sync tests.

The async fixtures are pytest-asyncio fixtures, so they work in its strict mode
(tests marked ``@pytest.mark.asyncio``) and in auto mode alike; the ``testing``
extra (``pip install 'pysnakepit[testing]'``) installs pytest and pytest-asyncio.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

    from snakepit.pool import Pool, SyncPool
    from snakepit.testing._mock import MockWorker
    from snakepit.worker import WorkerHandle

    _async_fixture = pytest.fixture
else:
    try:  # pytest-asyncio's own decorator: the fixtures then work in strict mode too
        from pytest_asyncio import fixture as _async_fixture
    except ImportError:  # pragma: no cover - another async plugin must run them
        _async_fixture = pytest.fixture


__all__ = ["snakepit_mock_pool", "snakepit_pool", "snakepit_sync_pool", "snakepit_worker"]


@_async_fixture
async def snakepit_pool() -> AsyncIterator[Callable[..., Awaitable[Pool]]]:
    """Factory of isolated, started pools (real workers); all are closed and checked at teardown."""
    from snakepit.testing._pools import isolated_pool
    from snakepit.testing._servers import SHOWCASE

    async with contextlib.AsyncExitStack() as stack:

        async def make(adapter: str = SHOWCASE, **options: Any) -> Pool:
            return await stack.enter_async_context(isolated_pool(adapter, **options))

        yield make


@_async_fixture
async def snakepit_mock_pool() -> AsyncIterator[
    Callable[..., Awaitable[tuple[Pool, list[MockWorker]]]]
]:
    """Factory of started pools of in-process MockWorkers: ``pool, workers = await make(size=2)``."""
    from snakepit.pool import Pool
    from snakepit.testing._mock import in_process_workers

    async with contextlib.AsyncExitStack() as stack:

        async def make(
            adapter: str = "snakepit.testing.adapters:MockAdapter", **options: Any
        ) -> tuple[Pool, list[MockWorker]]:
            workers: list[MockWorker] = []
            options.setdefault("heartbeat_interval", None)
            pool = Pool(adapter=adapter, worker_factory=in_process_workers(workers), **options)
            await stack.enter_async_context(pool)
            return pool, workers

        yield make


@_async_fixture
async def snakepit_worker() -> AsyncIterator[Callable[..., Awaitable[WorkerHandle]]]:
    """Factory of standalone worker processes (``with_python_server``), stopped at teardown."""
    from snakepit.testing._servers import SHOWCASE, with_python_server

    async with contextlib.AsyncExitStack() as stack:

        async def make(adapter: str = SHOWCASE, **options: Any) -> WorkerHandle:
            return await stack.enter_async_context(with_python_server(adapter, **options))

        yield make


@pytest.fixture
def snakepit_sync_pool() -> Iterator[Callable[..., SyncPool]]:
    """Factory of isolated, started SyncPools (real workers) for plain ``def`` tests; all are
    closed and their workers proven gone at teardown."""
    from snakepit.testing._pools import isolated_sync_pool
    from snakepit.testing._servers import SHOWCASE

    with contextlib.ExitStack() as stack:

        def make(adapter: str = SHOWCASE, **options: Any) -> SyncPool:
            return stack.enter_context(isolated_sync_pool(adapter, **options))

        yield make
