"""Behaviour under load (relative, never absolute times): saturation answers at once, nothing leaks."""

from __future__ import annotations

import asyncio

import snakepit
from snakepit.events import RequestDispatched, WorkerReady
from snakepit.testing import isolated_pool, pool_mailbox


class TestPoolSaturation:
    async def test_flood_is_split_into_served_and_rejected(self) -> None:
        """A flood beyond capacity + max_queue: the overflow is rejected at once, the rest served."""
        async with isolated_pool(size=2, max_queue=10) as pool:
            box = pool_mailbox(pool)
            blockers = [asyncio.ensure_future(pool.execute("hang", timeout=None)) for _ in range(2)]
            for _ in blockers:
                await box.assert_receive(RequestDispatched, 10)
            flood = [
                asyncio.ensure_future(pool.execute("add", {"a": i, "b": 0})) for i in range(40)
            ]
            await asyncio.wait(flood, timeout=0)  # one loop turn: rejections happen at submit time
            rejected = [f for f in flood if f.done()]
            assert len(rejected) == 30
            assert all(isinstance(f.exception(), snakepit.PoolSaturatedError) for f in rejected)
            assert pool.stats().queued == 10
            for b in blockers:
                b.cancel()
            await asyncio.gather(*blockers, return_exceptions=True)
            served = [f for f in flood if f not in rejected]
            assert sorted(await asyncio.gather(*served)) == sorted(flood.index(f) for f in served)
            assert pool.stats().saturated == 30
            for _ in blockers:  # a cancelled synchronous call's worker is replaced
                await box.assert_receive(WorkerReady, 10)
            assert pool.stats().live_workers == 2
