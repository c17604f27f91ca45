"""Store conformance, export/import and metadata updates (every backend: memory, redis)."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

import pytest

from snakepit.errors import (
    InvalidValueError,
    SessionNotFoundError,
    VariableNotFoundError,
    VariableRedefinedError,
    VariableValidationError,
    VersionConflictError,
)
from snakepit.events import Event, VariableUpdated

if TYPE_CHECKING:
    from collections.abc import Callable

    from snakepit.bridge import SessionStore, VariableWatch
    from supertester import FakeClock

    MakeStore = Callable[..., SessionStore]


async def _filled(store: SessionStore, sid: str) -> None:
    await store.create(sid)
    await store.register_variable(
        sid, "temperature", "float", 0.5, constraints={"min": 0, "max": 2}, metadata={"doc": "t"}
    )
    await store.set_variable(sid, "temperature", 0.7)
    await store.register_variable(
        sid, "mode", "choice", "fast", constraints={"choices": ["fast", "slow"]}
    )
    await store.register_variable(
        sid, "vec", "embedding", [0.5, 1.5], constraints={"dimensions": 2}
    )


async def _until_ended(
    watch: VariableWatch, store: SessionStore, sid: str
) -> list[VariableUpdated]:
    await store.delete(sid)
    async with asyncio.timeout(2):
        return [u async for u in watch]


class TestExport:
    async def test_the_export_is_json_with_types_constraints_values_and_versions(
        self, store: SessionStore
    ) -> None:
        await _filled(store, "a")
        data = await store.export_variables("a")
        assert json.loads(json.dumps(data, allow_nan=False)) == data
        assert data["format"] == "snakepit.variables/1" and data["session_id"] == "a"
        by_name = {v["name"]: v for v in data["variables"]}
        assert [v["name"] for v in data["variables"]] == ["mode", "temperature", "vec"]
        assert by_name["temperature"]["value"] == 0.7 and by_name["temperature"]["version"] == 2
        assert by_name["temperature"]["constraints"] == {"min": 0, "max": 2}
        assert by_name["temperature"]["metadata"] == {"doc": "t"}
        assert by_name["mode"]["type"] == "choice" and by_name["vec"]["value"] == [0.5, 1.5]
        only = await store.export_variables("a", "t*")
        assert [v["name"] for v in only["variables"]] == ["temperature"]

    async def test_exporting_a_missing_session_is_session_not_found(
        self, store: SessionStore
    ) -> None:
        with pytest.raises(SessionNotFoundError):
            await store.export_variables("nope")


class TestImport:
    async def test_an_export_imported_into_a_fresh_session_reads_back_the_same(
        self, make_store: MakeStore, clock: FakeClock
    ) -> None:
        """Also through JSON text, and into a second store (on Redis: another host)."""
        first, second = make_store(ttl=60.0), make_store(ttl=60.0)
        await _filled(first, "a")
        data = json.loads(json.dumps(await first.export_variables("a")))
        await second.create("b")
        await clock.advance(5)
        written = await second.import_variables("b", data)
        assert sorted(written) == ["mode", "temperature", "vec"]
        back = await second.export_variables("b")
        for entry in (*data["variables"], *back["variables"]):
            entry.pop("created_at"), entry.pop("updated_at")
        assert back["variables"] == data["variables"]
        temperature = await second.get_variable("b", "temperature")
        assert temperature.version == 2 and temperature.updated_at == clock.time()
        assert await second.set_variable("b", "temperature", 2, expected_version=2)

    async def test_an_existing_name_is_refused_and_nothing_is_written(
        self, store: SessionStore
    ) -> None:
        await _filled(store, "a")
        data = await store.export_variables("a")
        await store.create("b")
        await store.register_variable(
            "b", "vec", "embedding", [0.0, 0.0], constraints={"dimensions": 2}
        )
        with pytest.raises(
            VariableRedefinedError, match=r"'vec'.*overwrite=True.*nothing was imported"
        ):
            await store.import_variables("b", data)
        assert [v.name for v in await store.list_variables("b")] == ["vec"]

    async def test_overwrite_continues_versions_and_a_redefinition_drops_the_history(
        self, store: SessionStore, published: list[Event]
    ) -> None:
        await _filled(store, "a")
        data = await store.export_variables("a")
        await store.create("b")
        for i in range(3):
            await store.register_variable("b", "temperature", "float", 0.1) if i == 0 else (
                await store.set_variable("b", "temperature", 0.1 * (i + 1))
            )
        await store.register_variable(
            "b", "vec", "embedding", [9.0, 9.0], constraints={"dimensions": 2}
        )
        watch = await store.watch("b")
        published.clear()
        written = await store.import_variables("b", data, overwrite=True)
        temperature = written["temperature"]
        assert temperature.version == 4 and temperature.value == 0.7  # 3 + 1, not the exported 2
        assert temperature.constraints == {"min": 0, "max": 2}
        assert [v.version for v in await store.history("b", "temperature")] == [4]  # redefined
        assert written["vec"].version == 2 and written["vec"].value == [0.5, 1.5]
        assert [v.value for v in await store.history("b", "vec")] == [[9.0, 9.0], [0.5, 1.5]]
        assert written["mode"].version == 1
        seen = [(u.name, u.version, u.deleted) for u in await _until_ended(watch, store, "b")]
        assert ("temperature", 3, True) in seen and ("temperature", 4, False) in seen
        assert seen.index(("temperature", 3, True)) < seen.index(("temperature", 4, False))
        assert ("vec", 2, False) in seen and ("mode", 1, False) in seen
        names = [(e.name, e.deleted) for e in published if isinstance(e, VariableUpdated)]
        assert sorted(names) == sorted(
            [("mode", False), ("temperature", True), ("temperature", False), ("vec", False)]
        )

    @pytest.mark.parametrize(
        ("data", "error", "match"),
        [
            ([], InvalidValueError, "data must be a dict"),
            ({"variables": []}, InvalidValueError, "format"),
            (
                {"format": "snakepit.variables/1", "variables": {}},
                InvalidValueError,
                "must be a list",
            ),
            (
                {"format": "snakepit.variables/1", "variables": [{"name": "x"}]},
                InvalidValueError,
                "no 'type'",
            ),
            (
                {
                    "format": "snakepit.variables/1",
                    "variables": [{"name": "x", "type": "integer", "value": 1, "version": 0}],
                },
                InvalidValueError,
                "version",
            ),
            (
                {
                    "format": "snakepit.variables/1",
                    "variables": [{"name": "x", "type": "integer", "value": 1}] * 2,
                },
                InvalidValueError,
                "appears twice",
            ),
            (
                {
                    "format": "snakepit.variables/1",
                    "variables": [
                        {"name": "ok", "type": "integer", "value": 1},
                        {"name": "x", "type": "integer", "value": 11, "constraints": {"max": 10}},
                    ],
                },
                VariableValidationError,
                "x",
            ),
            (
                {
                    "format": "snakepit.variables/1",
                    "variables": [{"name": "x", "type": "nope", "value": 1}],
                },
                VariableValidationError,
                "nope",
            ),
        ],
    )
    async def test_a_bad_document_is_a_typed_error_and_writes_nothing(
        self, store: SessionStore, data: Any, error: type[Exception], match: str
    ) -> None:
        await store.create("b")
        with pytest.raises(error, match=match):
            await store.import_variables("b", data)
        assert await store.list_variables("b") == []

    async def test_importing_into_a_missing_session_is_session_not_found(
        self, store: SessionStore
    ) -> None:
        with pytest.raises(SessionNotFoundError):
            await store.import_variables(
                "nope", {"format": "snakepit.variables/1", "variables": []}
            )


class TestMetadata:
    async def test_session_metadata_merges_or_replaces(
        self, make_store: MakeStore, backend: str
    ) -> None:
        store = make_store(ttl=60.0)
        other = make_store(ttl=60.0) if backend == "redis" else store  # on Redis: another host
        await store.create("a", metadata={"owner": "ana", "tier": 1})
        merged = await store.update_metadata("a", {"tier": 2, "note": "x"})
        assert merged.metadata == {"owner": "ana", "tier": 2, "note": "x"}
        assert (await other.get("a")).metadata == merged.metadata
        replaced = await store.update_metadata("a", {"only": True}, replace=True)
        assert replaced.metadata == {"only": True} and (await store.get("a")).metadata == {
            "only": True
        }

    async def test_session_metadata_updates_from_many_tasks_all_land(
        self, make_store: MakeStore, backend: str
    ) -> None:
        """Merges are read-modify-write; on Redis two hosts race and none is lost."""
        store = make_store(ttl=60.0)
        stores = [store, make_store(ttl=60.0) if backend == "redis" else store]
        await stores[0].create("a")
        await asyncio.gather(*(stores[i % 2].update_metadata("a", {f"k{i}": i}) for i in range(10)))
        assert (await stores[0].get("a")).metadata == {f"k{i}": i for i in range(10)}

    async def test_bad_session_metadata_updates_are_typed_errors(self, store: SessionStore) -> None:
        with pytest.raises(SessionNotFoundError):
            await store.update_metadata("nope", {})
        await store.create("a", metadata={"k": 1})
        with pytest.raises(InvalidValueError, match="metadata must be a mapping"):
            await store.update_metadata("a", ["k"])  # type: ignore[arg-type]
        with pytest.raises(InvalidValueError, match="replace must be True or False"):
            await store.update_metadata("a", {}, replace="yes")  # type: ignore[arg-type]
        assert (await store.get("a")).metadata == {"k": 1}

    async def test_a_variable_metadata_update_is_a_new_version_with_the_same_value(
        self, store: SessionStore
    ) -> None:
        await store.create("a")
        await store.register_variable("a", "n", "integer", 5, metadata={"doc": "n", "unit": "s"})
        watch = await store.watch("a", ["n"])
        new = await store.update_variable_metadata("a", "n", {"unit": "ms"})
        assert new.version == 2 and new.value == 5 and new.metadata == {"doc": "n", "unit": "ms"}
        assert (await store.get_variable("a", "n")).metadata == {"doc": "n", "unit": "ms"}
        assert [v.metadata for v in await store.history("a", "n")] == [
            {"doc": "n", "unit": "s"},
            {"doc": "n", "unit": "ms"},
        ]
        with pytest.raises(VersionConflictError):
            await store.update_variable_metadata("a", "n", {}, replace=True, expected_version=1)
        last = await store.update_variable_metadata(
            "a", "n", {"x": 1}, replace=True, expected_version=2
        )
        assert last.metadata == {"x": 1} and last.version == 3
        assert [(u.version, u.value) for u in await _until_ended(watch, store, "a")] == [
            (2, 5),
            (3, 5),
        ]

    async def test_bad_variable_metadata_updates_are_typed_errors(
        self, store: SessionStore
    ) -> None:
        await store.create("a")
        with pytest.raises(VariableNotFoundError):
            await store.update_variable_metadata("a", "nope", {})
        await store.register_variable("a", "n", "integer", 1)
        with pytest.raises(InvalidValueError, match="metadata must be a mapping"):
            await store.update_variable_metadata("a", "n", 3)  # type: ignore[arg-type]
        assert (await store.get_variable("a", "n")).version == 1
