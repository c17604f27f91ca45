"""snakepit: a supervised pool of external worker processes with sessions, gRPC and streaming.

Everything a user imports is here::

    import snakepit

    async with snakepit.Pool(adapter="snakepit.examples.showcase:Showcase", size=4) as pool:
        await pool.execute("add", {"a": 1, "b": 2})
"""

from __future__ import annotations

from snakepit import events
from snakepit.adapter import Adapter, SessionContext, tool
from snakepit.config import PoolConfig
from snakepit.errors import *  # noqa: F403 - the error classes are part of the public face
from snakepit.errors import __all__ as _errors_all
from snakepit.pool import Pool, PoolStats, Session, SyncPool, WorkerInfo

__version__ = "0.1.0"

__all__ = [
    *_errors_all,
    "Adapter",
    "Pool",
    "PoolConfig",
    "PoolStats",
    "Session",
    "SessionContext",
    "SyncPool",
    "WorkerInfo",
    "__version__",
    "events",
    "tool",
]
