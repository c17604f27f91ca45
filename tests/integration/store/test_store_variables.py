"""Store conformance, variables: versions, compare-and-set, history, batches, watches.

Every test runs on every backend (``backend``: memory, redis).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import pytest

from snakepit.bridge import SessionStore, Variable, VariableWatch
from snakepit.errors import (
    SessionNotFoundError,
    VariableNotFoundError,
    VariableValidationError,
    VersionConflictError,
)
from snakepit.events import Event, VariableUpdated

if TYPE_CHECKING:
    from collections.abc import Callable

    from supertester import FakeClock

    MakeStore = Callable[..., SessionStore]

SID = "s1"


@pytest.fixture
async def session(store: SessionStore) -> str:
    await store.create(SID)
    return SID


async def drain(watch: VariableWatch) -> list[VariableUpdated]:
    """Every update until the watch ends (it must end within two seconds)."""
    async with asyncio.timeout(2):
        return [update async for update in watch]


def updates(events: list[Event]) -> list[tuple[str, int, object]]:
    return [(e.name, e.version, e.value) for e in events if isinstance(e, VariableUpdated)]


class TestRegister:
    async def test_a_registered_variable_starts_at_version_1_with_its_definition(
        self, store: SessionStore, session: str, clock: FakeClock
    ) -> None:
        variable = await store.register_variable(
            session,
            "temperature",
            "float",
            1,
            constraints={"min": 0, "max": 2},
            metadata={"doc": "sampling temperature"},
        )
        assert variable == Variable(
            name="temperature",
            type="float",
            value=1.0,
            version=1,
            constraints={"min": 0, "max": 2},
            metadata={"doc": "sampling temperature"},
            created_at=clock.time(),
            updated_at=clock.time(),
        )
        assert await store.get_variable(session, "temperature") == variable

    async def test_registering_publishes_variable_updated_at_version_1(
        self, store: SessionStore, session: str, published: list[Event], clock: FakeClock
    ) -> None:
        await store.register_variable(session, "x", "integer", 7)
        assert published[-1] == VariableUpdated(
            session_id=session, name="x", version=1, value=7, source="test-store", at=clock.time()
        )

    async def test_registering_the_same_definition_again_returns_the_existing_variable(
        self, store: SessionStore, session: str, published: list[Event]
    ) -> None:
        first = await store.register_variable(session, "x", "integer", 1, constraints={"min": 0})
        await store.set_variable(session, "x", 5)
        again = await store.register_variable(session, "x", "integer", 2, constraints={"min": 0})
        assert (again.version, again.value) == (2, 5)
        assert first.version == 1
        assert updates(published) == [("x", 1, 1), ("x", 2, 5)]

    @pytest.mark.parametrize(
        ("type_name", "constraints"),
        [("float", {"min": 0}), ("integer", {"min": 1}), ("integer", None)],
    )
    async def test_registering_a_name_again_with_another_definition_is_a_value_error(
        self, store: SessionStore, session: str, type_name: str, constraints: object
    ) -> None:
        await store.register_variable(session, "x", "integer", 1, constraints={"min": 0})
        with pytest.raises(ValueError, match=r"'x'.*already registered as integer"):
            await store.register_variable(
                session,
                "x",
                type_name,
                1,
                constraints=constraints,  # type: ignore[arg-type]
            )

    async def test_an_invalid_initial_value_registers_nothing(
        self, store: SessionStore, session: str
    ) -> None:
        with pytest.raises(VariableValidationError) as info:
            await store.register_variable(session, "x", "integer", 11, constraints={"max": 10})
        assert (info.value.variable, info.value.constraint, info.value.value) == ("x", "max", 11)
        with pytest.raises(VariableNotFoundError):
            await store.get_variable(session, "x")

    async def test_a_bad_name_type_or_constraint_is_a_validation_error(
        self, store: SessionStore, session: str
    ) -> None:
        with pytest.raises(VariableValidationError, match="'name'"):
            await store.register_variable(session, "1x", "integer", 1)
        with pytest.raises(VariableValidationError, match="unknown type"):
            await store.register_variable(session, "x", "int", 1)
        with pytest.raises(VariableValidationError, match="unknown constraint"):
            await store.register_variable(session, "x", "integer", 1, constraints={"low": 0})

    async def test_variables_of_a_missing_session_are_session_not_found(
        self, store: SessionStore
    ) -> None:
        with pytest.raises(SessionNotFoundError):
            await store.register_variable("nope", "x", "integer", 1)
        with pytest.raises(SessionNotFoundError):
            await store.get_variable("nope", "x")
        with pytest.raises(SessionNotFoundError):
            await store.watch("nope")

    async def test_variable_access_keeps_the_session_alive(
        self, store: SessionStore, session: str, clock: FakeClock
    ) -> None:
        await store.register_variable(session, "x", "integer", 1)
        for _ in range(3):
            await clock.advance(50)
            await store.get_variable(session, "x")
        assert (await store.get(session)).variable_count == 1


class TestSet:
    async def test_each_write_increments_the_version_and_stores_the_normalized_value(
        self, store: SessionStore, session: str, clock: FakeClock
    ) -> None:
        registered = await store.register_variable(session, "n", "integer", 0)
        await clock.advance(1)
        v2 = await store.set_variable(session, "n", 4.0)
        v3 = await store.set_variable(session, "n", 4)
        assert [(v.version, v.value) for v in (v2, v3)] == [(2, 4), (3, 4)]
        assert type(v2.value) is int
        assert v3.created_at == registered.created_at
        assert v3.updated_at == registered.updated_at + 1

    async def test_a_write_with_the_current_expected_version_succeeds(
        self, store: SessionStore, session: str
    ) -> None:
        await store.register_variable(session, "n", "integer", 0)
        assert (await store.set_variable(session, "n", 1, expected_version=1)).version == 2

    async def test_a_write_with_a_stale_expected_version_is_a_conflict_naming_both_versions(
        self, store: SessionStore, session: str
    ) -> None:
        await store.register_variable(session, "n", "integer", 0)
        await store.set_variable(session, "n", 1)
        with pytest.raises(VersionConflictError, match=r"version 2, not the expected 1") as info:
            await store.set_variable(session, "n", 99, expected_version=1)
        error = info.value
        assert (error.variable, error.expected_version, error.actual_version) == ("n", 1, 2)
        assert (await store.get_variable(session, "n")).value == 1

    async def test_an_invalid_value_is_rejected_and_changes_nothing(
        self, store: SessionStore, session: str, published: list[Event]
    ) -> None:
        await store.register_variable(
            session, "mode", "choice", "a", constraints={"choices": ["a", "b"]}
        )
        with pytest.raises(VariableValidationError, match=r"'mode'.*'c'.*'choices'"):
            await store.set_variable(session, "mode", "c")
        current = await store.get_variable(session, "mode")
        assert (current.version, current.value) == (1, "a")
        assert len(updates(published)) == 1

    async def test_writing_an_unregistered_variable_is_variable_not_found(
        self, store: SessionStore, session: str
    ) -> None:
        with pytest.raises(VariableNotFoundError, match="register it first") as info:
            await store.set_variable(session, "ghost", 1)
        assert (info.value.variable, info.value.session_id) == ("ghost", session)

    async def test_ten_concurrent_writes_make_ten_versions(
        self, store: SessionStore, session: str
    ) -> None:
        await store.register_variable(session, "n", "integer", 0)
        results = await asyncio.gather(
            *(asyncio.create_task(store.set_variable(session, "n", i)) for i in range(1, 11))
        )
        current = await store.get_variable(session, "n")
        assert current.version == 11
        assert current.value in range(1, 11)
        assert sorted(v.version for v in results) == list(range(2, 12))
        assert [v.version for v in await store.history(session, "n")] == list(range(1, 12))

    async def test_concurrent_writes_with_the_same_expected_version_let_exactly_one_win(
        self, store: SessionStore, session: str
    ) -> None:
        await store.register_variable(session, "n", "integer", 0)
        results = await asyncio.gather(
            *(store.set_variable(session, "n", i, expected_version=1) for i in range(10)),
            return_exceptions=True,
        )
        assert sum(isinstance(r, Variable) for r in results) == 1
        assert sum(isinstance(r, VersionConflictError) for r in results) == 9


class TestHistory:
    async def test_history_lists_every_version_oldest_first(
        self, store: SessionStore, session: str
    ) -> None:
        await store.register_variable(session, "s", "string", "a")
        await store.set_variable(session, "s", "b")
        await store.set_variable(session, "s", "c")
        history = await store.history(session, "s")
        assert [(v.version, v.value) for v in history] == [(1, "a"), (2, "b"), (3, "c")]
        assert history[-1] == await store.get_variable(session, "s")

    async def test_history_keeps_only_the_newest_history_limit_versions(
        self, make_store: MakeStore
    ) -> None:
        store = make_store(history_limit=3)
        await store.create(SID)
        await store.register_variable(SID, "n", "integer", 1)
        for value in range(2, 6):
            await store.set_variable(SID, "n", value)
        assert [v.version for v in await store.history(SID, "n")] == [3, 4, 5]

    async def test_rollback_writes_an_old_value_as_a_new_version(
        self, store: SessionStore, session: str, published: list[Event]
    ) -> None:
        await store.register_variable(session, "s", "string", "good")
        await store.set_variable(session, "s", "bad")
        restored = await store.rollback(session, "s", 1)
        assert (restored.version, restored.value) == (3, "good")
        assert [v.value for v in await store.history(session, "s")] == ["good", "bad", "good"]
        assert updates(published)[-1] == ("s", 3, "good")

    async def test_rollback_to_a_version_no_longer_kept_is_variable_not_found(
        self, make_store: MakeStore
    ) -> None:
        store = make_store(history_limit=2)
        await store.create(SID)
        await store.register_variable(SID, "n", "integer", 1)
        await store.set_variable(SID, "n", 2)
        await store.set_variable(SID, "n", 3)
        with pytest.raises(VariableNotFoundError, match=r"no version 1.*kept: 2\.\.3") as info:
            await store.rollback(SID, "n", 1)
        assert info.value.available_versions == [2, 3]
        with pytest.raises(VariableNotFoundError):
            await store.rollback(SID, "n", 9)
        assert (await store.get_variable(SID, "n")).version == 3

    async def test_rollback_honours_the_expected_version(
        self, store: SessionStore, session: str
    ) -> None:
        await store.register_variable(session, "n", "integer", 1)
        await store.set_variable(session, "n", 2)
        with pytest.raises(VersionConflictError) as info:
            await store.rollback(session, "n", 1, expected_version=1)
        assert (info.value.expected_version, info.value.actual_version) == (1, 2)
        assert (await store.rollback(session, "n", 1, expected_version=2)).version == 3


class TestBatch:
    async def test_get_many_returns_the_found_variables_and_the_missing_names(
        self, store: SessionStore, session: str
    ) -> None:
        await store.register_variable(session, "a", "integer", 1)
        await store.register_variable(session, "b", "integer", 2)
        found, missing = await store.get_many(session, ["a", "x", "b", "y"])
        assert {name: v.value for name, v in found.items()} == {"a": 1, "b": 2}
        assert missing == ["x", "y"]

    async def test_an_atomic_batch_with_one_invalid_value_changes_nothing(
        self, store: SessionStore, session: str, published: list[Event]
    ) -> None:
        await store.register_variable(session, "a", "integer", 1)
        await store.register_variable(session, "b", "integer", 2, constraints={"max": 10})
        await store.register_variable(session, "c", "integer", 3)
        before = await store.list_variables(session)
        with pytest.raises(VariableValidationError) as info:
            await store.set_many(session, {"a": 10, "b": 11, "c": 30}, atomic=True)
        assert (info.value.variable, info.value.constraint) == ("b", "max")
        assert await store.list_variables(session) == before
        assert len(updates(published)) == 3

    async def test_an_atomic_batch_reports_every_failing_name(
        self, store: SessionStore, session: str
    ) -> None:
        await store.register_variable(session, "a", "integer", 1)
        with pytest.raises(VariableNotFoundError) as info:
            await store.set_many(session, {"ghost": 1, "a": "x", "b": 2}, atomic=True)
        assert info.value.variable == "ghost"
        assert info.value.__notes__ == [
            "atomic set_many wrote nothing; 3 of 3 values failed (also: a, b)"
        ]
        assert (await store.get_variable(session, "a")).version == 1

    async def test_an_atomic_batch_with_a_stale_expected_version_changes_nothing(
        self, store: SessionStore, session: str
    ) -> None:
        await store.register_variable(session, "a", "integer", 1)
        await store.register_variable(session, "b", "integer", 1)
        await store.set_variable(session, "b", 2)
        with pytest.raises(VersionConflictError):
            await store.set_many(
                session, {"a": 5, "b": 5}, atomic=True, expected_versions={"a": 1, "b": 1}
            )
        assert [v.value for v in await store.list_variables(session)] == [1, 2]

    async def test_a_valid_atomic_batch_writes_every_value(
        self, store: SessionStore, session: str
    ) -> None:
        await store.register_variable(session, "a", "integer", 1)
        await store.register_variable(session, "b", "string", "x")
        result = await store.set_many(session, {"a": 2, "b": "y"}, atomic=True)
        assert result.ok
        assert {n: (v.version, v.value) for n, v in result.updated.items()} == {
            "a": (2, 2),
            "b": (2, "y"),
        }

    async def test_a_non_atomic_batch_writes_the_valid_values_and_reports_the_rest(
        self, store: SessionStore, session: str
    ) -> None:
        await store.register_variable(session, "a", "integer", 1)
        await store.register_variable(session, "b", "integer", 1, constraints={"min": 0})
        await store.register_variable(session, "c", "integer", 1)
        result = await store.set_many(
            session, {"a": 2, "b": -1, "ghost": 0, "c": 3}, expected_versions={"c": 1}
        )
        assert not result.ok
        assert {n: v.value for n, v in result.updated.items()} == {"a": 2, "c": 3}
        assert isinstance(result.errors["b"], VariableValidationError)
        assert isinstance(result.errors["ghost"], VariableNotFoundError)
        assert (await store.get_variable(session, "b")).version == 1


class TestListAndDelete:
    @pytest.mark.parametrize(
        ("pattern", "expected"),
        [
            ("*", ["model.lr", "model.momentum", "seed", "temp_1", "temp_2"]),
            ("model.*", ["model.lr", "model.momentum"]),
            ("temp_?", ["temp_1", "temp_2"]),
            ("*m*", ["model.lr", "model.momentum", "temp_1", "temp_2"]),
            ("seed", ["seed"]),
            ("[st]*", ["seed", "temp_1", "temp_2"]),
            ("Seed", []),
        ],
    )
    async def test_listing_filters_names_with_a_wildcard_pattern(
        self, store: SessionStore, session: str, pattern: str, expected: list[str]
    ) -> None:
        for name in ["temp_2", "seed", "model.lr", "temp_1", "model.momentum"]:
            await store.register_variable(session, name, "integer", 0)
        assert [v.name for v in await store.list_variables(session, pattern)] == expected

    async def test_a_deleted_variable_is_gone_and_starts_over_when_registered_again(
        self, store: SessionStore, session: str, published: list[Event]
    ) -> None:
        await store.register_variable(session, "x", "integer", 1)
        await store.set_variable(session, "x", 2)
        await store.delete_variable(session, "x")
        with pytest.raises(VariableNotFoundError):
            await store.get_variable(session, "x")
        with pytest.raises(VariableNotFoundError):
            await store.history(session, "x")
        with pytest.raises(VariableNotFoundError):
            await store.delete_variable(session, "x")
        assert isinstance(published[-1], VariableUpdated)
        assert (published[-1].version, published[-1].deleted) == (2, True)
        again = await store.register_variable(session, "x", "string", "new")
        assert (again.version, again.type) == (1, "string")


class TestWatch:
    async def test_a_watch_sees_every_update_in_order_and_ends_when_the_session_is_deleted(
        self, store: SessionStore, session: str
    ) -> None:
        watch = await store.watch(session)
        await store.register_variable(session, "n", "integer", 0)
        for value in range(1, 6):
            await store.set_variable(session, "n", value)
        await store.register_variable(session, "s", "string", "a")
        await store.delete_variable(session, "s")
        await store.delete(session)
        seen = await drain(watch)
        assert [(u.name, u.version, u.value, u.deleted) for u in seen] == [
            ("n", 1, 0, False),
            ("n", 2, 1, False),
            ("n", 3, 2, False),
            ("n", 4, 3, False),
            ("n", 5, 4, False),
            ("n", 6, 5, False),
            ("s", 1, "a", False),
            ("s", 1, None, True),
        ]
        assert watch.ended_reason == "session deleted"

    async def test_a_waiting_watch_receives_an_update_written_by_another_task(
        self, store: SessionStore, session: str
    ) -> None:
        await store.register_variable(session, "n", "integer", 0)
        watch = await store.watch(session)
        waiting = asyncio.create_task(watch.get())
        await store.set_variable(session, "n", 1)
        async with asyncio.timeout(2):
            update = await waiting
        assert (update.name, update.version, update.value) == ("n", 2, 1)

    async def test_a_watch_follows_only_the_names_it_asked_for(
        self, store: SessionStore, session: str
    ) -> None:
        await store.register_variable(session, "a", "integer", 0)
        await store.register_variable(session, "b", "integer", 0)
        watch = await store.watch(session, ["b"])
        await store.set_variable(session, "a", 1)
        await store.set_variable(session, "b", 1)
        await store.delete(session)
        assert [(u.name, u.version) for u in await drain(watch)] == [("b", 2)]

    async def test_a_watch_can_start_with_the_current_values(
        self, store: SessionStore, session: str
    ) -> None:
        await store.register_variable(session, "b", "integer", 5)
        await store.register_variable(session, "a", "string", "x")
        watch = await store.watch(session, include_current=True)
        await store.set_variable(session, "b", 6)
        await store.delete(session)
        assert [(u.name, u.version, u.value) for u in await drain(watch)] == [
            ("a", 1, "x"),
            ("b", 1, 5),
            ("b", 2, 6),
        ]

    async def test_a_watch_ends_when_its_session_expires(
        self, store: SessionStore, session: str, clock: FakeClock
    ) -> None:
        watch = await store.watch(session)
        await clock.advance(60)
        assert await store.expire_due() == [session]
        assert await drain(watch) == []
        assert watch.ended_reason == "session expired"

    async def test_a_watch_ends_when_the_store_closes(
        self, store: SessionStore, session: str
    ) -> None:
        watch = await store.watch(session)
        waiting = asyncio.create_task(drain(watch))
        await store.close()
        assert await waiting == []
        assert watch.ended_reason == "store closed"
        late = await store.watch(session)
        assert late.ended

    async def test_closing_a_watch_stops_it_and_detaches_it_from_the_store(
        self, store: SessionStore, session: str
    ) -> None:
        await store.register_variable(session, "n", "integer", 0)
        async with await store.watch(session) as watch:
            await store.set_variable(session, "n", 1)
        assert watch.ended_reason == "closed"
        assert await drain(watch) == []
        assert "watches 0" in repr(store)

    async def test_a_slow_watch_keeps_the_newest_updates_and_counts_the_dropped(
        self, store: SessionStore, session: str
    ) -> None:
        await store.register_variable(session, "n", "integer", 0)
        watch = await store.watch(session, maxsize=2)
        witness = await store.watch(session)
        for value in range(1, 6):
            await store.set_variable(session, "n", value)
        await store.delete(session)
        # Updates reach a store's watches together: once the witness has every update and
        # the end, so has the slow watch, which has not read any yet.
        assert [u.version for u in await drain(witness)] == [2, 3, 4, 5, 6]
        assert [u.version for u in await drain(watch)] == [5, 6]
        assert watch.dropped == 3

    async def test_a_watch_buffer_must_hold_at_least_one_update(
        self, store: SessionStore, session: str
    ) -> None:
        with pytest.raises(ValueError, match="maxsize"):
            await store.watch(session, maxsize=0)

    async def test_several_watches_each_see_every_update(
        self, store: SessionStore, session: str
    ) -> None:
        watches = [await store.watch(session) for _ in range(3)]
        await store.register_variable(session, "n", "integer", 0)
        await store.set_variable(session, "n", 1)
        await store.delete(session)
        for watch in watches:
            assert [u.version for u in await drain(watch)] == [1, 2]
