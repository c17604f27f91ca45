"""Store conformance, sessions: creation, sliding TTL and expiry, quota, affinity, deletion.

Every test runs on every backend (``backend``: memory, redis).
"""

from __future__ import annotations

import asyncio
import math
from typing import TYPE_CHECKING, Any

import pytest

from snakepit.bridge import SessionInfo, SessionStore
from snakepit.errors import SessionNotFoundError, SessionQuotaError
from snakepit.events import (
    Event,
    EventBus,
    SessionCreated,
    SessionDeleted,
    SessionExpired,
    Subscription,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from supertester import FakeClock

    MakeStore = Callable[..., SessionStore]


async def next_event(sub: Subscription) -> Event:
    async with asyncio.timeout(2):
        return await sub.get()


def kinds(events: list[Event]) -> list[tuple[str, str]]:
    return [(e.kind, getattr(e, "session_id", "")) for e in events]


class TestCreate:
    async def test_a_new_session_gets_a_generated_id_and_the_default_ttl(
        self, store: SessionStore, clock: FakeClock
    ) -> None:
        session = await store.create(metadata={"user": "ada"})
        assert isinstance(session, SessionInfo)
        assert session.id
        assert session.metadata == {"user": "ada"}
        assert session.ttl == 60.0
        assert session.created_at == session.last_access == clock.time()
        assert session.affinity_worker is None
        assert session.variable_count == 0

    async def test_generated_ids_are_unique(self, store: SessionStore) -> None:
        ids = {(await store.create()).id for _ in range(50)}
        assert len(ids) == 50

    async def test_creating_publishes_session_created_with_source_and_time(
        self, store: SessionStore, clock: FakeClock, published: list[Event]
    ) -> None:
        await store.create("s1")
        assert published == [SessionCreated(session_id="s1", source="test-store", at=clock.time())]

    async def test_creating_an_existing_id_is_a_value_error(self, store: SessionStore) -> None:
        await store.create("s1")
        with pytest.raises(ValueError, match=r"'s1' already exists.*get_or_create"):
            await store.create("s1")

    @pytest.mark.parametrize("bad_id", ["", "a b", "x" * 129, "sé", "a/b", 42])
    async def test_a_malformed_id_is_a_value_error(self, store: SessionStore, bad_id: Any) -> None:
        with pytest.raises(ValueError, match="invalid session id"):
            await store.create(bad_id)
        with pytest.raises(ValueError, match="invalid session id"):
            await store.get_or_create(bad_id)

    async def test_an_id_of_128_allowed_characters_is_accepted(self, store: SessionStore) -> None:
        sid = ("Ab0_.:-" * 19)[:128]
        assert (await store.create(sid)).id == sid

    @pytest.mark.parametrize("bad_ttl", [0, -1, math.nan, True, "60"])
    async def test_a_ttl_that_is_not_positive_is_a_value_error(
        self, store: SessionStore, make_store: MakeStore, bad_ttl: Any
    ) -> None:
        with pytest.raises(ValueError, match="ttl"):
            await store.create("s1", ttl=bad_ttl)
        with pytest.raises(ValueError, match="ttl"):
            make_store(ttl=bad_ttl)

    async def test_the_metadata_given_is_copied(self, store: SessionStore) -> None:
        metadata = {"user": "ada"}
        await store.create("s1", metadata=metadata)
        metadata["user"] = "eve"
        (await store.get("s1")).metadata["user"] = "mallory"
        assert (await store.get("s1")).metadata == {"user": "ada"}

    async def test_get_or_create_creates_a_missing_session_then_returns_it(
        self, store: SessionStore, published: list[Event]
    ) -> None:
        first = await store.get_or_create("s1", metadata={"n": 1}, ttl=5)
        again = await store.get_or_create("s1", metadata={"n": 2}, ttl=9)
        assert (first.id, first.ttl) == ("s1", 5.0)
        assert (again.metadata, again.ttl) == ({"n": 1}, 5.0)
        assert kinds(published) == [("SessionCreated", "s1")]

    def test_the_store_implements_the_store_interface(self, store: SessionStore) -> None:
        assert isinstance(store, SessionStore)

    @pytest.mark.parametrize("kwargs", [{"max_sessions": 0}, {"history_limit": 0}, {"ttl": -5.0}])
    def test_a_store_rejects_settings_out_of_range(
        self, make_store: MakeStore, kwargs: dict[str, Any]
    ) -> None:
        with pytest.raises(ValueError, match=next(iter(kwargs))):
            make_store(**kwargs)


class TestSlidingTtl:
    async def test_every_access_restarts_the_ttl(
        self, store: SessionStore, clock: FakeClock
    ) -> None:
        await store.create("s1", ttl=10)
        for _ in range(5):
            await clock.advance(8)
            await store.get("s1")
        await clock.advance(9.5)
        assert (await store.touch("s1")).last_access == clock.time()
        await clock.advance(10)
        with pytest.raises(SessionNotFoundError):
            await store.get("s1")

    async def test_an_expired_session_is_gone_on_access_without_the_expiry_loop(
        self, store: SessionStore, clock: FakeClock, published: list[Event]
    ) -> None:
        await store.create("s1", ttl=10)
        await clock.advance(10)
        with pytest.raises(SessionNotFoundError, match=r"'s1' not found") as info:
            await store.get("s1")
        assert info.value.session_id == "s1"
        with pytest.raises(SessionNotFoundError):
            await store.touch("s1")
        assert kinds(published) == [("SessionCreated", "s1"), ("SessionExpired", "s1")]

    async def test_expire_due_removes_only_the_sessions_whose_ttl_ran_out(
        self, store: SessionStore, clock: FakeClock, published: list[Event]
    ) -> None:
        await store.create("short", ttl=5)
        await store.create("long", ttl=50)
        await store.create("touched", ttl=5)
        await clock.advance(4)
        await store.touch("touched")
        await clock.advance(2)
        assert await store.expire_due() == ["short"]
        assert await store.expire_due() == []
        assert [s.id for s in await store.list_sessions()] == ["long", "touched"]
        assert published[-1] == SessionExpired(
            session_id="short", source="test-store", at=clock.time()
        )

    async def test_an_infinite_ttl_never_expires(
        self, store: SessionStore, clock: FakeClock
    ) -> None:
        await store.create("forever", ttl=math.inf)
        await clock.advance(1e12)
        assert await store.expire_due() == []
        assert (await store.get("forever")).id == "forever"

    async def test_an_expired_id_can_be_created_again(
        self, store: SessionStore, clock: FakeClock
    ) -> None:
        await store.create("s1", ttl=1)
        await store.register_variable("s1", "x", "integer", 1)
        await clock.advance(1)
        session = await store.create("s1")
        assert session.variable_count == 0


class TestExpiryLoop:
    async def test_the_loop_expires_a_session_once_the_clock_passes_its_ttl(
        self, make_store: MakeStore, clock: FakeClock, bus: EventBus
    ) -> None:
        sub = bus.subscribe(SessionExpired)
        store = make_store(name="loop")
        loop = asyncio.create_task(store.run_expiry())
        await store.create("s1", ttl=10)
        await clock.wait_for_sleepers(1)
        await clock.advance(11)
        expired = await next_event(sub)
        assert expired == SessionExpired(session_id="s1", source="loop", at=expired.at)
        assert clock.time() - 1 <= expired.at <= clock.time()
        with pytest.raises(SessionNotFoundError):
            await store.get("s1")
        await store.close()
        async with asyncio.timeout(2):
            await loop

    async def test_the_loop_sees_a_new_session_that_expires_sooner(
        self, make_store: MakeStore, clock: FakeClock, bus: EventBus
    ) -> None:
        sub = bus.subscribe(SessionExpired)
        store = make_store()
        loop = asyncio.create_task(store.run_expiry())
        await store.create("slow", ttl=100)
        await clock.wait_for_sleepers(1)
        await store.create("fast", ttl=5)
        await clock.advance(6)  # a loop still sleeping towards t=100 would never see it
        assert (await next_event(sub)).session_id == "fast"  # type: ignore[attr-defined]
        assert [s.id for s in await store.list_sessions()] == ["slow"]
        await store.close()
        async with asyncio.timeout(2):
            await loop

    async def test_closing_the_store_ends_a_loop_run_by_the_caller(
        self, make_store: MakeStore, clock: FakeClock
    ) -> None:
        store = make_store()
        await store.create("s1", ttl=10)
        task = asyncio.create_task(store.run_expiry())
        await clock.wait_for_sleepers(1)
        await store.close()
        async with asyncio.timeout(2):
            await task
        assert clock.sleepers == 0

    async def test_a_cancelled_loop_leaves_no_timer_behind(
        self, make_store: MakeStore, clock: FakeClock
    ) -> None:
        store = make_store()
        await store.create("s1", ttl=10)
        task = asyncio.create_task(store.run_expiry())
        await clock.wait_for_sleepers(1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert clock.sleepers == 0


class TestQuota:
    async def test_creating_beyond_max_sessions_is_a_quota_error_naming_the_limit(
        self, make_store: MakeStore
    ) -> None:
        store = make_store(max_sessions=2, name="small")
        await store.create("a")
        await store.create("b")
        with pytest.raises(SessionQuotaError, match=r"max_sessions=2") as info:
            await store.create("c")
        assert info.value.max_sessions == 2
        assert info.value.session_id == "c"
        with pytest.raises(SessionQuotaError):
            await store.get_or_create("c")
        assert await store.get_or_create("a")

    async def test_expired_sessions_do_not_count_against_the_quota(
        self, make_store: MakeStore, clock: FakeClock, bus: EventBus
    ) -> None:
        store = make_store(max_sessions=1, ttl=10)
        sub = bus.subscribe(SessionExpired)
        await store.create("old")
        await clock.advance(10)
        await store.create("new")
        assert (await next_event(sub)).session_id == "old"  # type: ignore[attr-defined]

    async def test_deleting_a_session_frees_its_slot(self, make_store: MakeStore) -> None:
        store = make_store(max_sessions=1)
        await store.create("a")
        await store.delete("a")
        assert (await store.create("b")).id == "b"


class TestAffinity:
    async def test_a_session_remembers_its_worker_until_unpinned(self, store: SessionStore) -> None:
        await store.create("s1")
        assert await store.get_affinity("s1") is None
        snapshot = await store.set_affinity("s1", "worker-3")
        assert snapshot.affinity_worker == "worker-3"
        assert await store.get_affinity("s1") == "worker-3"
        assert (await store.get("s1")).affinity_worker == "worker-3"
        await store.set_affinity("s1", None)
        assert await store.get_affinity("s1") is None

    async def test_dropping_a_workers_affinity_unpins_only_its_sessions(
        self, store: SessionStore
    ) -> None:
        for sid, worker in [("a", "w1"), ("b", "w2"), ("c", "w1")]:
            await store.create(sid)
            await store.set_affinity(sid, worker)
        assert await store.drop_affinity("w1") == ["a", "c"]
        assert [await store.get_affinity(s) for s in "abc"] == [None, "w2", None]
        assert await store.drop_affinity("w1") == []

    async def test_affinity_of_a_missing_session_is_session_not_found(
        self, store: SessionStore
    ) -> None:
        with pytest.raises(SessionNotFoundError):
            await store.get_affinity("nope")
        with pytest.raises(SessionNotFoundError):
            await store.set_affinity("nope", "w1")

    async def test_reading_affinity_touches_the_session(
        self, store: SessionStore, clock: FakeClock
    ) -> None:
        await store.create("s1", ttl=10)
        await clock.advance(9)
        await store.get_affinity("s1")
        await clock.advance(9)
        assert (await store.get("s1")).id == "s1"


class TestDelete:
    async def test_deleting_removes_the_session_and_publishes_session_deleted_once(
        self, store: SessionStore, clock: FakeClock, published: list[Event]
    ) -> None:
        await store.create("s1")
        assert await store.delete("s1") is True
        assert await store.delete("s1") is False
        with pytest.raises(SessionNotFoundError):
            await store.get("s1")
        assert published[-1] == SessionDeleted(
            session_id="s1", source="test-store", at=clock.time()
        )
        assert kinds(published) == [("SessionCreated", "s1"), ("SessionDeleted", "s1")]

    async def test_deleting_a_session_drops_its_variables(self, store: SessionStore) -> None:
        await store.create("s1")
        await store.register_variable("s1", "x", "integer", 1)
        await store.delete("s1")
        await store.create("s1")
        assert await store.list_variables("s1") == []

    async def test_deleting_an_unknown_or_malformed_id_is_a_no_op(
        self, store: SessionStore, published: list[Event]
    ) -> None:
        assert await store.delete("never") is False
        assert await store.delete("bad id!") is False
        assert published == []


class TestListSessions:
    async def test_listing_shows_live_sessions_oldest_first_without_touching_them(
        self, store: SessionStore, clock: FakeClock
    ) -> None:
        await store.create("a", ttl=5)
        await clock.advance(1)
        await store.create("b", ttl=100)
        await store.create("c", ttl=100)
        await clock.advance(3)
        before = await store.list_sessions()
        await clock.advance(2)
        after = await store.list_sessions()
        assert [s.id for s in before] == ["a", "b", "c"]
        assert [s.id for s in after] == ["b", "c"]
        assert [s.last_access for s in after] == [s.last_access for s in before[1:]]

    async def test_a_snapshot_counts_the_sessions_variables(self, store: SessionStore) -> None:
        await store.create("s1")
        await store.register_variable("s1", "x", "integer", 1)
        await store.register_variable("s1", "y", "string", "a")
        assert (await store.get("s1")).variable_count == 2
        assert [s.variable_count for s in await store.list_sessions()] == [2]
