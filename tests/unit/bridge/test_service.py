"""HostService over real gRPC: sessions, variables, watches and host tools; errors in the body."""

from __future__ import annotations

import asyncio
import contextlib
import stat
import threading
from typing import TYPE_CHECKING, Any

import grpc
import pytest

import snakepit
from snakepit._proto.snakepit.v1 import host_pb2 as hpb
from snakepit._proto.snakepit.v1 import host_pb2_grpc
from snakepit._wire import exception_from_info as error_from_wire
from snakepit._wire import from_payload, to_payload
from snakepit.bridge._host_tools import HostToolRegistry
from snakepit.errors import (
    HostToolError,
    InvalidArgumentsError,
    SessionNotFoundError,
    ToolNotFoundError,
    VariableNotFoundError,
    VariableValidationError,
    VersionConflictError,
)
from tests.support.bridge_host import start_host

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from tests.support.bridge_host import Host

BOUND = 10.0  # seconds: an upper bound on waits, never a delay


@contextlib.asynccontextmanager
async def connect(address: str, token: str | None = None) -> AsyncIterator[Any]:
    """A raw HostService stub on a fresh channel (token metadata when given)."""
    async with grpc.aio.insecure_channel(address) as channel:
        stub = host_pb2_grpc.HostServiceStub(channel)  # type: ignore[no-untyped-call]
        if token is None:
            yield stub
            return

        class WithToken:
            def __getattr__(self, name: str) -> Any:
                method = getattr(stub, name)
                return lambda request: method(request, metadata=(("snakepit-token", token),))

        yield WithToken()


def value(payload: Any) -> Any:
    return from_payload(payload, "test")


async def register(stub: Any, name: str, type: str, initial: Any, **constraints: Any) -> Any:
    response = await stub.RegisterVariable(
        hpb.RegisterVariableRequest(
            session_id="s1",
            name=name,
            type=type,
            value=to_payload(initial, "test"),
            constraints=to_payload(constraints, "test"),
            metadata=to_payload({"owner": "test"}, "test"),
        )
    )
    assert not response.HasField("error"), response.error
    return response.variable


async def set_value(stub: Any, name: str, new: Any, expected: int | None = None) -> Any:
    return await stub.SetVariable(
        hpb.SetVariableRequest(
            session_id="s1", name=name, value=to_payload(new, "test"), expected_version=expected
        )
    )


class TestSessions:
    async def test_get_session_returns_its_snapshot(self, host: Host) -> None:
        """GetSession answers the session's id, TTL and metadata from the store."""
        async with connect(host.address) as stub:
            response = await stub.GetSession(hpb.SessionRequest(session_id="s1"))
        assert response.session.id == "s1"
        assert response.session.ttl == 60.0
        assert value(response.session.metadata) == {}

    async def test_heartbeat_restarts_the_ttl(self, host: Host) -> None:
        """A heartbeat at 50 s keeps a 60 s session alive at 100 s."""
        async with connect(host.address) as stub:
            await host.clock.advance(50)
            assert (await stub.Heartbeat(hpb.SessionRequest(session_id="s1"))).HasField("session")
            await host.clock.advance(50)
            assert (await stub.GetSession(hpb.SessionRequest(session_id="s1"))).session.id == "s1"

    async def test_unknown_session_is_a_typed_error_in_the_body(self, host: Host) -> None:
        """A missing session is an ErrorInfo of kind SessionNotFoundError, not a gRPC status."""
        async with connect(host.address) as stub:
            response = await stub.GetSession(hpb.SessionRequest(session_id="nope"))
        assert response.error.kind == "SessionNotFoundError"
        error = error_from_wire(response.error)
        assert isinstance(error, SessionNotFoundError) and "'nope'" in str(error)


