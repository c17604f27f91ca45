"""The session store contract: sessions with a sliding TTL and typed, versioned variables.

:class:`SessionStore` is the interface the pool and the host bridge service
program against; every method is a coroutine so that a store backed by a
network service (Redis, for several hosts) can implement it.
:class:`~snakepit.bridge._memory.InMemorySessionStore` is the embedded default.

Rules every store follows:

* Every operation that names a session touches it (its TTL slides), except
  :meth:`SessionStore.delete`; an expired session is gone on access even if
  the expiry loop has not run yet.
* A session that does not exist (never created, deleted, expired) is
  :class:`~snakepit.errors.SessionNotFoundError`; a variable that does not
  exist is :class:`~snakepit.errors.VariableNotFoundError`.
* Each variable write makes a new version (``version + 1``), is kept in a
  bounded history, is published as :class:`~snakepit.events.VariableUpdated`
  and is delivered to the session's watches. A variable's metadata update is
  such a write (same value, new metadata); a session's metadata has no versions.
* An import checks every entry before it writes any, and writes them all at once.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from snakepit._variables import BatchResult
from snakepit.bridge import _transfer as transfer

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from snakepit._variables import Variable
    from snakepit.bridge._watch import VariableWatch

__all__ = ["BatchResult", "SessionInfo", "SessionStore"]


@dataclass(frozen=True, kw_only=True)
class SessionInfo:
    """A snapshot of one session, taken when the store returned it.

    The host side's form of what the ``SessionInfo`` message of ``host.proto``
    carries to a worker over the wire (the same fields).

    Attributes:
        id: the session id (``[A-Za-z0-9_.:-]{1,128}``).
        metadata: free-form data given at creation.
        created_at: wall-clock time of creation (the store's clock).
        last_access: wall-clock time of the last touch.
        ttl: seconds of inactivity after which the session expires (sliding).
        affinity_worker: the worker the session's requests prefer, or None.
        variable_count: how many variables the session holds.
    """

    id: str
    metadata: dict[str, Any] = field(default_factory=dict)
    created_at: float = 0.0
    last_access: float = 0.0
    ttl: float = 0.0
    affinity_worker: str | None = None
    variable_count: int = 0


class SessionStore(ABC):
    """Sessions and their variables; see the module docstring for the shared rules."""

    # -- sessions ----------------------------------------------------------------------------

    @abstractmethod
    async def create(
        self,
        session_id: str | None = None,
        *,
        metadata: Mapping[str, Any] | None = None,
        ttl: float | None = None,
    ) -> SessionInfo:
        """Create a session and publish ``SessionCreated``.

        Args:
            session_id: the id, or None for a generated one.
            metadata: free-form data kept with the session.
            ttl: seconds of inactivity before it expires; None for the store's default.

        Raises:
            ValueError: the id is malformed, already in use, or ``ttl`` is not > 0.
            SessionQuotaError: the store already holds ``max_sessions`` live sessions.
            SerializationError: ``metadata`` holds a value the store cannot keep.
            SessionStoreUnavailableError: a store kept in a server (Redis) cannot reach it.
        """

    @abstractmethod
    async def get_or_create(
        self,
        session_id: str,
        *,
        metadata: Mapping[str, Any] | None = None,
        ttl: float | None = None,
    ) -> SessionInfo:
        """The live session ``session_id`` (touched), or a new one made with these arguments.

        Raises:
            ValueError: the id is malformed or ``ttl`` is not > 0.
            SessionQuotaError: a new session is needed and the store is full.
            SerializationError: ``metadata`` holds a value the store cannot keep.
            SessionStoreUnavailableError: a store kept in a server (Redis) cannot reach it.
        """

    @abstractmethod
    async def get(self, session_id: str) -> SessionInfo:
        """The session ``session_id``, touched.

        Raises:
            SessionNotFoundError: no live session has that id.
            SessionStoreUnavailableError: a store kept in a server (Redis) cannot reach it.
        """

    @abstractmethod
    async def touch(self, session_id: str) -> SessionInfo:
        """Mark the session used now, so its TTL restarts; returns its snapshot.

        Raises:
            SessionNotFoundError: no live session has that id.
            SessionStoreUnavailableError: a store kept in a server (Redis) cannot reach it.
        """

    @abstractmethod
    async def delete(self, session_id: str) -> bool:
        """Delete the session with its variables; its watches end. Idempotent.

        Returns:
            True when a live session was deleted (and ``SessionDeleted`` published).

        Raises:
            SessionStoreUnavailableError: a store kept in a server (Redis) cannot reach it.
        """

    @abstractmethod
    async def list_sessions(self) -> list[SessionInfo]:
        """Snapshots of every live session, oldest first; nothing is touched.

        Raises:
            SessionStoreUnavailableError: a store kept in a server (Redis) cannot reach it.
        """

    @abstractmethod
    async def set_affinity(self, session_id: str, worker_id: str | None) -> SessionInfo:
        """Pin the session to ``worker_id`` (None unpins it).

        Raises:
            SessionNotFoundError: no live session has that id.
            SessionStoreUnavailableError: a store kept in a server (Redis) cannot reach it.
        """

    @abstractmethod
    async def get_affinity(self, session_id: str) -> str | None:
        """The worker the session is pinned to, or None.

        Raises:
            SessionNotFoundError: no live session has that id.
            SessionStoreUnavailableError: a store kept in a server (Redis) cannot reach it.
        """

    @abstractmethod
    async def drop_affinity(self, worker_id: str) -> list[str]:
        """Unpin every session pinned to ``worker_id`` (it exited); returns their ids.

        Raises:
            SessionStoreUnavailableError: a store kept in a server (Redis) cannot reach it.
        """

    @abstractmethod
    async def expire_due(self) -> list[str]:
        """Remove every session whose TTL ran out now, publishing ``SessionExpired``.

        Returns:
            The ids of the sessions that expired.

        Raises:
            SessionStoreUnavailableError: a store kept in a server (Redis) cannot reach it.
        """

    @abstractmethod
    async def run_expiry(self) -> None:
        """Expire sessions as they come due, sleeping on the store's clock in between.

        Runs until :meth:`close` (or cancellation); run it in the owner's task group.

        Raises:
            asyncio.CancelledError: when cancelled.
        """

    @abstractmethod
    async def update_metadata(
        self, session_id: str, metadata: Mapping[str, Any], *, replace: bool = False
    ) -> SessionInfo:
        """Change a session's metadata: merge ``metadata`` into it, or replace it whole.

        Args:
            session_id: the session.
            metadata: the keys to set (merged over the current ones).
            replace: True to make ``metadata`` the whole metadata (dropping other keys).

        Raises:
            SessionNotFoundError: no live session has that id.
            InvalidValueError: ``metadata`` is not a mapping or ``replace`` not a bool.
            SerializationError: ``metadata`` holds a value the store cannot keep.
            SessionStoreUnavailableError: a store kept in a server (Redis) cannot reach it.
        """

    @abstractmethod
    async def close(self) -> None:
        """End every watch and the expiry loop. Idempotent.

        Raises:
            Nothing.
        """

    # -- variables ---------------------------------------------------------------------------

    @abstractmethod
    async def register_variable(
        self,
        session_id: str,
        name: str,
        type: str,
        value: Any,
        *,
        constraints: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Variable:
        """Define a variable at version 1.

        Registering a name again with the same type and constraints returns the
        existing variable unchanged (worker setup code may run more than once);
        ``value`` is still validated.

        Raises:
            SessionNotFoundError: no live session has that id.
            VariableValidationError: bad name, unknown type, bad constraints, or
                ``value`` breaks them.
            ValueError: the name exists with a different type or constraints.
            SerializationError: the value, constraints or metadata cannot be kept.
            SessionStoreUnavailableError: a store kept in a server (Redis) cannot reach it.
        """

    @abstractmethod
    async def get_variable(self, session_id: str, name: str) -> Variable:
        """The current version of a variable.

        Raises:
            SessionNotFoundError: no live session has that id.
            VariableNotFoundError: the session has no such variable.
            SessionStoreUnavailableError: a store kept in a server (Redis) cannot reach it.
        """

    @abstractmethod
    async def set_variable(
        self, session_id: str, name: str, value: Any, *, expected_version: int | None = None
    ) -> Variable:
        """Write a new value; returns the new version.

        Args:
            session_id: the session.
            name: the variable.
            value: validated against the variable's type and constraints.
            expected_version: when given, write only if the current version is this one.

        Raises:
            SessionNotFoundError: no live session has that id.
            VariableNotFoundError: the session has no such variable.
            VersionConflictError: ``expected_version`` is not the current version.
            VariableValidationError: the value breaks the type or a constraint.
            SessionStoreUnavailableError: a store kept in a server (Redis) cannot reach it.
        """

    @abstractmethod
    async def get_many(
        self, session_id: str, names: Iterable[str]
    ) -> tuple[dict[str, Variable], list[str]]:
        """Several variables at once.

        Returns:
            ``(found, missing)``: the variables that exist by name, and the names
            that do not, in the order asked.

        Raises:
            SessionNotFoundError: no live session has that id.
            SessionStoreUnavailableError: a store kept in a server (Redis) cannot reach it.
        """

    @abstractmethod
    async def set_many(
        self,
        session_id: str,
        values: Mapping[str, Any],
        *,
        atomic: bool = False,
        expected_versions: Mapping[str, int] | None = None,
    ) -> BatchResult:
        """Write several variables.

        Atomic: every value is checked first; if any fails, nothing is written
        and the first failure (in ``values`` order) is raised, with the other
        failing names in a note. Not atomic: the valid ones are written and the
        failures are returned in :attr:`BatchResult.errors`.

        Raises:
            SessionNotFoundError: no live session has that id.
            VariableNotFoundError: atomic, and a name is not a variable.
            VersionConflictError: atomic, and an expected version does not match.
            VariableValidationError: atomic, and a value breaks its type or constraints.
            SessionStoreUnavailableError: a store kept in a server (Redis) cannot reach it.
        """

    @abstractmethod
    async def list_variables(self, session_id: str, pattern: str = "*") -> list[Variable]:
        """The variables whose names match the ``fnmatch`` ``pattern``, sorted by name.

        Raises:
            SessionNotFoundError: no live session has that id.
            SessionStoreUnavailableError: a store kept in a server (Redis) cannot reach it.
        """

    @abstractmethod
    async def delete_variable(self, session_id: str, name: str) -> None:
        """Delete a variable and its history; watchers get an update with ``deleted=True``.

        Raises:
            SessionNotFoundError: no live session has that id.
            VariableNotFoundError: the session has no such variable.
            SessionStoreUnavailableError: a store kept in a server (Redis) cannot reach it.
        """

    @abstractmethod
    async def history(self, session_id: str, name: str) -> list[Variable]:
        """The kept versions of a variable, oldest first, the current one last.

        Raises:
            SessionNotFoundError: no live session has that id.
            VariableNotFoundError: the session has no such variable.
            SessionStoreUnavailableError: a store kept in a server (Redis) cannot reach it.
        """

    @abstractmethod
    async def rollback(
        self, session_id: str, name: str, version: int, *, expected_version: int | None = None
    ) -> Variable:
        """Write the value of an older ``version`` again, as a new version.

        Raises:
            SessionNotFoundError: no live session has that id.
            VariableNotFoundError: no such variable, or ``version`` is not in its history.
            VersionConflictError: ``expected_version`` is not the current version.
            SessionStoreUnavailableError: a store kept in a server (Redis) cannot reach it.
        """

    @abstractmethod
    async def update_variable_metadata(
        self,
        session_id: str,
        name: str,
        metadata: Mapping[str, Any],
        *,
        replace: bool = False,
        expected_version: int | None = None,
    ) -> Variable:
        """Change a variable's metadata (merged, or replaced whole); returns the new version.

        Metadata is versioned with the value: the update is a write with the same
        value, kept in the history and delivered to watches like any other.

        Raises:
            SessionNotFoundError: no live session has that id.
            VariableNotFoundError: the session has no such variable.
            VersionConflictError: ``expected_version`` is not the current version.
            InvalidValueError: ``metadata`` is not a mapping or ``replace`` not a bool.
            SerializationError: ``metadata`` holds a value the store cannot keep.
            SessionStoreUnavailableError: a store kept in a server (Redis) cannot reach it.
        """

    async def export_variables(self, session_id: str, pattern: str = "*") -> dict[str, Any]:
        """The session's variables (those matching ``pattern``) as one JSON-compatible dict.

        The document is ``{"format": "snakepit.variables/1", "session_id": ...,
        "variables": [{"name", "type", "value", "constraints", "metadata",
        "version", "created_at", "updated_at"}, ...]}``, sorted by name; values
        are as the variable types keep them (numbers, strings, lists, dicts), so
        ``json.dumps`` takes it. :meth:`import_variables` reads it back.

        Raises:
            SessionNotFoundError: no live session has that id.
            SessionStoreUnavailableError: a store kept in a server (Redis) cannot reach it.
        """
        return transfer.export_document(session_id, await self.list_variables(session_id, pattern))

    @abstractmethod
    async def import_variables(
        self, session_id: str, data: Mapping[str, Any], *, overwrite: bool = False
    ) -> dict[str, Variable]:
        """Write the variables of an export document into the session, all or nothing.

        Every entry is checked (type, constraints, value, and whether the name
        exists) before any is written. A new name keeps its exported version; with
        ``overwrite`` an existing one is replaced as ``version + 1`` (a different
        type or constraints drops its history, as a delete and register would).
        Each write is published and delivered to watches.

        Returns:
            The written variables by name.

        Raises:
            SessionNotFoundError: no live session has that id.
            InvalidValueError: ``data`` is not an export document.
            VariableValidationError: an entry's name, type, constraints or value is invalid.
            VariableRedefinedError: a name exists and ``overwrite`` is False.
            SerializationError: a value or metadata cannot be kept.
            SessionStoreUnavailableError: a store kept in a server (Redis) cannot reach it.
        """

    @abstractmethod
    async def watch(
        self,
        session_id: str,
        names: Iterable[str] | None = None,
        *,
        include_current: bool = False,
        maxsize: int = 1000,
    ) -> VariableWatch:
        """Follow the session's variable updates from now on.

        Args:
            session_id: the session.
            names: only these variables; None for all.
            include_current: first yield an update for each current variable.
            maxsize: the watch's buffer bound (oldest dropped beyond it).

        Raises:
            SessionNotFoundError: no live session has that id.
            ValueError: ``maxsize`` is below 1.
            SessionStoreUnavailableError: a store kept in a server (Redis) cannot reach it.
        """
