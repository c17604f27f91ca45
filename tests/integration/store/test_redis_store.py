"""What only the Redis store does: namespaced keys, Redis expiry, several stores, failures."""

from __future__ import annotations

import asyncio
import math
from typing import TYPE_CHECKING, Any

import pytest

from snakepit.errors import (
    SerializationError,
    SessionNotFoundError,
    SessionQuotaError,
    SessionStoreUnavailableError,
    VariableNotFoundError,
    VariableValidationError,
    VersionConflictError,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    import redis.asyncio as aioredis

    from snakepit.bridge import RedisSessionStore, SessionStore, VariableWatch
    from snakepit.events import VariableUpdated
    from supertester import FakeClock
    from tests.support.redis_server import RedisServer

BOUND = 10.0  # an upper bound on waits, never a delay


@pytest.fixture
def backend() -> str:
    return "redis"


@pytest.fixture
async def raw(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    """A plain client on the same server, to look at what the store wrote."""
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
    yield client
    await client.aclose()


def redis_store(make_store: Callable[..., SessionStore], **settings: Any) -> RedisSessionStore:
    from snakepit.bridge import RedisSessionStore

    store = make_store(**settings)
    assert isinstance(store, RedisSessionStore)
    return store


async def take(watch: VariableWatch, count: int) -> list[VariableUpdated]:
    async with asyncio.timeout(BOUND):
        return [await watch.get() for _ in range(count)]


class TestNamespace:
    async def test_every_key_starts_with_the_prefix_and_ids_with_colons_stay_apart(
        self, make_store: Callable[..., SessionStore], raw: aioredis.Redis, redis_prefix: str
    ) -> None:
        store = redis_store(make_store)
        # With a ':' separator, session "a:v" could have collided with the variables of "a".
        await store.create("a")
        await store.create("a:v")
        await store.register_variable("a", "x", "integer", 1)
        await store.register_variable("a:v", "x", "integer", 2)
        assert (await store.get_variable("a", "x")).value == 1
        assert (await store.get_variable("a:v", "x")).value == 2
        p = redis_prefix
        assert sorted(await raw.keys(f"{p}:*")) == sorted(
            [f"{p}:n", f"{p}:sessions"]
            + [f"{p}:{kind}{{{sid}}}" for kind in "svh" for sid in ("a", "a:v")]
        )

    async def test_two_prefixes_on_one_server_share_nothing(
        self, make_store: Callable[..., SessionStore]
    ) -> None:
        one = redis_store(make_store, prefix="ns-one")
        two = redis_store(make_store, prefix="ns-two")
        await one.create("s1")
        with pytest.raises(SessionNotFoundError):
            await two.get("s1")
        assert [s.id for s in await two.list_sessions()] == []

    @pytest.mark.parametrize("name", ["x#1", "x{y}", "*", "x|1"])
    async def test_a_name_that_is_not_a_variable_name_reaches_no_key(
        self, make_store: Callable[..., SessionStore], name: str
    ) -> None:
        store = redis_store(make_store)
        await store.create("s")
        await store.register_variable("s", "x", "integer", 1)
        await store.set_variable("s", "x", 2)
        with pytest.raises(VariableNotFoundError):
            await store.get_variable("s", name)
        with pytest.raises(VariableNotFoundError):
            await store.history("s", name)
        with pytest.raises(VariableValidationError):
            await store.register_variable("s", name, "integer", 1)
        assert await store.get_many("s", [name, "x"]) == (
            {"x": await store.get_variable("s", "x")},
            [name],
        )

    async def test_a_value_with_bytes_round_trips_and_one_the_codec_cannot_carry_is_refused(
        self, make_store: Callable[..., SessionStore]
    ) -> None:
        store = redis_store(make_store)
        session = await store.create("s", metadata={"blob": b"\x00\xffraw", "n": [1, 2.5]})
        assert session.metadata == {"blob": b"\x00\xffraw", "n": [1, 2.5]}
        assert (await store.get("s")).metadata == session.metadata
        with pytest.raises(SerializationError, match="metadata of session 't'"):
            await store.create("t", metadata={"bad": {1, 2}})
        with pytest.raises(SessionNotFoundError):
            await store.get("t")


class TestRedisExpiry:
    async def test_the_keys_expire_in_redis_with_the_ttl_and_every_touch_restarts_it(
        self, make_store: Callable[..., SessionStore], raw: aioredis.Redis, redis_prefix: str
    ) -> None:
        store = redis_store(make_store, expiry_grace=0.0)
        await store.create("s", ttl=60)
        await store.register_variable("s", "x", "integer", 1)
        keys = [f"{redis_prefix}:{kind}{{s}}" for kind in "svh"]
        for key in keys:
            assert 59_000 < await raw.pttl(key) <= 60_000
            await raw.pexpire(key, 1_000)  # as if 59 seconds had passed
        await store.get_variable("s", "x")
        for key in keys:
            assert 59_000 < await raw.pttl(key) <= 60_000
        await store.create("forever", ttl=math.inf)
        assert await raw.pttl(f"{redis_prefix}:s{{forever}}") == -1  # no expiry

    async def test_redis_itself_removes_a_session_whose_ttl_ran_out(
        self, redis_server: RedisServer, raw: aioredis.Redis, redis_prefix: str
    ) -> None:
        from snakepit.bridge import RedisSessionStore

        await raw.config_set("notify-keyspace-events", "Ex")
        expired = raw.pubsub()
        await expired.subscribe("__keyevent@0__:expired")
        store = RedisSessionStore(redis_server.url, prefix=redis_prefix)  # the real clock
        try:
            await store.create("brief", ttl=0.2)
            key = f"{redis_prefix}:s{{brief}}"
            async with asyncio.timeout(BOUND):
                while (message := await expired.get_message(timeout=None)) is None or (
                    message["data"] != key
                ):
                    pass
            with pytest.raises(SessionNotFoundError):
                await store.get("brief")
            assert await store.expire_due() == ["brief"]  # the index catches up, once
            assert await store.expire_due() == []
        finally:
            await expired.aclose()
            await store.close()

    async def test_a_session_redis_dropped_ends_the_watches_of_every_store(
        self,
        make_store: Callable[..., SessionStore],
        raw: aioredis.Redis,
        redis_prefix: str,
        clock: FakeClock,
    ) -> None:
        one, two = redis_store(make_store), redis_store(make_store)
        await one.create("s", ttl=60)
        watch = await two.watch("s")
        await clock.advance(60)
        await raw.delete(*(f"{redis_prefix}:{kind}{{s}}" for kind in "svh"))  # as expiry does
        assert await one.expire_due() == ["s"]
        async with asyncio.timeout(BOUND):
            assert [u async for u in watch] == []
        assert watch.ended_reason == "session expired"


class TestSeveralStores:
    async def test_a_watch_on_one_store_sees_the_writes_of_another_in_order(
        self, make_store: Callable[..., SessionStore]
    ) -> None:
        here, there = redis_store(make_store, name="here"), redis_store(make_store, name="there")
        await here.create("s")
        await here.register_variable("s", "n", "integer", 0)
        watch = await there.watch("s", include_current=True)
        writers = [asyncio.create_task(here.set_variable("s", "n", i)) for i in range(1, 21)]
        seen = await take(watch, 21)
        await asyncio.gather(*writers)
        assert [u.version for u in seen] == list(range(1, 22))  # no gap, no repeat
        assert {u.source for u in seen[1:]} == {"here"}

    async def test_a_watch_started_during_writes_has_no_gap_and_no_repeat(
        self, make_store: Callable[..., SessionStore]
    ) -> None:
        here, there = redis_store(make_store), redis_store(make_store)
        await here.create("s")
        await here.register_variable("s", "n", "integer", 0)
        writers = [asyncio.create_task(here.set_variable("s", "n", i)) for i in range(1, 31)]
        watch = await there.watch("s", include_current=True)
        first = await take(watch, 1)
        rest = await take(watch, 31 - first[0].version)
        await asyncio.gather(*writers)
        versions = [u.version for u in first + rest]
        assert versions == list(range(first[0].version, 32))

    @pytest.mark.parametrize("expected", [None, 1])
    async def test_a_write_that_lost_a_race_after_its_read_is_never_applied_blindly(
        self,
        make_store: Callable[..., SessionStore],
        monkeypatch: pytest.MonkeyPatch,
        expected: int | None,
    ) -> None:
        here, there = redis_store(make_store), redis_store(make_store)
        await here.create("s")
        await here.register_variable("s", "n", "integer", 0)
        commit = here._commit
        raced = []

        async def race_then_commit(*args: Any) -> bool:
            if not raced:  # another host writes between this write's read and its commit
                raced.append(await there.set_variable("s", "n", 100))
            return await commit(*args)

        monkeypatch.setattr(here, "_commit", race_then_commit)
        if expected is None:  # planned again on the new version: nothing is lost
            assert (await here.set_variable("s", "n", 1)).version == 3
            history = await here.history("s", "n")
            assert [(v.version, v.value) for v in history] == [(1, 0), (2, 100), (3, 1)]
        else:  # compare-and-set: the expected version is gone
            with pytest.raises(VersionConflictError, match="version 2, not the expected 1"):
                await here.set_variable("s", "n", 1, expected_version=expected)
            assert (await here.get_variable("s", "n")).value == 100

    async def test_the_quota_counts_the_sessions_of_every_store(
        self, make_store: Callable[..., SessionStore]
    ) -> None:
        small = redis_store(make_store, max_sessions=2)
        other = redis_store(make_store)
        await other.create("a")
        await other.create("b")
        with pytest.raises(SessionQuotaError, match="max_sessions=2"):
            await small.create("c")
        await other.delete("a")
        assert (await small.create("c")).id == "c"

    async def test_junk_published_on_a_sessions_channel_is_skipped_not_fatal(
        self, make_store: Callable[..., SessionStore], raw: aioredis.Redis, redis_prefix: str
    ) -> None:
        store = redis_store(make_store)
        await store.create("s")
        await store.register_variable("s", "n", "integer", 0)
        watch = await store.watch("s")
        for junk in ("no separators", "x|notanumber|U", "|99|Unot packed", "|98|UJ{}"):
            await raw.publish(f"{redis_prefix}:w{{s}}", junk)
        await store.set_variable("s", "n", 1)
        seen = await take(watch, 1)
        assert [(u.version, u.value) for u in seen] == [(2, 1)]
        assert not watch.ended

    async def test_a_session_deleted_by_one_store_is_gone_for_the_other(
        self, make_store: Callable[..., SessionStore]
    ) -> None:
        one, two = redis_store(make_store), redis_store(make_store)
        await one.create("s", metadata={"who": "one"})
        assert (await two.get("s")).metadata == {"who": "one"}
        await two.set_affinity("s", "w2")
        assert await one.get_affinity("s") == "w2"
        watch = await one.watch("s")
        assert await two.delete("s") is True
        async with asyncio.timeout(BOUND):
            assert [u async for u in watch] == []
        assert watch.ended_reason == "session deleted"
        with pytest.raises(SessionNotFoundError):
            await one.get("s")


class TestUnavailable:
    async def test_a_redis_that_is_not_there_is_a_typed_error_naming_the_url_not_the_password(
        self, own_redis_server: RedisServer
    ) -> None:
        from snakepit.bridge import RedisSessionStore

        server = own_redis_server
        url = f"redis://:hunter2@127.0.0.1:{server.port}/0"
        server.stop()  # nothing listens on that port any more
        store = RedisSessionStore(url, name="gone", timeout=2.0)
        try:
            async with asyncio.timeout(BOUND):
                with pytest.raises(SessionStoreUnavailableError) as info:
                    await store.create("s")
                with pytest.raises(SessionStoreUnavailableError):
                    await store.watch("s")
        finally:
            await store.close()
        assert info.value.url == f"redis://:***@127.0.0.1:{server.port}/0"
        assert info.value.url in str(info.value)
        assert "hunter2" not in str(info.value)
        assert info.value.operation == "create"

    async def test_a_redis_killed_mid_use_fails_each_call_and_ends_watches_with_the_error(
        self, own_redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from snakepit.bridge import RedisSessionStore

        server = own_redis_server
        store = RedisSessionStore(server.url, name="victim", timeout=2.0)
        try:
            await store.create("s")
            await store.register_variable("s", "n", "integer", 0)
            watch = await store.watch("s")
            # The update travels by pub/sub: kill Redis only once it has reached the watch.
            arrived = asyncio.Event()
            offer = watch.offer

            def offered(event: VariableUpdated) -> None:
                offer(event)
                arrived.set()

            monkeypatch.setattr(watch, "offer", offered)
            await store.set_variable("s", "n", 1)
            await asyncio.wait_for(arrived.wait(), BOUND)
            server.kill()
            async with asyncio.timeout(BOUND):
                assert (await watch.get()).version == 2  # what arrived before is kept
                with pytest.raises(SessionStoreUnavailableError):
                    await watch.get()
                for call in (
                    store.get("s"),
                    store.set_variable("s", "n", 2),
                    store.list_sessions(),
                    store.delete("s"),
                    store.watch("s"),
                ):
                    with pytest.raises(SessionStoreUnavailableError, match=server.url):
                        await call
            assert watch.ended_reason == "session store unavailable"
        finally:
            async with asyncio.timeout(BOUND):
                await store.close()
