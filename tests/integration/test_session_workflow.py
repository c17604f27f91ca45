"""Sessions end to end with real workers: variables from the host and from tools, host tools."""

from __future__ import annotations

import asyncio

import pytest

import snakepit
from snakepit.events import SessionCreated, SessionExpired
from snakepit.testing import isolated_pool, pool_mailbox
from supertester import FakeClock

BOUND = 15.0  # an upper bound on waits, never a delay


async def next_update(watch: object) -> tuple[int, object]:
    update = await asyncio.wait_for(watch.get(), BOUND)  # type: ignore[attr-defined]
    return update.version, update.value


@pytest.mark.usefixtures("both_transports")
class TestSessionWorkflow:
    async def test_concurrent_sets_from_the_host_lose_no_version(self) -> None:
        """Ten concurrent host-side sets: the final value is one of them and the version is 1 + 10."""
        async with isolated_pool() as pool, pool.session("workflow-host") as session:
            registered = await session.variables.register("counter", "integer", 0)
            await asyncio.gather(*(session.variables.set("counter", i) for i in range(1, 11)))
            final = await session.variables.get("counter")
            assert final.value in range(1, 11)
            assert final.version == registered.version + 10
            assert [v.version for v in await session.variables.history("counter")] == list(
                range(1, 12)
            )

    async def test_concurrent_sets_from_worker_tools_lose_no_version(self) -> None:
        """Ten concurrent tool calls set the variable through ctx; every write got its own version."""
        async with isolated_pool() as pool:
            session = pool.session("workflow-tools")
            box = pool_mailbox(pool)
            assert (
                await session.execute(
                    "register_var", {"name": "counter", "type": "integer", "value": 0}
                )
                == 1
            )
            created = await box.assert_receive(SessionCreated, BOUND)
            assert created.session_id == "workflow-tools"
            versions = await asyncio.gather(
                *(session.execute("set_var", {"name": "counter", "value": i}) for i in range(1, 11))
            )
            assert sorted(versions) == list(range(2, 12))
            final = await session.execute("get_var", {"name": "counter"})
            assert final["value"] in range(1, 11) and final["version"] == 11
            host_view = await session.variables.get("counter")
            assert (host_view.value, host_view.version) == (final["value"], 11)

    async def test_a_tool_increments_a_variable_the_host_sees_and_watches(self) -> None:
        """bump (sync) and abump (async) increment through SessionContext; the host's watch sees each."""
        async with isolated_pool() as pool, pool.session() as session:
            await session.variables.register("n", "integer", 0, constraints={"min": 0})
            watch = await session.variables.watch(["n"])
            assert await session.execute("bump", {"name": "n"}) == 1
            assert await session.execute("bump", {"name": "n", "by": 5}) == 6
            assert await session.execute("abump", {"name": "n"}) == 7
            seen = await session.variables.get("n")
            assert (seen.value, seen.version) == (7, 4)
            assert [await next_update(watch) for _ in range(3)] == [(2, 1), (3, 6), (4, 7)]
            watch.close()

    async def test_concurrent_bumps_on_two_workers_lose_no_increment(self) -> None:
        """Twenty bumps across two worker processes: optimistic locking keeps every one."""
        async with isolated_pool(size=2) as pool:
            session = pool.session("two-workers")
            await session.variables.register("n", "integer", 0)
            calls = [pool.execute("bump", {"name": "n"}, session_id=session.id) for _ in range(20)]
            results = await asyncio.gather(*calls)
            assert sorted(results) == list(range(1, 21))
            assert (await session.variables.get("n")).value == 20

    async def test_a_tool_watches_variables_the_host_writes(self) -> None:
        """A streaming tool's watch (sync and async) sees the host's writes in order."""
        async with isolated_pool() as pool, pool.session("watched") as session:
            await session.variables.register("x", "string", "a")
            for tool in ("watch_vars", "awatch_vars"):
                stream = session.stream(tool, {"names": ["x"], "count": 2})
                assert await asyncio.wait_for(anext(stream), BOUND) == {"watching": True}
                first = await session.variables.set("x", f"{tool}-1")
                await session.variables.set("x", f"{tool}-2")
                chunks = [chunk async for chunk in stream]
                assert chunks == [
                    {"name": "x", "version": first.version, "value": f"{tool}-1"},
                    {"name": "x", "version": first.version + 1, "value": f"{tool}-2"},
                ]


