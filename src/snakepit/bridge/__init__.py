"""Host side of sessions: the session store, typed versioned variables and their watches.

The pool and the host bridge (``_service.HostBridge``, which answers workers' host
calls, over gRPC for gRPC workers; grpc is imported only when it serves them)
program against :class:`SessionStore`; :class:`InMemorySessionStore` is the
embedded default, and :class:`RedisSessionStore` (the ``redis`` extra, loaded
only when used) shares sessions between hosts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from snakepit.bridge._memory import InMemorySessionStore, validate_session_id
from snakepit.bridge._store import BatchResult, SessionInfo, SessionStore
from snakepit.bridge._types import VARIABLE_TYPES, VariableType, get_type
from snakepit.bridge._variables import Variable, validate_variable_name
from snakepit.bridge._watch import VariableWatch

if TYPE_CHECKING:
    from snakepit.bridge._redis_store import RedisSessionStore

__all__ = [
    "VARIABLE_TYPES",
    "BatchResult",
    "InMemorySessionStore",
    "RedisSessionStore",
    "SessionInfo",
    "SessionStore",
    "Variable",
    "VariableType",
    "VariableWatch",
    "get_type",
    "validate_session_id",
    "validate_variable_name",
]


def __getattr__(name: str) -> Any:
    # The redis client is imported only by a program that uses the Redis store.
    if name == "RedisSessionStore":
        from snakepit.bridge._redis_store import RedisSessionStore

        return RedisSessionStore
    raise AttributeError(f"module 'snakepit.bridge' has no attribute {name!r}")
