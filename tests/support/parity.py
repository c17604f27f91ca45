"""An adapter that in-process workers and worker processes must answer alike.

Safe in-process: no tool exits, blocks a thread or sleeps (``forever`` awaits an event
that nobody sets, so only a cancellation ends it).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from snakepit.adapter import Adapter, SessionContext, tool

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

PARITY = "tests.support.parity:Parity"


class Parity(Adapter):
    @tool
    def add(self, a: float, b: float) -> float:
        return a + b

    @tool
    def echo(self, value: Any) -> Any:
        return value

    @tool
    def fail(self, message: str) -> None:
        raise ValueError(message)

    @tool
    def count(self, n: int) -> Iterator[int]:
        yield from range(n)

    @tool
    def fail_after(self, n: int) -> Iterator[int]:
        yield from range(n)
        raise RuntimeError(f"stream broke after {n} chunks")

    @tool
    async def ticks(self, n: int) -> AsyncIterator[int]:
        for i in range(n):
            yield i

    @tool
    async def total(self, n: int) -> int:
        return sum(range(n))

    @tool
    async def forever(self) -> None:
        await asyncio.Event().wait()

    @tool
    def where(self, ctx: SessionContext) -> dict[str, Any]:
        return {"session": ctx.session_id, "tool": ctx.tool, "worker": bool(ctx.worker_id)}

    @tool
    def remember(self, ctx: SessionContext, value: int) -> list[int]:
        """Register ``n`` in the session, write ``value + 1`` and read it back."""
        ctx.variables.register("n", "integer", value)
        ctx.variables["n"] = value + 1
        read = ctx.variables.get("n")
        return [read.value, read.version]

    @tool
    async def aremember(self, ctx: SessionContext, value: int) -> list[int]:
        await ctx.variables.aregister("n", "integer", value)
        await ctx.variables.aset("n", value + 1)
        read = await ctx.variables.aget("n")
        return [read.value, read.version]

    @tool
    def host_tools(self, ctx: SessionContext) -> list[str]:
        return ctx.list_host_tools()
