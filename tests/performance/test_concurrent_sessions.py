"""Many sessions at once: each keeps its own worker-local state under concurrency."""

from __future__ import annotations

import asyncio

from snakepit.testing import isolated_pool


class TestConcurrentSessions:
    async def test_fifty_sessions_each_see_their_own_state(self) -> None:
        """50 concurrent strict sessions on 2 workers each recall the value they stored."""
        async with isolated_pool(size=2, affinity="strict_queue") as pool:

            async def run(i: int) -> object:
                session = pool.session(f"user-{i}")
                await session.execute("remember", {"key": f"k{i}", "value": i})
                return await session.execute("recall", {"key": f"k{i}"})

            results = await asyncio.gather(*(run(i) for i in range(50)))
            assert results == list(range(50))

    async def test_strict_sessions_wait_for_their_worker(self) -> None:
        """In strict_queue mode, 20 sessions hammering 2 workers all land on their first worker."""
        async with isolated_pool(size=2, affinity="strict_queue") as pool:

            async def run(i: int) -> set[object]:
                session = pool.session(f"s{i}")
                return {await session.execute("pid") for _ in range(5)}

            results = await asyncio.gather(*(run(i) for i in range(20)))
            assert all(len(pids) == 1 for pids in results)
