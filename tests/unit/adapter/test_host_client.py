"""The worker's host client over real gRPC: ``ctx.variables`` and host tools, sync and async."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import pytest

from snakepit.adapter import SessionContext
from snakepit.adapter import _host_client as host_client
from snakepit.adapter._host_client import HostClient
from snakepit.errors import (
    HostToolError,
    SessionNotFoundError,
    SnakepitError,
    ToolNotFoundError,
    VariableNotFoundError,
    VariableValidationError,
    VersionConflictError,
)
from snakepit.events import VariableUpdated

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from tests.support.bridge_host import Host

BOUND = 10.0  # seconds: an upper bound on waits, never a delay


@pytest.fixture
def client(host: Host) -> Iterator[HostClient]:
    c = HostClient(host.address, worker_id="w-test")
    yield c
    c.close()


def ctx_for(client: HostClient, session_id: str | None = "s1") -> SessionContext:
    return SessionContext(
        session_id=session_id, request_id=7, worker_id="w-test", tool="t", host=client
    )


async def in_thread(fn: Callable[[], Any]) -> Any:
    """Run blocking client code as a sync tool would: on a thread, off the loop."""
    return await asyncio.wait_for(asyncio.to_thread(fn), BOUND)


class TestSyncApi:
    async def test_item_access_reads_and_writes_values(
        self, host: Host, client: HostClient
    ) -> None:
        """ctx.variables["n"] reads the value; assigning writes a new version the host sees."""
        await host.store.register_variable("s1", "n", "integer", 1)
        v = ctx_for(client).variables

        def bump() -> int:
            v["n"] += 1
            return int(v["n"])

        assert await in_thread(bump) == 2
        assert (await host.store.get_variable("s1", "n")).version == 2

    async def test_the_methods_mirror_the_host_api(self, host: Host, client: HostClient) -> None:
        """register, get, set, get_many, set_many, list, history, rollback and delete all work."""
        v = ctx_for(client).variables

        def work() -> dict[str, Any]:
            registered = v.register("lr", "float", 0.1, constraints={"min": 0.0})
            v.register("name", "string", "a", metadata={"doc": "who"})
            v.set("lr", 0.2, expected_version=1)
            found, missing = v.get_many(["lr", "ghost"])
            batch = v.set_many({"lr": 0.3, "name": "b"}, atomic=True)
            rolled = v.rollback("lr", 1)
            history = [h.value for h in v.history("lr")]
            listed = [x.name for x in v.list("l*")]
            del v["name"]
            return {
                "registered": (registered.version, registered.constraints),
                "found": (sorted(found), missing),
                "batch": (batch.ok, sorted(batch.updated)),
                "rolled": (rolled.version, rolled.value),
                "history": history,
                "listed": listed,
                "left": [x.name for x in v.list()],
                "metadata": v.get("lr").metadata,
            }

        assert await in_thread(work) == {
            "registered": (1, {"min": 0.0}),
            "found": (["lr"], ["ghost"]),
            "batch": (True, ["lr", "name"]),
            "rolled": (4, 0.1),
            "history": [0.1, 0.2, 0.3, 0.1],
            "listed": ["lr"],
            "left": ["lr"],
            "metadata": {},
        }

    async def test_errors_come_back_typed(self, host: Host, client: HostClient) -> None:
        """Missing variable, bad value, stale version and conflicting definition keep their types."""
        await host.store.register_variable(
            "s1", "n", "integer", 1, constraints={"min": 0, "max": 5}
        )
        v = ctx_for(client).variables

        def expect(exc_type: type[Exception], fn: Callable[[], Any]) -> Exception:
            with pytest.raises(exc_type) as info:
                fn()
            return info.value

        def work() -> list[Exception]:
            return [
                expect(VariableNotFoundError, lambda: v["ghost"]),
                expect(VariableValidationError, lambda: v.set("n", 9)),
                expect(VersionConflictError, lambda: v.set("n", 2, expected_version=5)),
                expect(ValueError, lambda: v.register("n", "string", "x")),
            ]

        missing, invalid, conflict, redefined = await in_thread(work)
        assert "'ghost'" in str(missing)
        assert (invalid.variable, invalid.constraint) == ("n", "max")  # type: ignore[attr-defined]
        assert conflict.actual_version == 1  # type: ignore[attr-defined]
        assert "already registered as integer" in str(redefined)

    async def test_non_atomic_set_many_returns_per_variable_errors(
        self, host: Host, client: HostClient
    ) -> None:
        """A non-atomic batch writes the valid values and reports each failure by name."""
        await host.store.register_variable("s1", "n", "integer", 1)
        v = ctx_for(client).variables
        result = await in_thread(lambda: v.set_many({"n": 2, "ghost": 1}))
        assert sorted(result.updated) == ["n"] and not result.ok
        assert isinstance(result.errors["ghost"], VariableNotFoundError)

    async def test_watch_yields_updates_in_order_until_the_session_ends(
        self, host: Host, client: HostClient
    ) -> None:
        """A sync watch is live when it returns, yields each write in order, ends on delete."""
        await host.store.register_variable("s1", "n", "integer", 0)
        watch = await in_thread(lambda: ctx_for(client).variables.watch(["n"]))
        for i in range(1, 4):
            await host.store.set_variable("s1", "n", i)
        await host.store.delete("s1")
        updates = await in_thread(lambda: list(watch))
        assert [(u.version, u.value) for u in updates] == [(2, 1), (3, 2), (4, 3)]
        assert all(isinstance(u, VariableUpdated) for u in updates)
        assert watch.ended_reason == "session deleted"

    async def test_blocking_calls_on_the_event_loop_are_refused(self, client: HostClient) -> None:
        """An async tool that calls the blocking API gets a RuntimeError naming the async variant."""
        with pytest.raises(RuntimeError, match=r"aget"):
            ctx_for(client).variables.get("n")


class TestAsyncApi:
    async def test_async_variants_read_and_write(self, host: Host, client: HostClient) -> None:
        """aregister, aset, aget, alist, ahistory, arollback, adelete work from the loop."""
        v = ctx_for(client).variables
        await v.aregister("n", "integer", 1)
        await v.aset("n", 2, expected_version=1)
        assert (await v.aget("n")).value == 2
        assert [x.version for x in await v.ahistory("n")] == [1, 2]
        assert (await v.arollback("n", 1)).value == 1
        found, missing = await v.aget_many(["n", "m"])
        assert list(found) == ["n"] and missing == ["m"]
        assert (await v.aset_many({"n": 5})).ok
        assert [x.name for x in await v.alist()] == ["n"]
        await v.adelete("n")
        with pytest.raises(VariableNotFoundError):
            await v.aget("n")

    async def test_async_watch(self, host: Host, client: HostClient) -> None:
        """An async watch yields updates in order and ends when the session is deleted."""
        v = ctx_for(client).variables
        await v.aregister("n", "integer", 0)
        watch = await v.awatch(include_current=True)
        await v.aset("n", 1)
        await host.store.delete("s1")
        updates = [(u.name, u.version) async for u in watch]
        assert updates == [("n", 1), ("n", 2)]
        assert watch.ended_reason == "session deleted"


class TestContext:
    async def test_outside_a_session_variables_raise_session_not_found(self) -> None:
        """With no session id, every variable call raises SessionNotFoundError naming the tool."""
        ctx = ctx_for(HostClient(""), session_id=None)
        with pytest.raises(SessionNotFoundError, match=r"tool 't'.*outside a session"):
            await ctx.variables.aget("x")
        with pytest.raises(SessionNotFoundError, match="outside a session"):
            await in_thread(lambda: ctx.variables["x"])

    async def test_a_worker_without_a_host_gets_a_clear_error(self) -> None:
        """Without SNAKEPIT_HOST_ADDRESS, host calls explain that a Pool must start the worker."""
        ctx = ctx_for(HostClient(""))
        with pytest.raises(SnakepitError, match="no host bridge"):
            await ctx.acall_host_tool("anything")

    async def test_an_unreachable_host_names_its_address(self, tmp_path: Any) -> None:
        """A host that is gone is a SnakepitError naming the address, not a raw gRPC error."""
        client = HostClient(f"unix:{tmp_path}/gone.sock")
        try:
            with pytest.raises(SnakepitError, match="cannot reach the snakepit host"):
                await in_thread(lambda: ctx_for(client).variables.get("x"))
        finally:
            client.close()

    async def test_host_tools_sync_and_async(self, host: Host, client: HostClient) -> None:
        """call_host_tool and acall_host_tool return results; failures keep their kinds."""

        async def greet(name: str) -> str:
            return f"hello {name}"

        def fail() -> None:
            raise RuntimeError("no")

        host.tools.register("greet", greet)
        host.tools.register("fail", fail)
        ctx = ctx_for(client)
        assert await in_thread(lambda: ctx.call_host_tool("greet", {"name": "a"})) == "hello a"
        assert await ctx.acall_host_tool("greet", {"name": "b"}) == "hello b"
        assert await ctx.alist_host_tools() == ["fail", "greet"]
        assert await in_thread(ctx.list_host_tools) == ["fail", "greet"]
        with pytest.raises(HostToolError, match="RuntimeError: no") as info:
            await ctx.acall_host_tool("fail")
        assert info.value.remote_type == "RuntimeError"
        with pytest.raises(ToolNotFoundError, match="available: fail, greet"):
            await in_thread(lambda: ctx.call_host_tool("nope"))

    async def test_heartbeat_keeps_the_session_alive(self, host: Host, client: HostClient) -> None:
        """A heartbeat restarts the TTL; after a full TTL unused the session is gone."""
        ctx = ctx_for(client)
        await host.clock.advance(50)
        await ctx.aheartbeat()
        await host.clock.advance(50)
        await in_thread(ctx.heartbeat)
        await host.clock.advance(61)
        with pytest.raises(SessionNotFoundError, match="'s1'"):
            await ctx.aheartbeat()


class TestEnvironment:
    def test_configure_from_environ_takes_the_address_and_hides_the_token(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The worker main's client reads the address and token, then removes them from os.environ."""
        monkeypatch.setattr(host_client, "_default", None)
        monkeypatch.setenv(host_client.ENV_ADDRESS, "unix:/tmp/x.sock")
        monkeypatch.setenv(host_client.ENV_TOKEN, "secret")
        client = host_client.configure_from_environ(worker_id="w9")
        import os

        assert host_client.ENV_TOKEN not in os.environ
        assert host_client.ENV_ADDRESS not in os.environ
        assert (client.address, client.worker_id) == ("unix:/tmp/x.sock", "w9")
        assert host_client.default_client() is client
        assert SessionContext(None, 1, "w9")._client is client
