"""SyncPool: the same pool, blocking, from threads and from inside a running event loop."""

from __future__ import annotations

import asyncio
import tempfile
import threading
from typing import TYPE_CHECKING

import pytest

import snakepit
from snakepit.testing import assert_no_worker_left

if TYPE_CHECKING:
    from collections.abc import Iterator

ADAPTER = "snakepit.examples.showcase:Showcase"


@pytest.fixture
def sync_pool() -> Iterator[snakepit.SyncPool]:
    with tempfile.TemporaryDirectory(prefix="sp-reg-") as registry:
        pool = snakepit.SyncPool(
            adapter=ADAPTER,
            size=2,
            heartbeat_interval=None,
            registry_dir=registry,
            shutdown_grace=2.0,
        )
        with pool:
            pids = {w.pid for w in pool.workers() if w.pid}
            yield pool
        assert_no_worker_left(pids)


class TestSyncPool:
    def test_execute_and_stream_from_plain_threads(self, sync_pool: snakepit.SyncPool) -> None:
        """Several plain threads call one SyncPool at once; streams are plain iterators."""
        results: list[object] = []
        errors: list[BaseException] = []

        def work(i: int) -> None:
            try:
                results.append(sync_pool.execute("add", {"a": i, "b": 1}))
                results.append(list(sync_pool.stream("count", {"n": 3})))
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert not errors
        assert sorted(r for r in results if isinstance(r, int)) == [i + 1 for i in range(8)]
        assert results.count([{"i": 0}, {"i": 1}, {"i": 2}]) == 8

    async def test_works_where_an_event_loop_already_runs(
        self, sync_pool: snakepit.SyncPool
    ) -> None:
        """Called from a coroutine (as in Jupyter, a loop runs in this thread), SyncPool still works."""
        asyncio.get_running_loop()  # a loop runs in this thread
        assert sync_pool.execute("ping") == {"status": "pong"}
        assert list(sync_pool.stream("count", {"n": 2})) == [{"i": 0}, {"i": 1}]

    def test_errors_are_the_same_typed_errors(self, sync_pool: snakepit.SyncPool) -> None:
        """A tool error comes back as ToolError, exactly as with Pool."""
        with pytest.raises(snakepit.ToolError, match="nope"):
            sync_pool.execute("fail", {"message": "nope"})
        assert "SyncPool" in repr(sync_pool)

    def test_closed_sync_pool_refuses_calls(self) -> None:
        """A SyncPool that is not started says so."""
        pool = snakepit.SyncPool(adapter=ADAPTER, size=1)
        with pytest.raises(snakepit.PoolClosedError, match="not started"):
            pool.execute("ping")


class TestSyncSessions:
    def test_sessions_variables_and_host_tools_block(self, sync_pool: snakepit.SyncPool) -> None:
        """From a plain thread: a session's calls, its variables, a watch and host tools."""
        sync_pool.register_host_tool("double", lambda x: 2 * x)
        with sync_pool.session("nb-1") as session:
            session.variables.register("steps", "integer", 0)
            assert session.execute("bump", {"name": "steps"}) == 1
            assert session.execute("call_host", {"name": "double", "args": {"x": 21}}) == 42
            var = session.variables.get("steps")
            assert (var.value, var.version) == (1, 2)
            assert [c["i"] for c in session.stream("count", {"n": 3})] == [0, 1, 2]
            watch = session.variables.watch(["steps"])
            session.variables.set("steps", 5)
            update = next(iter(watch))
            assert (update.name, update.value) == ("steps", 5)
        assert [s.id for s in sync_pool.sessions.list()] == ["nb-1"]
        assert sync_pool.sessions.delete("nb-1") is True
        assert sync_pool.sessions.list() == []