class TestVariables:
    async def test_register_get_set_round_trip_values_and_versions(self, host: Host) -> None:
        """A registered variable reads back with its type, constraints and metadata; a set is +1."""
        async with connect(host.address) as stub:
            registered = await register(stub, "n", "integer", 1, min=0, max=10)
            assert (registered.version, value(registered.value)) == (1, 1)
            assert value(registered.constraints) == {"min": 0, "max": 10}
            assert value(registered.metadata) == {"owner": "test"}
            written = await set_value(stub, "n", 7)
            got = await stub.GetVariable(hpb.GetVariableRequest(session_id="s1", name="n"))
        assert (written.variable.version, value(written.variable.value)) == (2, 7)
        assert (got.variable.version, value(got.variable.value)) == (2, 7)
        assert (await host.store.get_variable("s1", "n")).value == 7

    async def test_invalid_value_names_the_variable_and_constraint(self, host: Host) -> None:
        """A value above max comes back as VariableValidationError naming 'n' and 'max'."""
        async with connect(host.address) as stub:
            await register(stub, "n", "integer", 1, max=10)
            response = await set_value(stub, "n", 11)
        error = error_from_wire(response.error)
        assert isinstance(error, VariableValidationError)
        assert (error.variable, error.constraint, error.value) == ("n", "max", 11)
        assert "'n'" in str(error) and "max" in str(error)

    async def test_stale_expected_version_is_a_version_conflict(self, host: Host) -> None:
        """A set with an old expected_version fails with both versions; one with the current works."""
        async with connect(host.address) as stub:
            await register(stub, "n", "integer", 1)
            await set_value(stub, "n", 2)
            stale = await set_value(stub, "n", 3, expected=1)
            fresh = await set_value(stub, "n", 3, expected=2)
        error = error_from_wire(stale.error)
        assert isinstance(error, VersionConflictError)
        assert (error.expected_version, error.actual_version) == (1, 2)
        assert fresh.variable.version == 3

    async def test_registering_again_with_another_type_is_a_value_error(self, host: Host) -> None:
        """A conflicting definition travels as its typed kind, still a ValueError for callers."""
        async with connect(host.address) as stub:
            await register(stub, "n", "integer", 1)
            response = await stub.RegisterVariable(
                hpb.RegisterVariableRequest(
                    session_id="s1", name="n", type="string", value=to_payload("x", "t")
                )
            )
        assert response.error.kind == "VariableRedefinedError"
        error = error_from_wire(response.error)
        assert isinstance(error, snakepit.VariableRedefinedError)
        assert isinstance(error, ValueError) and error.variable == "n"

    async def test_get_many_reports_found_and_missing(self, host: Host) -> None:
        """GetVariables answers the existing variables and the missing names separately."""
        async with connect(host.address) as stub:
            await register(stub, "a", "integer", 1)
            response = await stub.GetVariables(
                hpb.GetVariablesRequest(session_id="s1", names=["a", "b"])
            )
        assert [v.name for v in response.variables] == ["a"]
        assert list(response.missing) == ["b"]

    async def test_atomic_set_many_writes_nothing_when_one_value_fails(self, host: Host) -> None:
        """Atomic: one bad value fails the call and leaves every variable as it was."""
        async with connect(host.address) as stub:
            await register(stub, "a", "integer", 1)
            await register(stub, "b", "integer", 1, max=5)
            response = await stub.SetVariables(
                hpb.SetVariablesRequest(
                    session_id="s1", values=to_payload({"a": 2, "b": 9}, "t"), atomic=True
                )
            )
        assert isinstance(error_from_wire(response.error), VariableValidationError)
        assert (await host.store.get_variable("s1", "a")).version == 1

    async def test_non_atomic_set_many_reports_each_failure(self, host: Host) -> None:
        """Not atomic: the valid values are written and each failure is reported by name."""
        async with connect(host.address) as stub:
            await register(stub, "a", "integer", 1)
            response = await stub.SetVariables(
                hpb.SetVariablesRequest(
                    session_id="s1",
                    values=to_payload({"a": 2, "ghost": 1}, "t"),
                    expected_versions={"a": 1},
                )
            )
        assert [v.name for v in response.updated] == ["a"]
        assert isinstance(error_from_wire(response.errors["ghost"]), VariableNotFoundError)

    async def test_list_history_rollback_and_delete(self, host: Host) -> None:
        """List by pattern, read the history, roll back to version 1, then delete."""
        async with connect(host.address) as stub:
            await register(stub, "model.lr", "float", 0.1)
            await register(stub, "other", "string", "x")
            await set_value(stub, "model.lr", 0.2)
            listed = await stub.ListVariables(
                hpb.ListVariablesRequest(session_id="s1", pattern="model.*")
            )
            history = await stub.GetHistory(hpb.HistoryRequest(session_id="s1", name="model.lr"))
            rolled = await stub.RollbackVariable(
                hpb.RollbackRequest(session_id="s1", name="model.lr", version=1)
            )
            deleted = await stub.DeleteVariable(
                hpb.DeleteVariableRequest(session_id="s1", name="model.lr")
            )
            again = await stub.DeleteVariable(
                hpb.DeleteVariableRequest(session_id="s1", name="model.lr")
            )
        assert [v.name for v in listed.variables] == ["model.lr"]
        assert [(v.version, value(v.value)) for v in history.variables] == [(1, 0.1), (2, 0.2)]
        assert (rolled.variable.version, value(rolled.variable.value)) == (3, 0.1)
        assert not deleted.HasField("error")
        assert isinstance(error_from_wire(again.error), VariableNotFoundError)