@pytest.mark.usefixtures("both_transports")
class TestHostTools:
    async def test_worker_code_calls_sync_and_async_host_tools(self) -> None:
        """call_host and acall_host run host callables and return their values to the caller."""
        async with isolated_pool() as pool:
            calls: list[str | None] = []

            def scale(x: float, factor: float = 2.0) -> float:
                return x * factor

            async def lookup(key: str) -> dict[str, str]:
                calls.append(key)
                return {"key": key, "value": key.upper()}

            pool.register_host_tool("scale", scale)
            pool.register_host_tool("lookup", lookup)
            assert pool.host_tools == ["lookup", "scale"]
            assert await pool.execute("call_host", {"name": "scale", "args": {"x": 21}}) == 42
            result = await pool.execute("acall_host", {"name": "lookup", "args": {"key": "k"}})
            assert result == {"key": "k", "value": "K"} and calls == ["k"]

    async def test_a_raising_host_tool_reaches_the_worker_and_then_the_caller(self) -> None:
        """HostToolError is a ToolError in the worker (catchable) and, uncaught, at the caller."""
        async with isolated_pool() as pool:

            def explode(reason: str) -> None:
                raise LookupError(reason)

            pool.register_host_tool("explode", explode)
            caught = await pool.execute(
                "call_host", {"name": "explode", "args": {"reason": "r1"}, "catch": True}
            )
            assert caught["error"] == "HostToolError" and caught["is_tool_error"]
            assert "raised LookupError: r1" in caught["message"]
            for tool in ("call_host", "acall_host"):
                with pytest.raises(snakepit.HostToolError, match="LookupError") as info:
                    await pool.execute(tool, {"name": "explode", "args": {"reason": "r2"}})
                assert isinstance(info.value, snakepit.ToolError)
                assert info.value.remote_type == "LookupError"
                assert "in explode" in info.value.remote_traceback

    async def test_an_unknown_host_tool_is_tool_not_found(self) -> None:
        """Calling a host tool that does not exist names the ones that do."""
        async with isolated_pool() as pool:
            pool.register_host_tool("only_one", lambda: 1)
            with pytest.raises(snakepit.ToolNotFoundError, match=r"no host tool 'nope'.*only_one"):
                await pool.execute("call_host", {"name": "nope"})
            with pytest.raises(ValueError, match="invalid host tool name"):
                pool.register_host_tool("bad name", lambda: 1)


@pytest.mark.usefixtures("both_transports")
class TestVariableErrors:
    async def test_variable_errors_from_worker_code_reach_the_caller_typed(self) -> None:
        """A bad write, a missing variable and a call outside a session keep their error types."""
        async with isolated_pool() as pool:
            session = pool.session("typed-errors")
            await session.variables.register("x", "integer", 1, constraints={"max": 10})
            with pytest.raises(snakepit.VariableValidationError, match="'x'") as info:
                await session.execute("set_var", {"name": "x", "value": "not an int"})
            assert (info.value.variable, info.value.constraint) == ("x", "type")
            with pytest.raises(snakepit.VariableValidationError, match="max"):
                await session.execute("bump", {"name": "x", "by": 100})
            with pytest.raises(snakepit.VariableNotFoundError, match="'ghost'"):
                await session.execute("get_var", {"name": "ghost"})
            with pytest.raises(snakepit.SessionNotFoundError, match="tool 'get_var'"):
                await pool.execute("get_var", {"name": "x"})
            assert (await session.variables.get("x")).version == 1

    async def test_a_backtracking_pattern_from_worker_code_cannot_stall_the_host(self) -> None:
        """Worker code registers (a+)+$ and writes 40 'a' and a '!': with re on the host's
        loop that is 2**40 steps; now it is a VariableValidationError at once, and a pattern
        that needs backtracking is refused when registered."""
        async with isolated_pool() as pool:
            session = pool.session("regex-bomb")
            spec = {"name": "code", "type": "string", "value": "aaa"}
            bomb = {**spec, "constraints": {"pattern": "(a+)+$"}}
            assert await session.execute("register_var", bomb) == 1
            with pytest.raises(snakepit.VariableValidationError, match="'code'") as info:
                await session.execute("set_var", {"name": "code", "value": "a" * 40 + "!"})
            assert info.value.constraint == "pattern"
            assert await session.execute("set_var", {"name": "code", "value": "a" * 40}) == 2
            lookahead = {**spec, "name": "look", "constraints": {"pattern": "(?=a)a+"}}
            with pytest.raises(snakepit.VariableValidationError, match="lookahead"):
                await session.execute("register_var", lookahead)


