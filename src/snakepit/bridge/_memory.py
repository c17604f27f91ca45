"""The embedded session store: everything in memory, driven by an injected clock.

The store is used from one asyncio loop. No method awaits between checking
and writing, so every operation is atomic with respect to other tasks: ten
concurrent ``set_variable`` calls make ten versions, none lost. What each
operation decides (validation, versions, history, batches, quota, expiry)
comes from :mod:`snakepit.bridge._rules`, :mod:`~snakepit.bridge._plans` and
:mod:`~snakepit.bridge._transfer`, shared with every other backend.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from snakepit._tasks import DeadlineTimer
from snakepit.bridge import _plans as plans
from snakepit.bridge import _rules as rules
from snakepit.bridge import _transfer as transfer
from snakepit.bridge._rules import validate_session_id
from snakepit.bridge._store import BatchResult, SessionInfo
from snakepit.bridge._store_base import StoreBase
from snakepit.bridge._watch import VariableWatch
from snakepit.events import (
    EventBus,
    SessionCreated,
    SessionDeleted,
    SessionExpired,
    VariableUpdated,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from snakepit.bridge._variables import Variable
    from snakepit.clock import Clock

__all__ = ["InMemorySessionStore", "validate_session_id"]


@dataclass(eq=False)
class _Entry:
    current: Variable
    history: list[Variable]


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
        return rules.expires_at(self.last_access, self.ttl)

    def snapshot(self) -> SessionInfo:
        return SessionInfo(
            id=self.id,
            metadata=dict(self.metadata),
            created_at=self.created_at,
            last_access=self.last_access_wall,
            ttl=self.ttl,
            affinity_worker=self.affinity,
            variable_count=len(self.variables),
        )


class InMemorySessionStore(StoreBase):
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
        super().__init__(clock, ttl, max_sessions, history_limit, events, name)
        self._sessions: dict[str, _State] = {}
        self._closed = False
        self._expiry = DeadlineTimer(self._clock, self._next_deadline, self._expire_due)

    # -- lifecycle ---------------------------------------------------------------------------

    async def close(self) -> None:
        """End every watch and the expiry loop; sessions stay readable. Idempotent.

        Raises:
            Nothing.
        """
        self._closed = True
        for state in self._sessions.values():
            self._end_watches(state, "store closed")
        self._expiry.stop()
        task, self._expiry_task = self._expiry_task, None
        if task is not None:
            await task

    async def run_expiry(self) -> None:
        """Expire sessions as they come due, sleeping on the clock in between, until closed.

        Raises:
            asyncio.CancelledError: when cancelled.
        """
        await self._expiry.run()

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
    ) -> SessionInfo:
        session_id = rules.new_session_id(session_id)
        if self._find(session_id) is not None:
            raise rules.session_exists_error(self.name, session_id)
        return self._create(session_id, metadata, ttl).snapshot()

    async def get_or_create(
        self,
        session_id: str,
        *,
        metadata: Mapping[str, Any] | None = None,
        ttl: float | None = None,
    ) -> SessionInfo:
        validate_session_id(session_id)
        state = self._find(session_id)
        if state is not None:
            self._touch(state)
            return state.snapshot()
        return self._create(session_id, metadata, ttl).snapshot()

    def _create(
        self, session_id: str, metadata: Mapping[str, Any] | None, ttl: float | None
    ) -> _State:
        ttl = self.ttl if ttl is None else rules.check_ttl(ttl)
        if self.max_sessions is not None and rules.quota_full(
            len(self._sessions), self.max_sessions
        ):
            self._expire_due()
            if rules.quota_full(len(self._sessions), self.max_sessions):
                raise rules.quota_error(self.name, session_id, self.max_sessions)
        now, wall = self._clock.monotonic(), self._clock.time()
        state = _State(
            id=session_id,
            metadata=rules.mapping(metadata, "metadata"),
            ttl=float(ttl),
            created_at=wall,
            last_access=now,
            last_access_wall=wall,
        )
        self._sessions[session_id] = state
        self._expiry.wake_for(state.deadline)
        self._publish(SessionCreated(session_id=session_id, source=self.name, at=wall))
        return state

    async def get(self, session_id: str) -> SessionInfo:
        return self._use(session_id).snapshot()

    async def touch(self, session_id: str) -> SessionInfo:
        return self._use(session_id).snapshot()

    async def delete(self, session_id: str) -> bool:
        state = self._find(session_id)
        if state is None:
            return False
        self._remove(state, expired=False)
        return True

    async def list_sessions(self) -> list[SessionInfo]:
        self._expire_due()
        return [state.snapshot() for state in self._sessions.values()]

    async def set_affinity(self, session_id: str, worker_id: str | None) -> SessionInfo:
        state = self._use(session_id)
        state.affinity = worker_id
        return state.snapshot()

    async def get_affinity(self, session_id: str) -> str | None:
        return self._use(session_id).affinity

    async def drop_affinity(self, worker_id: str) -> list[str]:
        dropped = []
        for state in self._sessions.values():
            if state.affinity == worker_id:
                state.affinity = None
                dropped.append(state.id)
        return dropped

    async def update_metadata(
        self, session_id: str, metadata: Mapping[str, Any], *, replace: bool = False
    ) -> SessionInfo:
        state = self._use(session_id)
        state.metadata = rules.merged_metadata(state.metadata, metadata, replace=replace)
        return state.snapshot()

    async def expire_due(self) -> list[str]:
        return self._expire_due()

    def _expire_due(self) -> list[str]:
        now = self._clock.monotonic()
        due = [s for s in self._sessions.values() if rules.is_expired(s.last_access, s.ttl, now)]
        for state in due:
            self._remove(state, expired=True)
        return [state.id for state in due]

    # -- session internals -------------------------------------------------------------------

    def _find(self, session_id: str) -> _State | None:
        """The live session, or None; an expired one is removed on the spot."""
        if not isinstance(session_id, str):
            return None  # no session has such an id (and it may not even be hashable)
        state = self._sessions.get(session_id)
        if state is not None and rules.is_expired(
            state.last_access, state.ttl, self._clock.monotonic()
        ):
            self._remove(state, expired=True)
            return None
        return state

    def _use(self, session_id: str) -> _State:
        state = self._find(session_id)
        if state is None:
            raise rules.session_not_found(self.name, session_id)
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
        state = self._use(session_id)
        variable, created = plans.plan_register(
            state.id,
            name,
            type,
            value,
            constraints,
            metadata,
            _current(state, name),
            self._clock.time(),
        )
        if created:
            state.variables[name] = _Entry(variable, [variable])
            self._announce(state, variable)
        return variable

    async def get_variable(self, session_id: str, name: str) -> Variable:
        return self._entry(self._use(session_id), name).current

    async def set_variable(
        self, session_id: str, name: str, value: Any, *, expected_version: int | None = None
    ) -> Variable:
        state = self._use(session_id)
        now = self._clock.time()
        new = plans.plan_write(state.id, name, _current(state, name), value, expected_version, now)
        return self._write(state, new)

    async def get_many(
        self, session_id: str, names: Iterable[str]
    ) -> tuple[dict[str, Variable], list[str]]:
        state = self._use(session_id)
        found: dict[str, Variable] = {}
        missing: list[str] = []
        for name in rules.name_list(names):
            entry = _lookup(state, name)
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
        state = self._use(session_id)
        values = rules.mapping(values, "values")
        current = {
            name: variable for name in values if (variable := _current(state, name)) is not None
        }
        plan = plans.plan_batch(
            state.id,
            current,
            values,
            atomic=atomic,
            expected_versions=expected_versions,
            now=self._clock.time(),
        )
        updated = {name: self._write(state, new) for name, new in plan.writes.items()}
        return BatchResult(updated=updated, errors=plan.errors)

    async def list_variables(self, session_id: str, pattern: str = "*") -> list[Variable]:
        state = self._use(session_id)
        return [
            state.variables[name].current for name in rules.match_names(state.variables, pattern)
        ]

    async def delete_variable(self, session_id: str, name: str) -> None:
        state = self._use(session_id)
        entry = self._entry(state, name)
        del state.variables[name]
        self._notify(
            state, plans.deleted_event(self.name, state.id, entry.current, self._clock.time())
        )

    async def history(self, session_id: str, name: str) -> list[Variable]:
        return list(self._entry(self._use(session_id), name).history)

    async def rollback(
        self, session_id: str, name: str, version: int, *, expected_version: int | None = None
    ) -> Variable:
        state = self._use(session_id)
        entry = self._entry(state, name)
        plans.check_version(state.id, entry.current, expected_version)
        old = plans.rollback_target(state.id, name, entry.history, version, self.history_limit)
        return self._write(state, plans.next_version(entry.current, old.value, self._clock.time()))

    async def update_variable_metadata(
        self,
        session_id: str,
        name: str,
        metadata: Mapping[str, Any],
        *,
        replace: bool = False,
        expected_version: int | None = None,
    ) -> Variable:
        state = self._use(session_id)
        new = plans.plan_metadata(
            state.id,
            name,
            _current(state, name),
            metadata,
            replace=replace,
            expected_version=expected_version,
            now=self._clock.time(),
        )
        return self._write(state, new)

    async def import_variables(
        self, session_id: str, data: Mapping[str, Any], *, overwrite: bool = False
    ) -> dict[str, Variable]:
        state = self._use(session_id)
        current = {name: entry.current for name, entry in state.variables.items()}
        writes = transfer.plan_import(
            state.id, data, current, overwrite=overwrite, now=self._clock.time()
        )
        for write in writes:
            new, previous = write.variable, write.previous
            if previous is not None and not write.redefined:
                self._write(state, new)
                continue
            if previous is not None:
                self._notify(
                    state, plans.deleted_event(self.name, state.id, previous, new.updated_at)
                )
            state.variables[new.name] = _Entry(new, [new])
            self._announce(state, new)
        return {write.variable.name: write.variable for write in writes}

    async def watch(
        self,
        session_id: str,
        names: Iterable[str] | None = None,
        *,
        include_current: bool = False,
        maxsize: int = 1000,
    ) -> VariableWatch:
        state = self._use(session_id)
        wanted = (
            None
            if names is None
            else frozenset(n for n in rules.name_list(names) if isinstance(n, str))
        )
        watch = VariableWatch(
            state.id, wanted, maxsize=maxsize, on_close=lambda w: _discard(state.watches, w)
        )
        if include_current:
            for name in sorted(state.variables):
                watch.offer(plans.update_event(self.name, state.id, state.variables[name].current))
        if self._closed:
            watch.end("store closed")
        else:
            state.watches.append(watch)
        return watch

    # -- variable internals ------------------------------------------------------------------

    def _entry(self, state: _State, name: str) -> _Entry:
        entry = _lookup(state, name)
        if entry is None:
            raise rules.variable_not_found(state.id, name)
        return entry

    def _write(self, state: _State, variable: Variable) -> Variable:
        """Store a version the rules planned (no await since it was planned)."""
        entry = state.variables[variable.name]
        entry.current = variable
        entry.history = plans.append_history(entry.history, variable, self.history_limit)
        self._announce(state, variable)
        return variable

    def _announce(self, state: _State, variable: Variable) -> None:
        self._notify(state, plans.update_event(self.name, state.id, variable))

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


def _lookup(state: _State, name: Any) -> _Entry | None:
    """The variable's entry, or None (also for a name that is not even a string)."""
    return state.variables.get(name) if isinstance(name, str) else None


def _current(state: _State, name: Any) -> Variable | None:
    """The variable's current version, or None when there is no such variable."""
    entry = _lookup(state, name)
    return entry.current if entry is not None else None


def _discard(watches: list[VariableWatch], watch: VariableWatch) -> None:
    if watch in watches:
        watches.remove(watch)
