"""Host side of sessions: the session store, typed versioned variables and their watches.

Pure logic, no gRPC and no processes: the pool and the host bridge service
program against :class:`SessionStore`; :class:`InMemorySessionStore` is the
embedded default.
"""

from __future__ import annotations

from snakepit.bridge.memory import InMemorySessionStore, validate_session_id
from snakepit.bridge.store import BatchResult, Session, SessionStore
from snakepit.bridge.types import VARIABLE_TYPES, VariableType, get_type
from snakepit.bridge.variables import Variable, validate_variable_name
from snakepit.bridge.watch import VariableWatch

__all__ = [
    "VARIABLE_TYPES",
    "BatchResult",
    "InMemorySessionStore",
    "Session",
    "SessionStore",
    "Variable",
    "VariableType",
    "VariableWatch",
    "get_type",
    "validate_session_id",
    "validate_variable_name",
]
