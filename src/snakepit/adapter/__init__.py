"""The worker side of snakepit: write an adapter, mark its tools, run it in a worker process.

This package never imports the host side (``snakepit.pool``, ``snakepit.worker``,
``snakepit.bridge``): a worker process imports only this, the proto stubs, the
codec and the errors.
"""

from __future__ import annotations

from snakepit.adapter._base import Adapter
from snakepit.adapter._context import SessionContext
from snakepit.adapter._tools import ToolInfo, tool

__all__ = ["Adapter", "SessionContext", "ToolInfo", "tool"]