class TestWatch:
    async def test_watch_starts_streams_updates_in_order_and_ends_with_the_session(
        self, host: Host
    ) -> None:
        """The first item says the watch is live; updates follow in write order; delete ends it."""
        async with connect(host.address) as stub:
            await register(stub, "n", "integer", 0)
            call = stub.WatchVariables(hpb.WatchRequest(session_id="s1", names=["n"]))
            assert (await asyncio.wait_for(call.read(), BOUND)).HasField("started")
            for i in range(1, 4):
                await host.store.set_variable("s1", "n", i)
            updates = [(await asyncio.wait_for(call.read(), BOUND)).update for _ in range(3)]
            await host.store.delete("s1")
            ended = await asyncio.wait_for(call.read(), BOUND)
        assert [(u.version, value(u.value)) for u in updates] == [(2, 1), (3, 2), (4, 3)]
        assert ended.ended.reason == "session deleted"

    async def test_watch_of_an_unknown_session_is_an_error_item(self, host: Host) -> None:
        """Watching a missing session answers one error item and ends."""
        async with connect(host.address) as stub:
            items = [item async for item in stub.WatchVariables(hpb.WatchRequest(session_id="x"))]
        assert len(items) == 1 and items[0].error.kind == "SessionNotFoundError"


class TestHostTools:
    async def call(self, stub: Any, tool: str, args: Any = None) -> Any:
        response = await stub.CallHostTool(
            hpb.CallHostToolRequest(tool=tool, args=to_payload(args or {}, "t"), session_id="s1")
        )
        if response.HasField("error"):
            raise error_from_wire(response.error)
        return value(response.result)

    async def test_sync_tools_run_on_a_thread_and_async_tools_on_the_loop(self, host: Host) -> None:
        """A sync host tool runs off the event loop's thread; an async one runs on it."""
        loop_thread = threading.get_ident()

        def sync_where(x: int) -> dict[str, Any]:
            return {"x": x, "on_loop": threading.get_ident() == loop_thread}

        async def async_where(x: int) -> dict[str, Any]:
            return {"x": x, "on_loop": threading.get_ident() == loop_thread}

        host.tools.register("sync_where", sync_where)
        host.tools.register("async_where", async_where)
        async with connect(host.address) as stub:
            assert await self.call(stub, "sync_where", {"x": 1}) == {"x": 1, "on_loop": False}
            assert await self.call(stub, "async_where", {"x": 2}) == {"x": 2, "on_loop": True}

    async def test_a_raising_tool_is_host_tool_error_with_the_host_traceback(
        self, host: Host
    ) -> None:
        """The exception's type, message and host traceback travel as HostToolError."""

        def explode(reason: str) -> None:
            raise KeyError(reason)

        host.tools.register("explode", explode)
        async with connect(host.address) as stub:
            with pytest.raises(HostToolError, match="'explode' raised KeyError") as info:
                await self.call(stub, "explode", {"reason": "gone"})
        assert info.value.remote_type == "KeyError"
        assert "in explode" in info.value.remote_traceback
        assert "Remote traceback (from the host tool)" in str(info.value)

    async def test_unknown_tool_names_the_available_ones(self, host: Host) -> None:
        """An unknown host tool is ToolNotFoundError listing what is registered."""
        host.tools.register("known", lambda: 1)
        async with connect(host.address) as stub:
            with pytest.raises(ToolNotFoundError, match="available: known") as info:
                await self.call(stub, "unknown")
        assert info.value.available == ["known"]

    async def test_arguments_that_do_not_fit_are_invalid_arguments(self, host: Host) -> None:
        """Missing or unknown keyword arguments fail before the tool runs, naming the signature."""
        host.tools.register("add", lambda a, b: a + b)
        async with connect(host.address) as stub:
            with pytest.raises(InvalidArgumentsError, match=r"add\(a, b\)"):
                await self.call(stub, "add", {"a": 1})
            assert await self.call(stub, "add", {"a": 1, "b": 2}) == 3

    async def test_list_host_tools_reports_names_and_parameters(self, host: Host) -> None:
        """ListHostTools describes each tool: name, docstring, parameters, async or not."""

        async def lookup(key: str, default: int = 0) -> int:
            """Find a key."""
            return default

        host.tools.register("lookup", lookup)
        async with connect(host.address) as stub:
            (spec,) = (await stub.ListHostTools(hpb.ListHostToolsRequest())).tools
        assert (spec.name, spec.description, spec.is_async) == ("lookup", "Find a key.", True)
        assert [(p.name, p.required) for p in spec.params] == [("key", True), ("default", False)]

    def test_the_registry_rejects_bad_names_and_duplicates(self) -> None:
        """Names must match the tool-name pattern and be unique; the callable must be callable."""
        tools = HostToolRegistry("p")
        tools.register("ok.name-1", lambda: None)
        for bad in ("", "1abc", "has space", "x" * 129):
            with pytest.raises(ValueError, match="invalid host tool name"):
                tools.register(bad, lambda: None)
        with pytest.raises(ValueError, match="already registered"):
            tools.register("ok.name-1", lambda: None)
        with pytest.raises(TypeError, match="must be callable"):
            tools.register("nope", 42)  # type: ignore[arg-type]
        assert tools.unregister("ok.name-1") and not tools.unregister("ok.name-1")


