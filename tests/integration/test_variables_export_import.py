"""A session's variables exported, saved as JSON and imported elsewhere; metadata updates.

Through real pools (the host API, async and sync) and read back by worker code.
"""

from __future__ import annotations

import json
import tempfile

import pytest

import snakepit
from snakepit.testing.pools import isolated_pool


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
