"""Typed blocking views of sessions for ``SyncPool``: ``pool.session(...)`` and ``pool.sessions``.

Each method runs its ``Pool`` counterpart on the SyncPool's loop and blocks for the
result, with the same arguments and errors; streams and watches come back as plain
iterators. The methods are spelled out (not forwarded by ``__getattr__``) so that a
typo is a ``mypy`` error and an ``AttributeError``, never a silent ``Any``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping

    from snakepit._variables import BatchResult, Variable
    from snakepit.bridge._store import SessionInfo
    from snakepit.events import VariableUpdated
    from snakepit.pool._session import Session, Sessions, SessionVariables
    from snakepit.pool._sync import SyncPool

__all__ = ["SyncSession", "SyncSessionVariables", "SyncSessions"]

# ``list`` methods shadow the builtin inside their classes.
_Variables: TypeAlias = "list[Variable]"
_Names: TypeAlias = "list[str]"
_Infos: TypeAlias = "list[SessionInfo]"


class SyncSessionVariables:
    """``session.variables`` for threads (see ``SessionVariables``); every method blocks."""

    def __init__(self, target: SessionVariables, sync_pool: SyncPool) -> None:
        self._target = target
        self._sync = sync_pool
        self.session_id = target.session_id

    def register(
        self,
        name: str,
        type: str,
        value: Any,
        *,
        constraints: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Variable:
        """Blocking ``SessionVariables.register`` (same arguments and errors)."""
        return self._sync._run(
            self._target.register(name, type, value, constraints=constraints, metadata=metadata)
        )

    def get(self, name: str) -> Variable:
        """Blocking ``SessionVariables.get``."""
        return self._sync._run(self._target.get(name))

    def set(self, name: str, value: Any, *, expected_version: int | None = None) -> Variable:
        """Blocking ``SessionVariables.set``."""
        return self._sync._run(self._target.set(name, value, expected_version=expected_version))

    def get_many(self, names: Iterable[str]) -> tuple[dict[str, Variable], _Names]:
        """Blocking ``SessionVariables.get_many``."""
        return self._sync._run(self._target.get_many(names))

    def set_many(
        self,
        values: Mapping[str, Any],
        *,
        atomic: bool = False,
        expected_versions: Mapping[str, int] | None = None,
    ) -> BatchResult:
        """Blocking ``SessionVariables.set_many``."""
        return self._sync._run(
            self._target.set_many(values, atomic=atomic, expected_versions=expected_versions)
        )

    def list(self, pattern: str = "*") -> _Variables:
        """Blocking ``SessionVariables.list``."""
        return self._sync._run(self._target.list(pattern))

    def delete(self, name: str) -> None:
        """Blocking ``SessionVariables.delete``."""
        self._sync._run(self._target.delete(name))

    def history(self, name: str) -> _Variables:
        """Blocking ``SessionVariables.history``."""
        return self._sync._run(self._target.history(name))

    def rollback(self, name: str, version: int, *, expected_version: int | None = None) -> Variable:
        """Blocking ``SessionVariables.rollback``."""
        return self._sync._run(
            self._target.rollback(name, version, expected_version=expected_version)
        )

    def update_metadata(
        self,
        name: str,
        metadata: Mapping[str, Any],
        *,
        replace: bool = False,
        expected_version: int | None = None,
    ) -> Variable:
        """Blocking ``SessionVariables.update_metadata``."""
        return self._sync._run(
            self._target.update_metadata(
                name, metadata, replace=replace, expected_version=expected_version
            )
        )

    def export(self, pattern: str = "*") -> dict[str, Any]:
        """Blocking ``SessionVariables.export``."""
        return self._sync._run(self._target.export(pattern))

    def import_(self, data: Mapping[str, Any], *, overwrite: bool = False) -> dict[str, Variable]:
        """Blocking ``SessionVariables.import_``."""
        return self._sync._run(self._target.import_(data, overwrite=overwrite))

    def watch(
        self, names: Iterable[str] | None = None, *, include_current: bool = False
    ) -> Iterator[VariableUpdated]:
        """``SessionVariables.watch`` as a plain iterator of ``VariableUpdated`` events."""
        watch = self._sync._run(self._target.watch(names, include_current=include_current))
        return self._sync._iterate(watch)

    def __repr__(self) -> str:
        return f"<SyncSessionVariables session={self.session_id!r}>"


class SyncSession:
    """``pool.session(id)`` for threads (see ``Session``); every method blocks."""

    def __init__(self, target: Session, sync_pool: SyncPool) -> None:
        self._target = target
        self._sync = sync_pool
        self.id = target.id
        self.variables = SyncSessionVariables(target.variables, sync_pool)

    @property
    def worker_id(self) -> str | None:
        """The worker this session last ran on (None before its first call)."""
        return self._target.worker_id

    def __enter__(self) -> SyncSession:
        self.initialize()
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def initialize(
        self, *, metadata: Mapping[str, Any] | None = None, ttl: float | None = None
    ) -> SessionInfo:
        """Blocking ``Session.initialize``."""
        return self._sync._run(self._target.initialize(metadata=metadata, ttl=ttl))

    def info(self) -> SessionInfo:
        """Blocking ``Session.info``."""
        return self._sync._run(self._target.info())

    def update_metadata(self, metadata: Mapping[str, Any], *, replace: bool = False) -> SessionInfo:
        """Blocking ``Session.update_metadata``."""
        return self._sync._run(self._target.update_metadata(metadata, replace=replace))

    def delete(self) -> bool:
        """Blocking ``Session.delete``."""
        return self._sync._run(self._target.delete())

    def execute(
        self, tool: str, args: dict[str, Any] | None = None, *, timeout: Any = None, **kw: Any
    ) -> Any:
        """Blocking ``Session.execute`` (same arguments and errors)."""
        return self._sync._run(self._target.execute(tool, args, timeout=timeout, **kw))

    def stream(self, tool: str, args: dict[str, Any] | None = None, **kw: Any) -> Iterator[Any]:
        """``Session.stream`` as a plain iterator of the chunks."""
        return self._sync._iterate(self._target.stream(tool, args, **kw))

    def __repr__(self) -> str:
        return f"<SyncSession {self.id} worker={self.worker_id}>"


class SyncSessions:
    """``pool.sessions`` for threads (see ``Sessions``); every method blocks."""

    def __init__(self, target: Sessions, sync_pool: SyncPool) -> None:
        self._target = target
        self._sync = sync_pool

    def list(self) -> _Infos:
        """Blocking ``Sessions.list``."""
        return self._sync._run(self._target.list())

    def get(self, session_id: str) -> SessionInfo:
        """Blocking ``Sessions.get``."""
        return self._sync._run(self._target.get(session_id))

    def delete(self, session_id: str) -> bool:
        """Blocking ``Sessions.delete``."""
        return self._sync._run(self._target.delete(session_id))

    def __repr__(self) -> str:
        return f"<SyncSessions of {self._sync.name!r}>"
