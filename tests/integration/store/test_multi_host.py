"""Several hosts, one set of sessions: two real host processes on one real redis-server.

Host A is a pool in this test; host B is another process (tests/support/redis_host.py)
with its own pool and workers. Both use the same Redis URL and prefix.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from snakepit.errors import SessionStoreUnavailableError
from snakepit.testing import isolated_pool

if TYPE_CHECKING:
    from types import TracebackType

    from tests.support.redis_server import RedisServer

BOUND = 30.0  # an upper bound on waits (a host process starts its pool), never a delay
ROOT = Path(__file__).resolve().parents[3]
PROBE = "tests.support.store_probe:StoreProbe"


class OtherHost:
    """Host B: a process with its own pool on the shared store, driven line by line."""

    def __init__(self, url: str, name: str, registry_dir: Path) -> None:
        self.args = [sys.executable, "-m", "tests.support.redis_host", url, name, str(registry_dir)]
        self.process: asyncio.subprocess.Process | None = None
        self.replies: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.updates: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.ready: asyncio.Future[list[str]] = asyncio.get_running_loop().create_future()
        self.ids = itertools.count(1)
        self.reader: asyncio.Task[None] | None = None

    async def __aenter__(self) -> OtherHost:
        self.process = await asyncio.create_subprocess_exec(
            *self.args,
            cwd=ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        self.reader = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        while line := await self.process.stdout.readline():
            message = json.loads(line)
            if "ready" in message:
                self.ready.set_result(message["ready"])
            elif "update" in message:
                self.updates.put_nowait(message["update"])
            else:
                self.replies.pop(message["id"]).set_result(message)
        error = RuntimeError(f"host B exited with {await self.process.wait()}")
        for waiter in [self.ready, *self.replies.values()]:
            if not waiter.done():
                waiter.set_exception(error)

    async def call(self, op: str, **fields: Any) -> Any:
        assert self.process is not None and self.process.stdin is not None
        request_id = next(self.ids)
        reply = self.replies[request_id] = asyncio.get_running_loop().create_future()
        self.process.stdin.write(
            json.dumps({"id": request_id, "op": op, **fields}).encode() + b"\n"
        )
        await self.process.stdin.drain()
        async with asyncio.timeout(BOUND):
            message = await reply
        if "error" in message:
            raise AssertionError(f"host B: {message['error']}: {message['message']}")
        return message["ok"]

    async def update(self) -> dict[str, Any]:
        async with asyncio.timeout(BOUND):
            return await self.updates.get()

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self.process is not None and self.process.stdin is not None
        self.process.stdin.close()  # host B closes its pool and exits
        try:
            async with asyncio.timeout(BOUND):
                await self.process.wait()
        finally:
            if self.process.returncode is None:
                self.process.kill()
                await self.process.wait()
            if self.reader is not None:
                await self.reader
        assert self.process.returncode == 0


async def test_two_hosts_share_sessions_variables_and_watches(
    redis_server: RedisServer, redis_prefix: str, tmp_path: Path
) -> None:
    url = f"{redis_server.url}?prefix={redis_prefix}"
    async with (
        OtherHost(url, "host-b", tmp_path) as b,
        isolated_pool(session_store=url, name="host-a") as a,
    ):
        async with asyncio.timeout(BOUND):
            b_workers = await b.ready
        s = a.session("shared")
        await s.variables.register("n", "integer", 0)
        a_watch = await s.variables.watch(["n"])

        # B sees A's session and variable, and watches it.
        assert await b.call("get", session="shared", name="n") == {"value": 0, "version": 1}
        assert await b.call("watch", session="shared", names=["n"], count=3) is True

        # B's worker writes through B's host bridge; A's watch sees it.
        bumped = await b.call("execute", session="shared", tool="bump", args={"name": "n", "by": 5})
        assert bumped == 5
        async with asyncio.timeout(BOUND):
            seen = await a_watch.get()
        assert (seen.version, seen.value, seen.source) == (2, 5, "host-b")

        # A writes from the host and from its worker; B's watch sees both, in order.
        await s.variables.set("n", 7, expected_version=2)
        assert await s.execute("bump", {"name": "n"}) == 8
        b_seen = [await b.update() for _ in range(3)]
        assert [(u["version"], u["value"], u["source"]) for u in b_seen] == [
            (2, 5, "host-b"),
            (3, 7, "host-a"),
            (4, 8, "host-a"),
        ]
        assert [s.id for s in await a.sessions.list()] == ["shared"]

        # Affinity is a hint across hosts: each host keeps running the session on its own
        # worker, and the store records whichever ran it last.
        pid_a = await s.execute("pid")
        pid_b = await b.call("execute", session="shared", tool="pid")
        assert pid_a != pid_b
        assert (await s.info()).affinity_worker == b_workers[0]
        assert await s.execute("pid") == pid_a
        assert (await b.call("info", session="shared"))["affinity_worker"] == s.worker_id

        # Deleting it on B ends A's watch.
        assert await b.call("delete", session="shared") is True
        async with asyncio.timeout(BOUND):
            rest = [(u.version, u.value) async for u in a_watch]
        assert rest == [(3, 7), (4, 8)]
        assert a_watch.ended_reason == "session deleted"


async def test_a_pool_whose_redis_dies_fails_only_the_calls_that_need_the_store(
    own_redis_server: RedisServer,
) -> None:
    server = own_redis_server
    async with (
        asyncio.timeout(BOUND),
        isolated_pool(PROBE, session_store=server.url) as pool,
    ):
        pool.register_host_tool("kill_redis", server.kill)
        s = pool.session("s1")
        await s.variables.register("n", "integer", 0)
        assert await s.execute("bump", {"name": "n"}) == 1
        watch = await s.variables.watch()
        # Redis dies while a call runs: the worker's read fails with the same typed error.
        with pytest.raises(SessionStoreUnavailableError, match=server.url):
            await s.execute("read_after_host_tool", {"host_tool": "kill_redis", "name": "n"})
        assert await pool.execute("add", {"a": 1, "b": 2}) == 3
        with pytest.raises(SessionStoreUnavailableError, match=server.url):
            await s.execute("add", {"a": 1, "b": 2})
        with pytest.raises(SessionStoreUnavailableError, match=server.url) as info:
            await s.variables.get("n")
        assert info.value.operation == "get_variable"
        with pytest.raises(SessionStoreUnavailableError):
            await watch.get()
        with pytest.raises(SessionStoreUnavailableError):
            await pool.sessions.list()
        assert await pool.execute("echo", {"value": "still here"}) == "still here"
