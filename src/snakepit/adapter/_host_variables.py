"""``ctx.variables``: the variables of the session a tool runs in, blocking and async.

Each method builds its call with :mod:`snakepit.adapter._host_ops` and sends it
through the worker's :class:`~snakepit.adapter._host_client.HostClient`: the
blocking methods for synchronous tools (they run on threads), the
``a``-prefixed coroutines for ``async`` tools.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeAlias

from snakepit.adapter import _host_ops as ops
from snakepit.errors import SessionNotFoundError

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from snakepit._variables import BatchResult, Variable
    from snakepit.adapter._host_client import HostClient
    from snakepit.adapter._host_watch import AsyncHostWatch, HostWatch

__all__ = ["WorkerVariables"]

# ``WorkerVariables.list`` shadows the builtin inside that class.
_Variables: TypeAlias = "list[Variable]"
_Names: TypeAlias = "list[str]"


class WorkerVariables:
    """The variables of the session a tool runs in (``ctx.variables``).

    ``ctx.variables["x"]`` reads the value, ``ctx.variables["x"] = 3`` writes
    it; the methods mirror the host's ``session.variables``. Blocking methods
    are for synchronous tools; ``async`` tools use the ``a``-prefixed ones.

    Every call names the session; a tool called outside a session raises
    :class:`~snakepit.errors.SessionNotFoundError` without asking the host.
    """

    def __init__(self, client: HostClient, session_id: str | None, *, where: str = "") -> None:
        self._client = client
        self._session_id = session_id
        self._where = where

    @property
    def session_id(self) -> str:
        """The session's id.

        Raises:
            SessionNotFoundError: the tool runs outside a session.
        """
        if self._session_id is None:
            raise SessionNotFoundError(
                f"{self._where or 'this call'} runs outside a session, so it has no session "
                "variables; call the tool within one (pool.session(...).execute(...) or "
                "execute(..., session_id=...))",
                session_id=None,
            )
        return self._session_id

    # -- blocking API (sync tools) -----------------------------------------------------------

    def __getitem__(self, name: str) -> Any:
        """The current value of ``name`` (see :meth:`get`)."""
        return self.get(name).value

    def __setitem__(self, name: str, value: Any) -> None:
        """Write ``value`` to ``name`` (see :meth:`set`)."""
        self.set(name, value)

    def __delitem__(self, name: str) -> None:
        """Delete ``name`` (see :meth:`delete`)."""
        self.delete(name)

    def get(self, name: str) -> Variable:
        """The current version of a variable.

        Raises:
            SessionNotFoundError: no session (outside one, deleted or expired).
            VariableNotFoundError: the session has no such variable.
        """
        return self._client.run(ops.get_variable(self.session_id, name))

    def set(self, name: str, value: Any, *, expected_version: int | None = None) -> Variable:
        """Write a new value; returns the new version.

        Raises:
            SessionNotFoundError: no session.
            VariableNotFoundError: no such variable (register it first).
            VariableValidationError: the value breaks the type or a constraint.
            VersionConflictError: ``expected_version`` is not the current version.
        """
        return self._client.run(ops.set_variable(self.session_id, name, value, expected_version))

    def register(
        self,
        name: str,
        type: str,
        value: Any,
        *,
        constraints: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Variable:
        """Define a variable at version 1 (the same definition again returns it unchanged).

        Raises:
            SessionNotFoundError: no session.
            VariableValidationError: bad name, type or constraints, or ``value`` breaks them.
            ValueError: the name exists with a different type or constraints.
        """
        return self._client.run(
            ops.register_variable(self.session_id, name, type, value, constraints, metadata)
        )

    def get_many(self, names: Iterable[str]) -> tuple[dict[str, Variable], _Names]:
        """``(found, missing)`` for several names at once.

        Raises:
            SessionNotFoundError: no session.
        """
        return self._client.run(ops.get_many(self.session_id, names))

    def set_many(
        self,
        values: Mapping[str, Any],
        *,
        atomic: bool = False,
        expected_versions: Mapping[str, int] | None = None,
    ) -> BatchResult:
        """Write several variables; all or nothing when ``atomic``.

        Raises:
            SessionNotFoundError: no session.
            VariableError: atomic, and a value failed (the first failure; nothing written).
        """
        return self._client.run(ops.set_many(self.session_id, values, atomic, expected_versions))

    def list(self, pattern: str = "*") -> _Variables:
        """The variables whose names match the ``fnmatch`` ``pattern``, sorted by name.

        Raises:
            SessionNotFoundError: no session.
        """
        return self._client.run(ops.list_variables(self.session_id, pattern))

    def delete(self, name: str) -> None:
        """Delete a variable and its history.

        Raises:
            SessionNotFoundError: no session.
            VariableNotFoundError: no such variable.
        """
        self._client.run(ops.delete_variable(self.session_id, name))

    def history(self, name: str) -> _Variables:
        """The kept versions of a variable, oldest first.

        Raises:
            SessionNotFoundError: no session.
            VariableNotFoundError: no such variable.
        """
        return self._client.run(ops.history(self.session_id, name))

    def rollback(self, name: str, version: int, *, expected_version: int | None = None) -> Variable:
        """Write the value of an older ``version`` again, as a new version.

        Raises:
            SessionNotFoundError: no session.
            VariableNotFoundError: no such variable or version.
            VersionConflictError: ``expected_version`` is not the current version.
        """
        return self._client.run(ops.rollback(self.session_id, name, version, expected_version))

    def update_metadata(
        self,
        name: str,
        metadata: Mapping[str, Any],
        *,
        replace: bool = False,
        expected_version: int | None = None,
    ) -> Variable:
        """Merge ``metadata`` into a variable's metadata (or, with ``replace``, make it the
        whole metadata); a new version with the same value, seen by watches.

        Raises:
            SessionNotFoundError: no session.
            VariableNotFoundError: no such variable.
            VersionConflictError: ``expected_version`` is not the current version.
            InvalidValueError: ``metadata`` is not a mapping.
        """
        return self._client.run(
            ops.variable_metadata(self.session_id, name, metadata, replace, expected_version)
        )

    def export(self, pattern: str = "*") -> dict[str, Any]:
        """The variables matching ``pattern`` as one JSON-compatible document, as the host's
        ``session.variables.export()`` makes it; :meth:`import_` reads it back.

        Raises:
            SessionNotFoundError: no session.
        """
        return self._client.run(ops.export_variables(self.session_id, pattern))

    def import_(self, data: Mapping[str, Any], *, overwrite: bool = False) -> dict[str, Variable]:
        """Write the variables of an export into this session, all or nothing; the written
        variables by name. A name that exists is an error unless ``overwrite``.

        Raises:
            SessionNotFoundError: no session.
            InvalidValueError: ``data`` is not an export.
            VariableValidationError: an entry's name, type, constraints or value is invalid.
            VariableRedefinedError: a name exists and ``overwrite`` is False.
        """
        return self._client.run(ops.import_variables(self.session_id, data, overwrite))

    def watch(
        self, names: Iterable[str] | None = None, *, include_current: bool = False
    ) -> HostWatch:
        """Follow this session's variable updates; returns once the watch is live.

        Raises:
            SessionNotFoundError: no session.
        """
        return self._client.open_watch(ops.watch_request(self.session_id, names, include_current))

    # -- async API (async tools) -------------------------------------------------------------

    async def aget(self, name: str) -> Variable:
        """:meth:`get` for async tools."""
        return await self._client.arun(ops.get_variable(self.session_id, name))

    async def aset(self, name: str, value: Any, *, expected_version: int | None = None) -> Variable:
        """:meth:`set` for async tools."""
        return await self._client.arun(
            ops.set_variable(self.session_id, name, value, expected_version)
        )

    async def aregister(
        self,
        name: str,
        type: str,
        value: Any,
        *,
        constraints: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Variable:
        """:meth:`register` for async tools."""
        return await self._client.arun(
            ops.register_variable(self.session_id, name, type, value, constraints, metadata)
        )

    async def aget_many(self, names: Iterable[str]) -> tuple[dict[str, Variable], _Names]:
        """:meth:`get_many` for async tools."""
        return await self._client.arun(ops.get_many(self.session_id, names))

    async def aset_many(
        self,
        values: Mapping[str, Any],
        *,
        atomic: bool = False,
        expected_versions: Mapping[str, int] | None = None,
    ) -> BatchResult:
        """:meth:`set_many` for async tools."""
        return await self._client.arun(
            ops.set_many(self.session_id, values, atomic, expected_versions)
        )

    async def alist(self, pattern: str = "*") -> _Variables:
        """:meth:`list` for async tools."""
        return await self._client.arun(ops.list_variables(self.session_id, pattern))

    async def adelete(self, name: str) -> None:
        """:meth:`delete` for async tools."""
        await self._client.arun(ops.delete_variable(self.session_id, name))

    async def ahistory(self, name: str) -> _Variables:
        """:meth:`history` for async tools."""
        return await self._client.arun(ops.history(self.session_id, name))

    async def arollback(
        self, name: str, version: int, *, expected_version: int | None = None
    ) -> Variable:
        """:meth:`rollback` for async tools."""
        return await self._client.arun(
            ops.rollback(self.session_id, name, version, expected_version)
        )

    async def aupdate_metadata(
        self,
        name: str,
        metadata: Mapping[str, Any],
        *,
        replace: bool = False,
        expected_version: int | None = None,
    ) -> Variable:
        """:meth:`update_metadata` for async tools."""
        op = ops.variable_metadata(self.session_id, name, metadata, replace, expected_version)
        return await self._client.arun(op)

    async def aexport(self, pattern: str = "*") -> dict[str, Any]:
        """:meth:`export` for async tools."""
        return await self._client.arun(ops.export_variables(self.session_id, pattern))

    async def aimport_(
        self, data: Mapping[str, Any], *, overwrite: bool = False
    ) -> dict[str, Variable]:
        """:meth:`import_` for async tools."""
        return await self._client.arun(ops.import_variables(self.session_id, data, overwrite))

    async def awatch(
        self, names: Iterable[str] | None = None, *, include_current: bool = False
    ) -> AsyncHostWatch:
        """:meth:`watch` for async tools: ``async for update in await ctx.variables.awatch()``."""
        return await self._client.aopen_watch(
            ops.watch_request(self.session_id, names, include_current)
        )

    def __repr__(self) -> str:
        return f"<WorkerVariables session={self._session_id!r} via {self._client!r}>"
