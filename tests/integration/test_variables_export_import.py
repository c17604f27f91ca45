"""A session's variables exported, saved as JSON and imported elsewhere; metadata updates.

Through real pools (the host API, async and sync) and read back by worker code.
"""

from __future__ import annotations

import json
import tempfile
from typing import TYPE_CHECKING

import pytest

import snakepit
from snakepit.testing import isolated_pool

if TYPE_CHECKING:
    from pathlib import Path


async def test_a_session_moves_to_another_pool_through_json_and_workers_read_it() -> None:
    async with isolated_pool() as first, first.session("src") as session:
        await session.variables.register("steps", "integer", 0, constraints={"min": 0})
        await session.execute("bump", {"name": "steps", "by": 3})  # worker: version 2
        await session.variables.register("label", "string", "x", metadata={"doc": "a label"})
        saved = json.dumps(await session.variables.export())

    async with isolated_pool() as second:
        target = second.session("dst")
        written = await target.variables.import_(json.loads(saved))  # creates the session
        assert {n: v.version for n, v in written.items()} == {"label": 1, "steps": 2}
        assert await target.execute("get_var", {"name": "steps"}) == {"value": 3, "version": 2}
        assert await target.execute("bump", {"name": "steps"}) == 4
        with pytest.raises(snakepit.VariableRedefinedError, match="overwrite=True"):
            await target.variables.import_(json.loads(saved))
        again = await target.variables.import_(json.loads(saved), overwrite=True)
        assert again["steps"].version == 4 and again["steps"].value == 3

        label = await target.variables.update_metadata("label", {"owner": "ops"})
        assert label.metadata == {"doc": "a label", "owner": "ops"} and label.version == 3
        info = await target.update_metadata({"team": "ml"})
        assert info.metadata == {"team": "ml"} and (await target.info()).metadata == info.metadata


def test_the_sync_pool_exports_imports_and_updates_metadata() -> None:
    with (
        tempfile.TemporaryDirectory(prefix="sp-reg-") as registry,
        snakepit.SyncPool(
            adapter="snakepit.examples.showcase:Showcase",
            size=1,
            heartbeat_interval=None,
            registry_dir=registry,
        ) as pool,
    ):
        with pool.session("a") as a:
            a.variables.register("n", "integer", 7)
            data = a.variables.export()
            assert a.update_metadata({"k": 1}, replace=True).metadata == {"k": 1}
            assert a.variables.update_metadata("n", {"unit": "s"}).metadata == {"unit": "s"}
        b = pool.session("b")
        assert b.variables.import_(data)["n"].value == 7
        assert b.execute("get_var", {"name": "n"}) == {"value": 7, "version": 1}


_WORKER_TOOLS = """
from snakepit.adapter import Adapter, SessionContext, tool
from snakepit.errors import SnakepitError


def _kind(fn):
    try:
        fn()
    except SnakepitError as exc:
        return type(exc).__name__
    return "no error"


class VarTools(Adapter):
    @tool
    def roundtrip(self, name: str, ctx: SessionContext):
        v = ctx.variables
        v.register(name, "integer", 1, metadata={"doc": "n"})
        meta = v.update_metadata(name, {"unit": "s"}).metadata
        replaced = v.update_metadata(name, {"only": 1}, replace=True, expected_version=2)
        data = v.export(name)
        v.delete(name)
        written = v.import_(data)
        return {
            "meta": meta,
            "replaced": [replaced.metadata, replaced.version],
            "written": {n: [w.value, w.version, w.metadata] for n, w in written.items()},
            "again": _kind(lambda: v.import_(data)),
            "overwrite": v.import_(data, overwrite=True)[name].version,
            "stale": _kind(lambda: v.update_metadata(name, {}, expected_version=1)),
            "missing": _kind(lambda: v.update_metadata("nope", {})),
            "not_a_dict": _kind(lambda: v.update_metadata(name, ["x"])),
            "session": ctx.update_session_metadata({"by": name}),
            "data": data,
        }

    @tool
    async def aroundtrip(self, name: str, ctx: SessionContext):
        v = ctx.variables
        await v.aregister(name, "integer", 1, metadata={"doc": "n"})
        meta = (await v.aupdate_metadata(name, {"unit": "s"})).metadata
        data = await v.aexport(name)
        await v.adelete(name)
        written = await v.aimport_(data)
        return {
            "meta": meta,
            "written": {n: [w.value, w.version, w.metadata] for n, w in written.items()},
            "session": await ctx.aupdate_session_metadata({"only": name}, replace=True),
        }

    @tool
    def outside(self, ctx: SessionContext):
        return _kind(lambda: ctx.variables.export())
"""


@pytest.mark.usefixtures("both_transports")
async def test_worker_code_exports_imports_and_updates_metadata(tmp_path: Path) -> None:
    (tmp_path / "vartools.py").write_text(_WORKER_TOOLS)
    async with (
        isolated_pool("vartools:VarTools", cwd=str(tmp_path)) as pool,
        pool.session("w") as session,
    ):
        await session.update_metadata({"team": "ml"})
        got = await session.execute("roundtrip", {"name": "n"})
        assert got["meta"] == {"doc": "n", "unit": "s"}
        assert got["replaced"] == [{"only": 1}, 3]
        assert got["written"] == {"n": [1, 3, {"only": 1}]}  # the exported version kept
        assert got["again"] == "VariableRedefinedError"
        assert got["overwrite"] == 4
        assert got["stale"] == "VersionConflictError"
        assert got["missing"] == "VariableNotFoundError"
        assert got["not_a_dict"] == "InvalidValueError"
        assert got["session"] == {"team": "ml", "by": "n"}
        assert [v["name"] for v in got["data"]["variables"]] == ["n"]
        assert (await session.variables.get("n")).metadata == {"only": 1}

        got = await session.execute("aroundtrip", {"name": "a"})
        assert got["meta"] == {"doc": "n", "unit": "s"}
        assert got["written"] == {"a": [1, 2, {"doc": "n", "unit": "s"}]}
        assert got["session"] == {"only": "a"}
        assert (await session.info()).metadata == {"only": "a"}

        # What a worker exported imports on the host, elsewhere.
        other = pool.session("w2")
        written = await other.variables.import_(
            (await session.execute("roundtrip", {"name": "m"}))["data"]
        )
        assert written["m"].value == 1
        assert await pool.execute("outside") == "SessionNotFoundError"
