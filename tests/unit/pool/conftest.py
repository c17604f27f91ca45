"""Shared fixtures for the pool's unit tests: a pool of in-process MockWorkers on a fake clock."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

import snakepit
from snakepit.testing import MockWorker, in_process_workers, pool_mailbox
from supertester import FakeClock, Mailbox

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

MOCK = "snakepit.testing.adapters:MockAdapter"
BOUND = 5.0


class Harness:
    def __init__(self, pool: snakepit.Pool, workers: list[MockWorker], clock: FakeClock) -> None:
        self.pool = pool
        self.workers = workers
        self.clock = clock
        self.box: Mailbox[object] = pool_mailbox(pool)

    def live(self) -> list[MockWorker]:
        return [w for w in self.workers if w.state.value == "ready"]


@pytest.fixture
async def harness(request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    """A started pool of MockWorkers (size 2 unless parametrized) on a FakeClock."""
    options = getattr(request, "param", {})
    workers: list[MockWorker] = []
    clock = FakeClock()
    pool = snakepit.Pool(
        adapter=MOCK,
        worker_factory=in_process_workers(workers),
        clock=clock,
        heartbeat_interval=None,
        **{"size": 2, **options},
    )
    async with pool:
        yield Harness(pool, workers, clock)
