"""A Ray-placed pool on a simulated two-node cluster: placement, and the loss of a node."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import pytest

import snakepit
from snakepit.events import WorkerReady
from snakepit.pool._observe import worker_handle
from tests.ray.conftest import actors_of, is_dead
from tests.support.executor_tasks import Gate

if TYPE_CHECKING:
    from collections.abc import Iterator

TOOLS = "tests.support.adapters:RetryTools"
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 2})
    try:
        ray.init(address=c.address, include_dashboard=False, log_to_driver=False)
        yield c
    finally:
        ray.shutdown()
        c.shutdown()


def _node_of(worker: Any) -> str:
    return str(worker.placement.describe())


class TestSimulatedCluster:
    async def test_a_lost_node_fails_only_its_calls_and_its_workers_move(
        self, cluster: Any
    ) -> None:
        """Workers spread over two nodes; removing one fails exactly the calls its workers
        ran with WorkerCrashedError, the rest finish, and the pool returns to four workers,
        now placed on the surviving node."""
        node = cluster.add_node(num_cpus=2)
        cluster.wait_for_nodes()
        doomed = node.node_id
        gate = Gate()
        try:
            async with snakepit.Pool(
                adapter=TOOLS,
                size=4,
                launcher="ray",
                ray_options={"num_cpus": 0.5, "scheduling_strategy": "SPREAD"},
                backoff_initial=0.01,
                backoff_max=0.5,
                startup_timeout=60,
            ) as pool:
                on_doomed = {
                    w.id
                    for w in (worker_handle(pool, i.id) for i in pool.workers())
                    if doomed[:12] in _node_of(w)
                }
                assert 0 < len(on_doomed) < 4, [
                    _node_of(worker_handle(pool, i.id)) for i in pool.workers()
                ]
                ready = pool.events.subscribe(WorkerReady)
                calls = {
                    asyncio.ensure_future(pool.execute("gate", {"address": gate.address}))
                    for _ in range(4)
                }
                await asyncio.to_thread(gate.wait_started, 4)
                await asyncio.to_thread(cluster.remove_node, node)
                crashed: set[str] = set()
                while len(crashed) < len(on_doomed):
                    done, calls = await asyncio.wait(calls, return_when=asyncio.FIRST_COMPLETED)
                    for call in done:
                        with pytest.raises(snakepit.WorkerCrashedError) as info:
                            call.result()
                        crashed.add(info.value.worker_id)
                assert crashed == on_doomed
                gate.open("done")
                assert await asyncio.gather(*calls) == ["done"] * (4 - len(on_doomed))
                for _ in on_doomed:
                    await asyncio.wait_for(ready.get(), 90)
                assert pool.stats().live_workers == 4
                for info in pool.workers():
                    assert doomed[:12] not in _node_of(worker_handle(pool, info.id))
                assert (
                    await asyncio.gather(*(pool.execute("say", {"text": "."}) for _ in range(8)))
                    == [None] * 8
                )
                actors = actors_of(pool)
                assert len(actors) == 4
            assert all(is_dead(a) for a in actors)
        finally:
            gate.close()
