"""The snakepit pytest plugin (entry point ``pytest11: snakepit``).

Fixtures for testing adapters and pools (see docs/testing.md):

* ``snakepit_pool`` - an async factory: ``pool = await snakepit_pool(adapter, size=2, ...)``
  gives a started, isolated pool that is closed at teardown, proving its workers are gone;
* ``snakepit_mock_pool`` - a factory for pools of in-process ``MockWorker`` s (no processes);
* ``snakepit_worker`` - an async factory for one standalone worker process (protocol tests).
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

    from snakepit.pool import Pool
    from snakepit.testing.mock import MockWorker
    from snakepit.worker import WorkerHandle


@pytest.fixture
async def snakepit_pool() -> AsyncIterator[Callable[..., Awaitable[Pool]]]:
    """Factory of isolated, started pools (real workers); all are closed and checked at teardown."""
    from snakepit.testing.pools import isolated_pool
    from snakepit.testing.servers import SHOWCASE

    async with contextlib.AsyncExitStack() as stack:

        async def make(adapter: str = SHOWCASE, **options: Any) -> Pool:
            return await stack.enter_async_context(isolated_pool(adapter, **options))

        yield make


@pytest.fixture
async def snakepit_mock_pool() -> AsyncIterator[
    Callable[..., Awaitable[tuple[Pool, list[MockWorker]]]]
]:
    """Factory of started pools of in-process MockWorkers: ``pool, workers = await make(size=2)``."""
    from snakepit.pool import Pool
    from snakepit.testing.mock import in_process_workers

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


@pytest.fixture
async def snakepit_worker() -> AsyncIterator[Callable[..., Awaitable[WorkerHandle]]]:
    """Factory of standalone worker processes (``with_python_server``), stopped at teardown."""
    from snakepit.testing.servers import SHOWCASE, with_python_server

    async with contextlib.AsyncExitStack() as stack:

        async def make(adapter: str = SHOWCASE, **options: Any) -> WorkerHandle:
            return await stack.enter_async_context(with_python_server(adapter, **options))

        yield make
