"""The showcase adapter: one tool for each thing a pool must handle.

Used by ``snakepit demo``, the documentation, the benchmarks and the tests.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any

from snakepit.adapter import Adapter, tool
from snakepit.errors import SnakepitError, ToolError, VersionConflictError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

    from snakepit.adapter import SessionContext

__all__ = ["Showcase"]


class Showcase(Adapter):
    """Trivial tools, a failing one, a crashing one, a hanging one and a streaming one.

    Plus the session tools: variables and host tools reached from worker code
    through ``SessionContext`` (sync and async).
    """

    def setup(self) -> None:
        self._memory: dict[str, Any] = {}

    @tool
    def ping(self) -> dict[str, str]:
        """Answer at once: the cheapest possible call."""
        return {"status": "pong"}

    @tool
    def echo(self, value: Any) -> Any:
        """Return ``value`` unchanged (round trip of any JSON value or bytes)."""
        return value

    @tool
    def add(self, a: float, b: float) -> float:
        """Return ``a + b``."""
        return a + b

    @tool
    def pid(self) -> int:
        """Return the worker's operating-system process id."""
        return os.getpid()

    @tool
    def fail(self, message: str = "failed on purpose") -> None:
        """Raise ``ValueError(message)``: a tool error with a remote traceback."""
        raise ValueError(message)

    @tool
    def crash(self, code: int = 1) -> None:
        """End the worker process at once with exit ``code`` (no cleanup, no reply)."""
        os._exit(code)

    @tool
    def hang(self) -> None:
        """Block forever (until the process is killed), without using the CPU."""
        threading.Event().wait()

    @tool
    def count(self, n: int) -> Iterator[dict[str, int]]:
        """Stream ``{"i": 0}`` .. ``{"i": n-1}``."""
        for i in range(n):
            yield {"i": i}

    @tool
    def remember(self, key: str, value: Any) -> None:
        """Store ``value`` under ``key`` in this worker's memory."""
        self._memory[key] = value

    @tool
    def recall(self, key: str) -> Any:
        """Return what ``remember`` stored under ``key`` in this worker (None if nothing)."""
        return self._memory.get(key)

    # -- sessions: variables and host tools from worker code --------------------------------------

    @tool
    def register_var(
        self,
        ctx: SessionContext,
        name: str,
        type: str,
        value: Any,
        constraints: dict[str, Any] | None = None,
    ) -> int:
        """Register the session variable ``name``; return its version."""
        return ctx.variables.register(name, type, value, constraints=constraints).version

    @tool
    def get_var(self, ctx: SessionContext, name: str) -> dict[str, Any]:
        """Return ``{"value": ..., "version": ...}`` of the session variable ``name``."""
        variable = ctx.variables.get(name)
        return {"value": variable.value, "version": variable.version}

    @tool
    def set_var(self, ctx: SessionContext, name: str, value: Any) -> int:
        """Write ``value`` to the session variable ``name``; return its new version."""
        ctx.variables[name] = value
        return int(ctx.variables.get(name).version)

    @tool
    def bump(self, ctx: SessionContext, name: str, by: int = 1) -> int:
        """Add ``by`` to the session's integer variable ``name``; return the new value.

        Safe under concurrent bumps: a write that raced another is retried
        (optimistic locking with ``expected_version``).
        """
        while True:
            current = ctx.variables.get(name)
            try:
                new = ctx.variables.set(name, current.value + by, expected_version=current.version)
            except VersionConflictError:
                continue
            return int(new.value)

    @tool
    async def abump(self, ctx: SessionContext, name: str, by: int = 1) -> int:
        """``bump`` as an async tool (the async variants of the variable API)."""
        while True:
            current = await ctx.variables.aget(name)
            try:
                new = await ctx.variables.aset(
                    name, current.value + by, expected_version=current.version
                )
            except VersionConflictError:
                continue
            return int(new.value)

    @tool
    def call_host(
        self,
        ctx: SessionContext,
        name: str,
        args: dict[str, Any] | None = None,
        catch: bool = False,
    ) -> Any:
        """Call the host tool ``name`` with ``args`` and return its result.

        With ``catch``, a failure is returned instead of raised, as
        ``{"error": kind, "message": first line, "is_tool_error": bool}``.
        """
        try:
            return ctx.call_host_tool(name, args)
        except SnakepitError as exc:
            if not catch:
                raise
            return {
                "error": type(exc).__name__,
                "message": str(exc).split("\n", 1)[0],
                "is_tool_error": isinstance(exc, ToolError),
            }

    @tool
    async def acall_host(
        self, ctx: SessionContext, name: str, args: dict[str, Any] | None = None
    ) -> Any:
        """``call_host`` as an async tool."""
        return await ctx.acall_host_tool(name, args)

    @tool
    def watch_vars(
        self, ctx: SessionContext, names: list[str] | None = None, count: int = 1
    ) -> Iterator[dict[str, Any]]:
        """Stream ``{"watching": true}`` once a watch is live, then the next ``count`` updates."""
        with ctx.variables.watch(names) as updates:
            yield {"watching": True}
            for _, update in zip(range(count), updates, strict=False):
                yield {"name": update.name, "version": update.version, "value": update.value}

    @tool
    async def awatch_vars(
        self, ctx: SessionContext, names: list[str] | None = None, count: int = 1
    ) -> AsyncIterator[dict[str, Any]]:
        """``watch_vars`` as an async generator."""
        async with await ctx.variables.awatch(names) as updates:
            yield {"watching": True}
            for _ in range(count):
                update = await anext(updates, None)
                if update is None:
                    break
                yield {"name": update.name, "version": update.version, "value": update.value}
