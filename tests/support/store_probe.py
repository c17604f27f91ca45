"""An adapter for the Redis store tests: the showcase, plus a tool whose store dies under it."""

from __future__ import annotations

from typing import Any

from snakepit.adapter import SessionContext, tool
from snakepit.examples.showcase import Showcase


class StoreProbe(Showcase):
    @tool
    def read_after_host_tool(self, ctx: SessionContext, host_tool: str, name: str) -> Any:
        """Call ``host_tool`` on the host, then read the session variable ``name``."""
        ctx.call_host_tool(host_tool, {})
        return ctx.variables.get(name).value
