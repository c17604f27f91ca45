"""Sessions from the host: ``Session`` (calls and variables of one session) and ``pool.sessions``.

A session lives in the pool's session store from its first use (a call in
it, ``initialize()``, or registering a variable) until it is deleted or
stays unused longer than its TTL (``session_ttl``, sliding: every call and
every variable operation restarts it). The pool holds at most
``max_sessions`` live sessions; one more is ``SessionQuotaError``.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterable, Mapping

    from snakepit._variables import BatchResult, Variable
    from snakepit.bridge._store import SessionInfo, SessionStore
    from snakepit.bridge._watch import VariableWatch
    from snakepit.pool._pool import Pool

__all__ = ["Session", "SessionVariables", "Sessions"]

# ``SessionVariables.list`` and ``Sessions.list`` shadow the builtin inside their classes.
_Variables: TypeAlias = "list[Variable]"
_Names: TypeAlias = "list[str]"
_Infos: TypeAlias = "list[SessionInfo]"


class SessionVariables:
    """The typed, versioned variables of one session, from the host (``session.variables``).

    Worker code sees the same variables through ``ctx.variables``. Every
    operation touches the session (its TTL restarts). ``register`` creates
    the session if needed; the others need it to exist.
    """

    def __init__(self, store: SessionStore, session_id: str) -> None:
        self._store = store
        self.session_id = session_id

    async def register(
        self,
        name: str,
        type: str,
        value: Any,
        *,
        constraints: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Variable:
        """Define a variable at version 1; the same definition again returns it unchanged.

        Args:
            name: ``[A-Za-z_][A-Za-z0-9_.-]{0,127}``.
            type: ``integer``, ``float``, ``string``, ``boolean``, ``choice``, ``module``,
                ``embedding`` or ``tensor``.
            value: the initial value, checked against the type and constraints.
            constraints: e.g. ``{"min": 0, "max": 10}``, ``{"choices": [...]}``.
            metadata: free-form data kept with the variable.

        Raises:
            SessionQuotaError: the session is new and the pool holds ``max_sessions``.
            VariableValidationError: bad name, type or constraints, or ``value`` breaks them.
            ValueError: the name exists with a different type or constraints.
        """
        await self._store.get_or_create(self.session_id)
        return await self._store.register_variable(
            self.session_id, name, type, value, constraints=constraints, metadata=metadata
        )

    async def get(self, name: str) -> Variable:
        """The current version of a variable.

        Raises:
            SessionNotFoundError: the session does not exist (never used, deleted or expired).
            VariableNotFoundError: the session has no such variable.
        """
        return await self._store.get_variable(self.session_id, name)

    async def set(self, name: str, value: Any, *, expected_version: int | None = None) -> Variable:
        """Write a new value; returns the new version (``version + 1``).

        Raises:
            SessionNotFoundError: the session does not exist.
            VariableNotFoundError: no such variable (register it first).
            VariableValidationError: the value breaks the type or a constraint.
            VersionConflictError: ``expected_version`` is not the current version.
        """
        return await self._store.set_variable(
            self.session_id, name, value, expected_version=expected_version
        )

    async def get_many(self, names: Iterable[str]) -> tuple[dict[str, Variable], _Names]:
        """``(found, missing)`` for several names at once.

        Raises:
            SessionNotFoundError: the session does not exist.
        """
        return await self._store.get_many(self.session_id, names)

    async def set_many(
        self,
        values: Mapping[str, Any],
        *,
        atomic: bool = False,
        expected_versions: Mapping[str, int] | None = None,
    ) -> BatchResult:
        """Write several variables; all or nothing when ``atomic``.

        Raises:
            SessionNotFoundError: the session does not exist.
            VariableError: atomic, and a value failed (the first failure; nothing written).
        """
        return await self._store.set_many(
            self.session_id, values, atomic=atomic, expected_versions=expected_versions
        )

    async def list(self, pattern: str = "*") -> _Variables:
        """The variables whose names match the ``fnmatch`` ``pattern``, sorted by name.

        Raises:
            SessionNotFoundError: the session does not exist.
        """
        return await self._store.list_variables(self.session_id, pattern)

    async def delete(self, name: str) -> None:
        """Delete a variable and its history (watchers see ``deleted=True``).

        Raises:
            SessionNotFoundError: the session does not exist.
            VariableNotFoundError: no such variable.
        """
        await self._store.delete_variable(self.session_id, name)

    async def history(self, name: str) -> _Variables:
        """The kept versions of a variable, oldest first, the current one last.

        Raises:
            SessionNotFoundError: the session does not exist.
            VariableNotFoundError: no such variable.
        """
        return await self._store.history(self.session_id, name)

    async def rollback(
        self, name: str, version: int, *, expected_version: int | None = None
    ) -> Variable:
        """Write the value of an older ``version`` again, as a new version.

        Raises:
            SessionNotFoundError: the session does not exist.
            VariableNotFoundError: no such variable, or that version is no longer kept.
            VersionConflictError: ``expected_version`` is not the current version.
        """
        return await self._store.rollback(
            self.session_id, name, version, expected_version=expected_version
        )

    async def update_metadata(
        self,
        name: str,
        metadata: Mapping[str, Any],
        *,
        replace: bool = False,
        expected_version: int | None = None,
    ) -> Variable:
        """Change a variable's metadata: merge ``metadata`` into it, or replace it whole.

        Metadata is versioned with the value: this makes a new version with the
        same value (in the history, and seen by watches).

        Raises:
            SessionNotFoundError: the session does not exist.
            VariableNotFoundError: no such variable.
            VersionConflictError: ``expected_version`` is not the current version.
            InvalidValueError: ``metadata`` is not a mapping.
        """
        return await self._store.update_variable_metadata(
            self.session_id, name, metadata, replace=replace, expected_version=expected_version
        )

    async def export(self, pattern: str = "*") -> dict[str, Any]:
        """The variables (those matching ``pattern``) as one JSON-compatible dict.

        ``{"format": "snakepit.variables/1", "session_id": ..., "variables": [{"name",
        "type", "value", "constraints", "metadata", "version", "created_at",
        "updated_at"}, ...]}``: ``json.dumps`` it to save it, :meth:`import_` it into
        this or another session (or pool, or host).

        Raises:
            SessionNotFoundError: the session does not exist.
        """
        return await self._store.export_variables(self.session_id, pattern)

    async def import_(
        self, data: Mapping[str, Any], *, overwrite: bool = False
    ) -> dict[str, Variable]:
        """Write the variables of an :meth:`export` into this session, all or nothing.

        Creates the session if needed. Every entry is checked before any is
        written. A new name keeps its exported version; an existing name is an
        error unless ``overwrite``, which replaces it as ``version + 1`` (a
        different type or constraints drops its history). Watches see each write.

        Returns:
            The written variables by name.

        Raises:
            SessionQuotaError: the session is new and the pool holds ``max_sessions``.
            InvalidValueError: ``data`` is not an export.
            VariableValidationError: an entry's name, type, constraints or value is invalid.
            VariableRedefinedError: a name exists and ``overwrite`` is False.
        """
        await self._store.get_or_create(self.session_id)
        return await self._store.import_variables(self.session_id, data, overwrite=overwrite)

    async def watch(
        self, names: Iterable[str] | None = None, *, include_current: bool = False
    ) -> VariableWatch:
        """Follow the session's variable updates (from the host or any worker) from now on.

        Returns an async iterator of :class:`~snakepit.events.VariableUpdated` in write
        order; it ends when the session is deleted or expires, or the pool closes.

        Raises:
            SessionNotFoundError: the session does not exist.
        """
        return await self._store.watch(self.session_id, names, include_current=include_current)

    def __repr__(self) -> str:
        return f"<SessionVariables session={self.session_id!r}>"


class Session:
    """Runs calls within one session of a pool and holds its variables (see ``Pool.session``).

    Calls prefer the worker the session used last (``affinity="hint"``) or
    insist on it (the strict modes), so worker-local state such as a loaded
    model or ``remember``/``recall`` stays reachable. ``async with`` creates
    the session (or touches it) on entry; it is not deleted on exit, so the
    same id can be used again until its TTL runs out.
    """

    def __init__(self, pool: Pool, session_id: str) -> None:
        self.pool = pool
        self.id = session_id

    async def __aenter__(self) -> Session:
        await self.initialize()
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    @property
    def worker_id(self) -> str | None:
        """The worker this session last ran on (None before its first call)."""
        return self.pool.affinity_worker(self.id)

    @cached_property
    def variables(self) -> SessionVariables:
        """The session's typed, versioned variables (shared with worker code)."""
        return SessionVariables(self.pool._store, self.id)

    async def initialize(
        self, *, metadata: Mapping[str, Any] | None = None, ttl: float | None = None
    ) -> SessionInfo:
        """Create the session, or touch it if it exists; returns its snapshot.

        Args:
            metadata: free-form data kept with a new session.
            ttl: seconds of inactivity before a new session expires (default: ``session_ttl``).

        Raises:
            SessionQuotaError: the pool already holds ``max_sessions`` live sessions.
            ValueError: ``ttl`` is not > 0.
        """
        return await self.pool._store.get_or_create(self.id, metadata=metadata, ttl=ttl)

    async def info(self) -> SessionInfo:
        """The session's snapshot (metadata, times, TTL, affinity, variable count).

        Raises:
            SessionNotFoundError: the session does not exist.
        """
        return await self.pool._store.get(self.id)

    async def update_metadata(
        self, metadata: Mapping[str, Any], *, replace: bool = False
    ) -> SessionInfo:
        """Change the session's metadata: merge ``metadata`` into it, or replace it whole.

        Raises:
            SessionNotFoundError: the session does not exist.
            InvalidValueError: ``metadata`` is not a mapping.
        """
        return await self.pool._store.update_metadata(self.id, metadata, replace=replace)

    async def delete(self) -> bool:
        """Delete the session and its variables; True when it existed. Idempotent."""
        return await self.pool.sessions.delete(self.id)

    async def execute(
        self, tool: str, args: dict[str, Any] | None = None, *, timeout: Any = None, **kw: Any
    ) -> Any:
        """``Pool.execute`` within this session (same arguments and errors)."""
        if timeout is not None:
            kw["timeout"] = timeout
        return await self.pool.execute(tool, args, session_id=self.id, **kw)

    def stream(
        self, tool: str, args: dict[str, Any] | None = None, **kw: Any
    ) -> AsyncIterator[Any]:
        """``Pool.stream`` within this session."""
        return self.pool.stream(tool, args, session_id=self.id, **kw)

    def __repr__(self) -> str:
        return f"<Session {self.id} worker={self.worker_id}>"


class Sessions:
    """The live sessions of a pool (``pool.sessions``)."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    async def list(self) -> _Infos:
        """Snapshots of every live session, oldest first (nothing is touched).

        Raises:
            Nothing.
        """
        return await self._pool._store.list_sessions()

    async def get(self, session_id: str) -> SessionInfo:
        """The snapshot of one session (touched).

        Raises:
            SessionNotFoundError: no live session has that id.
        """
        return await self._pool._store.get(session_id)

    async def delete(self, session_id: str) -> bool:
        """Delete a session with its variables (its watches end); True when it existed.

        Raises:
            Nothing for a missing session: deleting twice is fine.
        """
        if isinstance(session_id, str):  # anything else names no session (nor a hashable key)
            self._pool.forget_session(session_id)
        return await self._pool._store.delete(session_id)

    def __repr__(self) -> str:
        return f"<Sessions of pool {self._pool.name!r}>"