class TestSessionLifecycle:
    async def test_an_unused_session_expires_on_the_pool_clock(self) -> None:
        """Calls and variable reads slide the TTL; a full session_ttl unused expires the session."""
        clock = FakeClock()
        async with isolated_pool(clock=clock, session_ttl=10.0) as pool:
            box = pool_mailbox(pool)
            session = pool.session("short-lived")
            await session.variables.register("x", "integer", 1)
            await clock.advance(6)
            assert await session.execute("get_var", {"name": "x"}) == {"value": 1, "version": 1}
            await clock.advance(6)
            assert (await pool.sessions.get(session.id)).variable_count == 1
            await clock.advance(10)
            expired = await box.assert_receive(SessionExpired, BOUND)
            assert expired.session_id == "short-lived"
            with pytest.raises(snakepit.SessionNotFoundError, match="short-lived"):
                await session.variables.get("x")
            assert await pool.sessions.list() == []
            assert session.worker_id is None

    async def test_max_sessions_is_a_quota(self) -> None:
        """A third session with max_sessions=2 is SessionQuotaError until one is deleted or expires."""
        clock = FakeClock()
        async with isolated_pool(clock=clock, max_sessions=2, session_ttl=30.0) as pool:
            await pool.session("a").execute("ping")
            await pool.session("b").initialize(metadata={"user": "b"}, ttl=100.0)
            with pytest.raises(snakepit.SessionQuotaError, match="max_sessions=2"):
                await pool.session("c").execute("ping")
            with pytest.raises(snakepit.SessionQuotaError):
                await pool.session("c").variables.register("x", "integer", 1)
            assert pool.stats().requests == 1
            assert [s.id for s in await pool.sessions.list()] == ["a", "b"]
            assert await pool.sessions.delete("a") and not await pool.sessions.delete("a")
            assert await pool.session("c").execute("ping") == {"status": "pong"}
            await clock.advance(31)  # "c" expires, "b" (ttl 100) does not
            assert await pool.session("d").execute("ping") == {"status": "pong"}
            info = await pool.sessions.get("b")
            assert info.metadata == {"user": "b"}

    async def test_deleting_a_session_ends_its_watches_and_variables(self) -> None:
        """pool.sessions.delete removes the variables and ends the session's watches."""
        async with isolated_pool() as pool:
            session = pool.session("to-delete")
            await session.execute("register_var", {"name": "x", "type": "integer", "value": 1})
            assert (await session.info()).affinity_worker == session.worker_id == "w1"
            watch = await session.variables.watch()
            assert await session.delete()
            assert [u async for u in watch] == [] and watch.ended_reason == "session deleted"
            with pytest.raises(snakepit.SessionNotFoundError):
                await session.variables.list()
            with pytest.raises(ValueError, match="invalid session id"):
                pool.session("not a valid id!")

    async def test_variables_and_host_tools_over_tcp(self) -> None:
        """With transport="tcp" the workers reach the bridge on loopback with the pool's token."""
        async with isolated_pool(transport="tcp") as pool, pool.session("tcp") as session:
            pool.register_host_tool("twice", lambda x: 2 * x)
            await session.variables.register("n", "integer", 1)
            assert await session.execute("bump", {"name": "n"}) == 2
            assert await session.execute("call_host", {"name": "twice", "args": {"x": 4}}) == 8