class TestTransport:
    async def test_the_unix_socket_lives_in_the_private_runtime_dir(self, host: Host) -> None:
        """The bridge serves on host.sock inside a 0700 directory."""
        path = host.address.removeprefix("unix:")
        assert path.endswith("/host.sock")
        mode = stat.S_IMODE(__import__("os").stat(path.rsplit("/", 1)[0]).st_mode)
        assert mode == 0o700

    async def test_tcp_bridge_binds_loopback_and_requires_the_token(self) -> None:
        """Over TCP the bridge listens on 127.0.0.1 and refuses calls without the pool's token."""
        h, runtime = await start_host("tcp")
        try:
            await h.store.create("s1")
            assert h.address.startswith("127.0.0.1:") and h.bridge.token
            # The token reaches workers on a pipe, never in their (readable) environment.
            assert h.bridge.token not in h.bridge.worker_env().values()
            async with connect(h.address) as stub:
                with pytest.raises(grpc.aio.AioRpcError) as info:
                    await stub.GetSession(hpb.SessionRequest(session_id="s1"))
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
            async with connect(h.address, token=h.bridge.token) as stub:
                response = await stub.GetSession(hpb.SessionRequest(session_id="s1"))
            assert response.session.id == "s1"
        finally:
            await h.store.close()
            await h.bridge.stop(grace=None)
            from snakepit.worker._runtime import remove_runtime_dir

            remove_runtime_dir(runtime)
