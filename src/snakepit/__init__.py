"""snakepit: a supervised pool of external worker processes with sessions, gRPC and streaming.

Everything a user imports is here::

    import snakepit

    async with snakepit.Pool(adapter="snakepit.examples.showcase:Showcase", size=4) as pool:
        await pool.execute("add", {"a": 1, "b": 2})
"""

from __future__ import annotations

import importlib as _importlib
import typing as _typing

from snakepit.errors import *  # noqa: F403 - the error classes are part of the public face
from snakepit.errors import __all__ as _errors_all

if _typing.TYPE_CHECKING:
    from snakepit import events
    from snakepit._executor import Executor
    from snakepit._variables import BatchResult, Variable
    from snakepit.adapter import Adapter, SessionContext, tool
    from snakepit.config import PoolConfig
    from snakepit.pool import Pool, PoolStats, Session, SyncPool, WorkerInfo

# Worker processes import snakepit.adapter, which imports this package first: the host side
# (pool, worker handles, bridge) loads only when one of its names is used.
_LAZY = {
    "Adapter": "snakepit.adapter",
    "BatchResult": "snakepit._variables",
    "Executor": "snakepit._executor",
    "Variable": "snakepit._variables",
    "SessionContext": "snakepit.adapter",
    "tool": "snakepit.adapter",
    "PoolConfig": "snakepit.config",
    "Pool": "snakepit.pool",
    "PoolStats": "snakepit.pool",
    "Session": "snakepit.pool",
    "SyncPool": "snakepit.pool",
    "WorkerInfo": "snakepit.pool",
}


def __getattr__(name: str) -> _typing.Any:
    if name == "events":
        return _importlib.import_module("snakepit.events")
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'snakepit' has no attribute {name!r}")
    value = getattr(_importlib.import_module(module), name)
    globals()[name] = value
    return value


__version__ = "0.1.0"

__all__ = [
    *_errors_all,
    "Adapter",
    "BatchResult",
    "Executor",
    "Pool",
    "PoolConfig",
    "PoolStats",
    "Session",
    "SessionContext",
    "SyncPool",
    "Variable",
    "WorkerInfo",
    "__version__",
    "events",
    "tool",
]
