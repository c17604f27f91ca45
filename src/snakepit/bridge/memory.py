"""The embedded session store: everything in memory, driven by an injected clock.

The store is used from one asyncio loop. No method awaits between checking
and writing, so every operation is atomic with respect to other tasks: ten
concurrent ``set_variable`` calls make ten versions, none lost.
"""

from __future__ import annotations

import asyncio
import collections
import fnmatch
import math
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from snakepit.bridge.store import BatchResult, Session, SessionStore
from snakepit.bridge.types import get_type, short_repr
from snakepit.bridge.variables import Variable, validate_variable_name
from snakepit.bridge.watch import VariableWatch
from snakepit.clock import Clock, SystemClock
from snakepit.errors import (
    InvalidValueError,
    SessionNotFoundError,
    SessionQuotaError,
    VariableError,
    VariableNotFoundError,
    VariableRedefinedError,
    VersionConflictError,
)
from snakepit.events import (
    Event,
    EventBus,
    SessionCreated,
    SessionDeleted,
    SessionExpired,
    VariableUpdated,
)

__all__ = ["InMemorySessionStore", "validate_session_id"]

_SESSION_ID = re.compile(r"[A-Za-z0-9_.:-]{1,128}")


def validate_session_id(session_id: Any) -> str:
    """Return ``session_id`` when it is a valid id: ``[A-Za-z0-9_.:-]{1,128}``.

    Raises:
        InvalidValueError: it is not a string of that shape (also a ``ValueError``).
    """
    if not isinstance(session_id, str) or _SESSION_ID.fullmatch(session_id) is None:
        raise InvalidValueError(
            f"invalid session id {short_repr(session_id)}: use 1-128 characters [A-Za-z0-9_.:-]",
            argument="session_id",
        )
    return session_id


