"""A Ray-placed pool on a local Ray instance: calls, streams, sessions, a killed actor."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import pytest

import snakepit
from snakepit.events import WorkerLost, WorkerReady
from snakepit.pool._observe import worker_handle
from tests.ray.conftest import actors_of, is_dead
from tests.support.executor_tasks import Gate

if TYPE_CHECKING:
    from collections.abc import Iterator

SHOWCASE = "snakepit.examples.showcase:Showcase"
TOOLS = "tests.support.adapters:RetryTools"
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module", autouse=True)
def local_ray() -> Iterator[None]:
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


class TestRayPlaced:
    async def test_four_actors_serve_calls_streams_and_sessions_and_none_survives_close(
        self,
    ) -> None:
        """Each worker is an actor's process, reached over TCP; session variables reach
        worker code through the host bridge; close() kills every actor."""
        async with snakepit.Pool(
            adapter=SHOWCASE, size=4, launcher="ray", ray_options={"num_cpus": 0.25}
        ) as pool:
            workers = pool.workers()
            assert len(workers) == 4 and all(w.pid is None for w in workers)
            assert len({w.address for w in workers}) == 4
            results = await asyncio.gather(
                *(pool.execute("add", {"a": i, "b": 1}) for i in range(20))
            )
            assert results == [i + 1 for i in range(20)]
            assert [c async for c in pool.stream("count", {"n": 50})] == [
                {"i": i} for i in range(50)
            ]
            async with pool.session("ray-s1") as session:
                await session.variables.register("x", "integer", 41)
                assert await session.execute("bump", {"name": "x"}) == 42
                assert (await session.variables.get("x")).value == 42
            actors = actors_of(pool)
            assert len(actors) == 4
        assert all(is_dead(a) for a in actors)
        assert actors_of(pool) == []

    async def test_a_killed_actor_fails_only_its_call_and_the_pool_returns_to_four(
        self,
    ) -> None:
        """Four calls run, one per worker; killing one actor fails exactly that call with
        WorkerCrashedError, the others finish, and a new actor fills the slot."""
        import ray

        gate = Gate()
        try:
            async with snakepit.Pool(
                adapter=TOOLS, size=4, launcher="ray", ray_options={"num_cpus": 0.25}
            ) as pool:
                lost = pool.events.subscribe(WorkerLost)
                ready = pool.events.subscribe(WorkerReady)
                calls = [
                    asyncio.ensure_future(pool.execute("gate", {"address": gate.address}))
                    for _ in range(4)
                ]
                await asyncio.to_thread(gate.wait_started, 4)
                victim: Any = worker_handle(pool, "w2")
                ray.kill(victim.placement._actor, no_restart=True)
                done, running = await asyncio.wait(calls, return_when=asyncio.FIRST_COMPLETED)
                (crashed,) = done
                with pytest.raises(snakepit.WorkerCrashedError, match="replacement") as info:
                    crashed.result()
                assert info.value.worker_id == "w2"
                assert len(running) == 3  # the other workers' calls still run
                gate.open("done")
                assert await asyncio.gather(*running) == ["done"] * 3
                event = await asyncio.wait_for(lost.get(), 30)
                assert event.worker_id == "w2" and event.restartable is True
                again = await asyncio.wait_for(ready.get(), 60)
                assert again.worker_id == "w2-2"
                assert pool.stats().live_workers == 4 and pool.stats().crashes == 1
                assert [c async for c in pool.stream("count", {"n": 3})] == [0, 1, 2]
                left = actors_of(pool)
            assert all(is_dead(a) for a in left)
        finally:
            gate.close()
