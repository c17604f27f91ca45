"""A second host process for the multi-host tests: a pool on a shared Redis store, driven by stdin.

Run as ``python -m tests.support.redis_host URL NAME REGISTRY_DIR``. It starts
``Pool(adapter=showcase, size=1, session_store=URL, name=NAME)``, prints
``{"ready": ...}``, then answers one JSON command per stdin line with one JSON
line on stdout (``{"id", "ok"}`` or ``{"id", "error", "message"}``). A
``watch`` command answers once the watch is running and then prints each
update as ``{"update": ...}``. End of stdin closes the pool and exits.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import snakepit
from snakepit.testing import SHOWCASE


def emit(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


async def follow(watch: Any, count: int) -> None:
    for _ in range(count):
        update = await watch.get()
        emit(
            {
                "update": {
                    "name": update.name,
                    "version": update.version,
                    "value": update.value,
                    "source": update.source,
                }
            }
        )
    watch.close()


async def run(pool: snakepit.Pool, command: dict[str, Any], tasks: set[Any]) -> Any:
    op = command["op"]
    session = pool.session(command["session"])
    if op == "execute":
        return await session.execute(command["tool"], command.get("args") or {})
    if op == "get":
        variable = await session.variables.get(command["name"])
        return {"value": variable.value, "version": variable.version}
    if op == "set":
        return (await session.variables.set(command["name"], command["value"])).version
    if op == "info":
        info = await session.info()
        return {"affinity_worker": info.affinity_worker, "variable_count": info.variable_count}
    if op == "delete":
        return await session.delete()
    if op == "watch":
        watch = await session.variables.watch(command.get("names"))
        task = asyncio.create_task(follow(watch, command["count"]))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        return True
    raise ValueError(f"unknown op {op!r}")


async def main(url: str, name: str, registry_dir: str) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    tasks: set[Any] = set()
    async with snakepit.Pool(
        adapter=SHOWCASE,
        size=1,
        name=name,
        session_store=url,
        heartbeat_interval=None,
        registry_dir=registry_dir,
        shutdown_grace=2.0,
    ) as pool:
        emit({"ready": [w.id for w in pool.workers()]})
        while line := await reader.readline():
            command = json.loads(line)
            try:
                emit({"id": command["id"], "ok": await run(pool, command, tasks)})
            except Exception as exc:
                emit({"id": command["id"], "error": type(exc).__name__, "message": str(exc)})
        for task in tasks:
            task.cancel()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