def _mapping(value: Any, argument: str) -> dict[str, Any]:
    """A fresh dict of ``value`` (None: empty), which must be a mapping."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidValueError(
            f"{argument} must be a mapping (a dict), got {type(value).__name__}",
            argument=argument,
        )
    return dict(value)


def _names(names: Any) -> list[Any]:
    """The names of an iterable of variable names; a lone string is a mistake, not a list."""
    if isinstance(names, str | bytes) or not isinstance(names, Iterable):
        raise InvalidValueError(
            f"names must be a list of variable names, got {type(names).__name__}",
            argument="names",
        )
    return list(names)


@dataclass(eq=False)
class _Entry:
    current: Variable
    history: collections.deque[Variable]


@dataclass(eq=False)
class _State:
    id: str
    metadata: dict[str, Any]
    ttl: float
    created_at: float
    last_access: float  # monotonic, for expiry
    last_access_wall: float  # wall, for people
    affinity: str | None = None
    variables: dict[str, _Entry] = field(default_factory=dict)
    watches: list[VariableWatch] = field(default_factory=list)

    @property
    def deadline(self) -> float:
        return self.last_access + self.ttl

    def snapshot(self) -> Session:
        return Session(
            id=self.id,
            metadata=dict(self.metadata),
            created_at=self.created_at,
            last_access=self.last_access_wall,
            ttl=self.ttl,
            affinity_worker=self.affinity,
            variable_count=len(self.variables),
        )


class InMemorySessionStore(SessionStore):
    """Sessions and variables in this process's memory; the default store.

    Use it as ``async with InMemorySessionStore(...) as store:`` to run the
    expiry loop in a task the store owns, or run :meth:`run_expiry` in your own
    task group and call :meth:`close` at the end.

    Args:
        clock: where time comes from (``supertester.FakeClock`` in tests).
        ttl: default seconds of inactivity before a session expires (``math.inf``: never).
        max_sessions: the most live sessions at once; None for no limit.
        history_limit: versions kept per variable (the oldest is dropped).
        events: the bus to publish session and variable events on, if any.
        name: names the store in events (``source``) and messages.

    Raises:
        ValueError: ``ttl``, ``max_sessions`` or ``history_limit`` is out of range.
    """

    def __init__(
        self,
        clock: Clock | None = None,
        *,
        ttl: float = 3600.0,
        max_sessions: int | None = None,
        history_limit: int = 100,
        events: EventBus | None = None,
        name: str = "",
    ) -> None:
        _check_ttl(ttl)
        if max_sessions is not None and max_sessions < 1:
            raise ValueError(f"max_sessions must be >= 1 or None, got {max_sessions!r}")
        if history_limit < 1:
            raise ValueError(f"history_limit must be >= 1, got {history_limit!r}")
        self._clock: Clock = clock if clock is not None else SystemClock()
        self.ttl = float(ttl)
        self.max_sessions = max_sessions
        self.history_limit = history_limit
        self.name = name
        self._events = events
        self._sessions: dict[str, _State] = {}
        self._closed = False
        self._wake: asyncio.Future[None] | None = None
        self._planned: float | None = None  # the deadline the expiry loop sleeps towards
        self._expiry_task: asyncio.Task[None] | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> InMemorySessionStore:
        self._expiry_task = asyncio.create_task(
            self.run_expiry(), name=f"snakepit-session-expiry[{self.name}]"
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """End every watch and the expiry loop; sessions stay readable. Idempotent.

        Raises:
            Nothing.
        """
        self._closed = True
        for state in self._sessions.values():
            self._end_watches(state, "store closed")
        self._wake_expiry()
        task, self._expiry_task = self._expiry_task, None
        if task is not None:
            await task

    async def run_expiry(self) -> None:
        """Expire sessions as they come due, sleeping on the clock in between, until closed.

        Raises:
            asyncio.CancelledError: when cancelled.
        """
        loop = asyncio.get_running_loop()
        try:
            while not self._closed:
                self._expire_due()
                self._planned = self._next_deadline()
                wake = self._wake = loop.create_future()
                if self._planned is None:
                    await wake
                    continue
                sleeper = asyncio.ensure_future(self._sleep_until(self._planned))
                try:
                    await asyncio.wait((sleeper, wake), return_when=asyncio.FIRST_COMPLETED)
                finally:
                    sleeper.cancel()
                    await asyncio.wait((sleeper,))
        finally:
            self._wake = None
            self._planned = None

    async def _sleep_until(self, deadline: float) -> None:
        # The delay is measured when the sleep starts, not when its task was created.
        await self._clock.sleep(deadline - self._clock.monotonic())

    def _wake_expiry(self) -> None:
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    def _next_deadline(self) -> float | None:
        deadline = min((s.deadline for s in self._sessions.values()), default=math.inf)
        return None if deadline == math.inf else deadline

    # -- sessions ----------------------------------------------------------------------------

    async def create(
        self,
        session_id: str | None = None,
        *,
        metadata: Mapping[str, Any] | None = None,
        ttl: float | None = None,
    ) -> Session:
        """Create a session and publish ``SessionCreated``.

        Raises:
            ValueError: the id is malformed, already in use, or ``ttl`` is not > 0.
            SessionQuotaError: the store already holds ``max_sessions`` live sessions.
        """
        if session_id is None:
            session_id = uuid.uuid4().hex
        validate_session_id(session_id)
        if self._find(session_id) is not None:
            raise InvalidValueError(
                f"session {session_id!r} already exists in store {self.name!r}; "
                "use get_or_create() to reuse it",
                argument="session_id",
            )
        return self._create(session_id, metadata, ttl).snapshot()

    async def get_or_create(
        self,
        session_id: str,
        *,
        metadata: Mapping[str, Any] | None = None,
        ttl: float | None = None,
    ) -> Session:
        """The live session ``session_id`` (touched), or a new one made with these arguments.

        Raises:
            ValueError: the id is malformed or ``ttl`` is not > 0.
            SessionQuotaError: a new session is needed and the store is full.
        """
        validate_session_id(session_id)
        state = self._find(session_id)
        if state is not None:
            self._touch(state)
            return state.snapshot()
        return self._create(session_id, metadata, ttl).snapshot()

    def _create(
        self, session_id: str, metadata: Mapping[str, Any] | None, ttl: float | None
    ) -> _State:
        ttl = self.ttl if ttl is None else _check_ttl(ttl)
        if self.max_sessions is not None and len(self._sessions) >= self.max_sessions:
            self._expire_due()
            if len(self._sessions) >= self.max_sessions:
                raise SessionQuotaError(
                    f"cannot create session {session_id!r}: store {self.name!r} already holds "
                    f"max_sessions={self.max_sessions} live sessions; delete some or raise the limit",
                    session_id=session_id,
                    max_sessions=self.max_sessions,
                )
        now, wall = self._clock.monotonic(), self._clock.time()
        state = _State(
            id=session_id,
            metadata=_mapping(metadata, "metadata"),
            ttl=float(ttl),
            created_at=wall,
            last_access=now,
            last_access_wall=wall,
        )
        self._sessions[session_id] = state
        if self._planned is None or state.deadline < self._planned:
            self._wake_expiry()
        self._publish(SessionCreated(session_id=session_id, source=self.name, at=wall))
        return state

    async def get(self, session_id: str) -> Session:
        """The session ``session_id``, touched.

        Raises:
            SessionNotFoundError: no live session has that id.
        """
        return self._use(session_id).snapshot()

    async def touch(self, session_id: str) -> Session:
        """Mark the session used now, so its TTL restarts; returns its snapshot.

        Raises:
            SessionNotFoundError: no live session has that id.
        """
        return self._use(session_id).snapshot()

    async def delete(self, session_id: str) -> bool:
        """Delete the session with its variables; its watches end. Idempotent.

        Returns:
            True when a live session was deleted (and ``SessionDeleted`` published).

        Raises:
            Nothing for a missing session: deleting twice is fine.
        """
        state = self._find(session_id)
        if state is None:
            return False
        self._remove(state, expired=False)
        return True

    async def list_sessions(self) -> list[Session]:
        """Snapshots of every live session, oldest first; nothing is touched.

        Raises:
            Nothing.
        """
        self._expire_due()
        return [state.snapshot() for state in self._sessions.values()]

    async def set_affinity(self, session_id: str, worker_id: str | None) -> Session:
        """Pin the session to ``worker_id`` (None unpins it).

        Raises:
            SessionNotFoundError: no live session has that id.
        """
        state = self._use(session_id)
        state.affinity = worker_id
        return state.snapshot()

    async def get_affinity(self, session_id: str) -> str | None:
        """The worker the session is pinned to, or None.

        Raises:
            SessionNotFoundError: no live session has that id.
        """
        return self._use(session_id).affinity

    async def drop_affinity(self, worker_id: str) -> list[str]:
        """Unpin every session pinned to ``worker_id`` (it exited); returns their ids.

        Raises:
            Nothing.
        """
        dropped = []
        for state in self._sessions.values():
            if state.affinity == worker_id:
                state.affinity = None
                dropped.append(state.id)
        return dropped

    async def expire_due(self) -> list[str]:
        """Remove every session whose TTL ran out now, publishing ``SessionExpired``.

        Returns:
            The ids of the sessions that expired.

        Raises:
            Nothing.
        """
        return self._expire_due()

    def _expire_due(self) -> list[str]:
        now = self._clock.monotonic()
        due = [s for s in self._sessions.values() if now >= s.deadline]
        for state in due:
            self._remove(state, expired=True)
        return [state.id for state in due]

    # -- session internals -------------------------------------------------------------------

    def _find(self, session_id: str) -> _State | None:
        """The live session, or None; an expired one is removed on the spot."""
        if not isinstance(session_id, str):
            return None  # no session has such an id (and it may not even be hashable)
        state = self._sessions.get(session_id)
        if state is not None and self._clock.monotonic() >= state.deadline:
            self._remove(state, expired=True)
            return None
        return state

    def _use(self, session_id: str) -> _State:
        state = self._find(session_id)
        if state is None:
            raise SessionNotFoundError(
                f"session {short_repr(session_id)} not found in store {self.name!r} "
                "(never created, deleted or expired); create it first",
                session_id=session_id,
            )
        self._touch(state)
        return state

    def _touch(self, state: _State) -> None:
        state.last_access = self._clock.monotonic()
        state.last_access_wall = self._clock.time()

    def _remove(self, state: _State, *, expired: bool) -> None:
        del self._sessions[state.id]
        self._end_watches(state, "session expired" if expired else "session deleted")
        event_type = SessionExpired if expired else SessionDeleted
        self._publish(event_type(session_id=state.id, source=self.name, at=self._clock.time()))

    def _end_watches(self, state: _State, reason: str) -> None:
        watches, state.watches = state.watches, []
        for watch in watches:
            watch.end(reason)

    def _publish(self, event: Event) -> None:
        if self._events is not None:
            self._events.publish(event)

    # -- variables ---------------------------------------------------------------------------

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
        """Define a variable at version 1 (the same definition again returns the existing one).

        Raises:
            SessionNotFoundError: no live session has that id.
            VariableValidationError: bad name, unknown type, bad constraints, or
                ``value`` breaks them.
            ValueError: the name exists with a different type or constraints.
        """
        state = self._use(session_id)
        validate_variable_name(name)
        vtype = get_type(type, variable=name)
        checked = vtype.check_constraints(constraints, variable=name)
        normalized = vtype.validate(name, value, checked)
        entry = state.variables.get(name)
        if entry is not None:
            old = entry.current
            if old.type == type and old.constraints == checked:
                return old
            raise VariableRedefinedError(
                f"variable {name!r} of session {session_id!r} is already registered as "
                f"{old.type} with constraints {short_repr(old.constraints)}; delete it first "
                "to register it differently",
                variable=name,
                session_id=session_id,
            )
        wall = self._clock.time()
        variable = Variable(
            name=name,
            type=type,
            value=normalized,
            version=1,
            constraints=checked,
            metadata=_mapping(metadata, "metadata"),
            created_at=wall,
            updated_at=wall,
        )
        state.variables[name] = _Entry(
            variable, collections.deque([variable], maxlen=self.history_limit)
        )
        self._announce(state, variable)
        return variable

    async def get_variable(self, session_id: str, name: str) -> Variable:
        """The current version of a variable.

        Raises:
            SessionNotFoundError: no live session has that id.
            VariableNotFoundError: the session has no such variable.
        """
        return self._entry(self._use(session_id), name).current

    async def set_variable(
        self, session_id: str, name: str, value: Any, *, expected_version: int | None = None
    ) -> Variable:
        """Write a new value; returns the new version.

        Raises:
            SessionNotFoundError: no live session has that id.
            VariableNotFoundError: the session has no such variable.
            VersionConflictError: ``expected_version`` is not the current version.
            VariableValidationError: the value breaks the type or a constraint.
        """
        state = self._use(session_id)
        entry, normalized = self._prepare(state, name, value, expected_version)
        return self._write(state, entry, normalized)

    async def get_many(
        self, session_id: str, names: Iterable[str]
    ) -> tuple[dict[str, Variable], list[str]]:
        """Several variables at once: ``(found, missing)``.

        Raises:
            SessionNotFoundError: no live session has that id.
        """
        state = self._use(session_id)
        found: dict[str, Variable] = {}
        missing: list[str] = []
        for name in _names(names):
            entry = state.variables.get(name) if isinstance(name, str) else None
            if entry is None:
                missing.append(name)
            else:
                found[name] = entry.current
        return found, missing

    async def set_many(
        self,
        session_id: str,
        values: Mapping[str, Any],
        *,
        atomic: bool = False,
        expected_versions: Mapping[str, int] | None = None,
    ) -> BatchResult:
        """Write several variables, all or nothing when ``atomic``.

        Raises:
            SessionNotFoundError: no live session has that id.
            VariableNotFoundError: atomic, and a name is not a variable.
            VersionConflictError: atomic, and an expected version does not match.
            VariableValidationError: atomic, and a value breaks its type or constraints.
        """
        state = self._use(session_id)
        values = _mapping(values, "values")
        expected = _mapping(expected_versions, "expected_versions")
        planned: list[tuple[_Entry, Any]] = []
        errors: dict[str, VariableError] = {}
        for name, value in values.items():
            try:
                planned.append(self._prepare(state, name, value, expected.get(name)))
            except VariableError as exc:
                errors[name] = exc
        if atomic and errors:
            first_name, first = next(iter(errors.items()))
            others = [n for n in errors if n != first_name]
            first.add_note(
                f"atomic set_many wrote nothing; {len(errors)} of {len(values)} values failed"
                + (f" (also: {', '.join(others)})" if others else "")
            )
            raise first
        updated = {entry.current.name: self._write(state, entry, v) for entry, v in planned}
        return BatchResult(updated=updated, errors=errors)

    async def list_variables(self, session_id: str, pattern: str = "*") -> list[Variable]:
        """The variables whose names match the ``fnmatch`` ``pattern``, sorted by name.

        Raises:
            SessionNotFoundError: no live session has that id.
        """
        state = self._use(session_id)
        if not isinstance(pattern, str):
            raise InvalidValueError(
                f"pattern must be an fnmatch pattern string, got {type(pattern).__name__}",
                argument="pattern",
            )
        return [
            state.variables[name].current
            for name in sorted(state.variables)
            if fnmatch.fnmatchcase(name, pattern)
        ]

    async def delete_variable(self, session_id: str, name: str) -> None:
        """Delete a variable and its history; watchers get an update with ``deleted=True``.

        Raises:
            SessionNotFoundError: no live session has that id.
            VariableNotFoundError: the session has no such variable.
        """
        state = self._use(session_id)
        entry = self._entry(state, name)
        del state.variables[name]
        self._notify(
            state,
            VariableUpdated(
                session_id=state.id,
                name=name,
                version=entry.current.version,
                value=None,
                deleted=True,
                source=self.name,
                at=self._clock.time(),
            ),
        )

    async def history(self, session_id: str, name: str) -> list[Variable]:
        """The kept versions of a variable, oldest first, the current one last.

        Raises:
            SessionNotFoundError: no live session has that id.
            VariableNotFoundError: the session has no such variable.
        """
        return list(self._entry(self._use(session_id), name).history)

    async def rollback(
        self, session_id: str, name: str, version: int, *, expected_version: int | None = None
    ) -> Variable:
        """Write the value of an older ``version`` again, as a new version.

        Raises:
            SessionNotFoundError: no live session has that id.
            VariableNotFoundError: no such variable, or ``version`` is not in its history.
            VersionConflictError: ``expected_version`` is not the current version.
        """
        state = self._use(session_id)
        entry = self._entry(state, name)
        self._check_version(state, entry, expected_version)
        for old in entry.history:
            if old.version == version:
                return self._write(state, entry, old.value)
        kept = [v.version for v in entry.history]
        raise VariableNotFoundError(
            f"variable {name!r} of session {state.id!r} has no version {short_repr(version)} in its "
            f"history (kept: {kept[0]}..{kept[-1]}, history_limit={self.history_limit})",
            session_id=state.id,
            variable=name,
            version=version,
            available_versions=kept,
        )

    async def watch(
        self,
        session_id: str,
        names: Iterable[str] | None = None,
        *,
        include_current: bool = False,
        maxsize: int = 1000,
    ) -> VariableWatch:
        """Follow the session's variable updates from now on.

        Raises:
            SessionNotFoundError: no live session has that id.
            ValueError: ``maxsize`` is below 1.
        """
        state = self._use(session_id)
        wanted = (
            None if names is None else frozenset(n for n in _names(names) if isinstance(n, str))
        )
        watch = VariableWatch(
            state.id, wanted, maxsize=maxsize, on_close=lambda w: _discard(state.watches, w)
        )
        if include_current:
            for name in sorted(state.variables):
                watch.offer(self._update_event(state, state.variables[name].current))
        if self._closed:
            watch.end("store closed")
        else:
            state.watches.append(watch)
        return watch

    # -- variable internals ------------------------------------------------------------------

    def _entry(self, state: _State, name: str) -> _Entry:
        entry = state.variables.get(name) if isinstance(name, str) else None
        if entry is None:
            raise VariableNotFoundError(
                f"session {state.id!r} has no variable {short_repr(name)}; register it first",
                session_id=state.id,
                variable=name,
            )
        return entry

    def _check_version(self, state: _State, entry: _Entry, expected: int | None) -> None:
        actual = entry.current.version
        if expected is not None and expected != actual:
            raise VersionConflictError(
                f"variable {entry.current.name!r} of session {state.id!r} is at version "
                f"{actual}, not the expected {short_repr(expected)}; read it again and retry",
                session_id=state.id,
                variable=entry.current.name,
                expected_version=expected,
                actual_version=actual,
            )

    def _prepare(
        self, state: _State, name: str, value: Any, expected_version: int | None
    ) -> tuple[_Entry, Any]:
        """Check a write without doing it: the entry and the normalized value."""
        entry = self._entry(state, name)
        self._check_version(state, entry, expected_version)
        old = entry.current
        return entry, get_type(old.type).validate(name, value, old.constraints)

    def _write(self, state: _State, entry: _Entry, value: Any) -> Variable:
        old = entry.current
        variable = Variable(
            name=old.name,
            type=old.type,
            value=value,
            version=old.version + 1,
            constraints=old.constraints,
            metadata=old.metadata,
            created_at=old.created_at,
            updated_at=self._clock.time(),
        )
        entry.current = variable
        entry.history.append(variable)
        self._announce(state, variable)
        return variable

    def _update_event(self, state: _State, variable: Variable) -> VariableUpdated:
        return VariableUpdated(
            session_id=state.id,
            name=variable.name,
            version=variable.version,
            value=variable.value,
            source=self.name,
            at=variable.updated_at,
        )

    def _announce(self, state: _State, variable: Variable) -> None:
        self._notify(state, self._update_event(state, variable))

    def _notify(self, state: _State, event: VariableUpdated) -> None:
        for watch in state.watches:
            watch.offer(event)
        self._publish(event)

    def __repr__(self) -> str:
        watches = sum(len(s.watches) for s in self._sessions.values())
        state = "closed" if self._closed else "open"
        return (
            f"<InMemorySessionStore {self.name!r} {state} "
            f"[sessions {len(self._sessions)}, watches {watches}]>"
        )


def _check_ttl(ttl: float) -> float:
    if (
        isinstance(ttl, bool)
        or not isinstance(ttl, int | float)
        or (isinstance(ttl, float) and math.isnan(ttl))
        or ttl <= 0
    ):
        raise InvalidValueError(
            f"ttl must be a number of seconds > 0 (math.inf: never), got {short_repr(ttl)}",
            argument="ttl",
        )
    try:
        return float(ttl)
    except OverflowError:  # an int beyond float range is as good as never
        return math.inf


def _discard(watches: list[VariableWatch], watch: VariableWatch) -> None:
    if watch in watches:
        watches.remove(watch)
