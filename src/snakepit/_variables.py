"""Session variable snapshots shared by the host and the worker side.

The host's session store returns these, and so does the worker's host client
(``ctx.variables.get``), so code reads a variable the same way on both sides.
This module imports nothing of either side.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from snakepit.errors import VariableError

__all__ = ["BatchResult", "Variable", "short_repr"]

_REPR_LIMIT = 80


def short_repr(value: Any, limit: int = _REPR_LIMIT) -> str:
    """``repr(value)``, cut to ``limit`` characters (a tensor's repr can be megabytes)."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 5]}...{text[-2:]}"


@dataclass(frozen=True, kw_only=True)
class Variable:
    """One version of a session variable, as the store returned it.

    Every write makes a new ``Variable`` with ``version`` one higher; older
    ones stay in the history. Treat ``value`` as read-only: the store hands
    out the object it keeps (copying every tensor on every read would cost
    more than it protects).

    Attributes:
        name: the variable's name, unique within its session.
        type: the type name (``"integer"``, ``"tensor"``...; see ``VARIABLE_TYPES``).
        value: the normalized value.
        version: 1 at registration, +1 on each write (``set``, ``rollback``).
        constraints: the checked constraints of the type.
        metadata: free-form data given at registration (description, owner...).
        created_at: wall-clock time of the registration (the store's clock).
        updated_at: wall-clock time of this version.
    """

    name: str
    type: str
    value: Any = field(repr=False)
    version: int
    constraints: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    created_at: float = 0.0
    updated_at: float = 0.0

    def __repr__(self) -> str:
        return (
            f"Variable(name={self.name!r}, type={self.type!r}, value={short_repr(self.value)}, "
            f"version={self.version})"
        )


@dataclass(frozen=True, kw_only=True)
class BatchResult:
    """What a batch write (``set_many``) did.

    Attributes:
        updated: the new version of every variable that was written.
        errors: why each other variable was not written (non-atomic batches only;
            an atomic batch raises instead).
    """

    updated: dict[str, Variable] = field(default_factory=dict)
    errors: dict[str, VariableError] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when every variable of the batch was written."""
        return not self.errors
