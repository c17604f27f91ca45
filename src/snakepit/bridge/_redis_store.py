"""``RedisSessionStore``: sessions and variables in Redis, shared by every host that uses it.

Several host processes (web servers, job runners, each with its own pool)
that point at the same Redis and prefix see the same sessions and variables,
and a watch on one host sees the writes of every other.

How the rules (:mod:`snakepit.bridge._rules`, :mod:`~snakepit.bridge._plans`) are kept atomically:

* A write is optimistic: a Lua script reads the variable (and touches the
  session), the rules plan the new version in Python (validation, version
  check, next version), and a second Lua script commits it only if the
  variable is still at the version that was read - compare-and-set on the
  server, never a blind read-then-write. When another writer got there first
  the write is planned again, so ten concurrent writes make ten versions and
  of ten writes that expect the same version exactly one wins.
* Batches commit in one script: every write or none.
* Session TTL is Redis expiry (``PEXPIRE``), restarted on every touch; the
  session's deadline is also kept in an index (a sorted set) so that the
  expiry loop of any host can announce the expiry and end the watches, and
  so that ``max_sessions`` counts the live sessions of every host.
* Watches follow a pub/sub channel per session. Each message carries the
  session's incarnation and a sequence number, so a watch that starts with
  the current values skips the updates its snapshot already holds.

Keys (``P`` is the prefix, default ``snakepit``): ``P:s{id}`` (the session),
``P:v{id}`` (current variables), ``P:h{id}`` (kept versions), ``P:sessions``
(the deadline index), ``P:n`` (creation order); channel ``P:w{id}``. Session
ids and variable names are validated before they become part of a key, and
braces cannot occur in either, so no id reaches outside its session's keys.

A Redis that cannot be reached (refused, reset, or silent past ``timeout``)
is :class:`~snakepit.errors.SessionStoreUnavailableError` naming the URL
(never its password); watches then end with that error.

The scripts and the stored forms are in :mod:`snakepit.bridge._redis_wire`, the
pub/sub side of watches in :mod:`snakepit.bridge._redis_watch`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

try:
    import redis.asyncio as aioredis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff
    from redis.exceptions import RedisError
except ModuleNotFoundError as exc:  # pragma: no cover - exercised only without the extra
    raise ModuleNotFoundError(
        "RedisSessionStore needs the redis package: pip install 'pysnakepit[redis]'",
        name="redis",
    ) from exc

from snakepit._tasks import DeadlineTimer
from snakepit.bridge import _plans as plans
from snakepit.bridge import _redis_wire as wire
from snakepit.bridge import _rules as rules
from snakepit.bridge import _transfer as transfer
from snakepit.bridge._redis_watch import Follower, Subscriptions
from snakepit.bridge._store import BatchResult, SessionInfo
from snakepit.bridge._store_base import StoreBase
from snakepit.bridge._store_url import check_prefix, parse_store_url
from snakepit.bridge._watch import VariableWatch
from snakepit.errors import SessionStoreUnavailableError
from snakepit.events import (
    EventBus,
    SessionCreated,
    SessionDeleted,
    SessionExpired,
    VariableUpdated,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable, Mapping

    from snakepit._variables import Variable
    from snakepit.clock import Clock

__all__ = ["RedisSessionStore"]

log = logging.getLogger("snakepit.bridge.redis")
T = TypeVar("T")

_MAX_KEY_TTL_MS = 10**15  # ~31,000 years; longer TTLs keep their keys without Redis expiry
_QUOTA_ATTEMPTS = 3


def _variable(read: tuple[Variable, str] | None) -> Variable | None:
    return read[0] if read is not None else None


# -- watches -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Read:
    """What the read script returned for a live session."""

    inc: str
    seq: int
    records: list[str]


class RedisSessionStore(StoreBase):
    """Sessions and variables in Redis, shared by every host that uses the same URL and prefix.

    ``Pool(..., session_store="redis://host:6379/0")`` builds one; build it
    yourself for more options and pass the object. Use it as ``async with
    RedisSessionStore(url) as store:`` to run the expiry loop in a task it
    owns, or run :meth:`run_expiry` in your own task group and :meth:`close`
    it at the end.

    The methods keep the :class:`~snakepit.bridge._store.SessionStore` contract
    across hosts: ``list_sessions`` and ``expire_due`` cover every host's
    sessions (oldest first), a pin or a watch is seen by every host, a
    session's TTL restarts its keys' Redis expiry, and every write (variables,
    batches, imports, metadata) is one compare-and-set on the server.

    Args:
        url: ``redis://[:password@]host[:port][/db][?prefix=name]``, ``rediss://`` (TLS)
            or ``unix:///path/to/redis.sock``.
        clock: where time comes from; session times are its wall clock (``time()``), so
            hosts sharing a store should keep their clocks in sync (NTP).
        ttl: default seconds of inactivity before a session expires (``math.inf``: never).
        max_sessions: the most live sessions at once, counted over every host; None: no limit.
        history_limit: versions kept per variable (use the same on every host).
        events: the bus to publish this host's session and variable events on, if any.
        name: names the store in events (``source``) and messages.
        prefix: the namespace of every key and channel (overrides the URL's ``prefix``).
        timeout: seconds one Redis command (or connecting) may take before the store is
            unavailable.
        expiry_interval: seconds between the expiry loop's looks at the index (sessions of
            other hosts included).
        expiry_grace: seconds Redis keeps a session's keys past its TTL; the session is
            gone at its TTL all the same (tests with a fake clock set this).

    Raises:
        ValueError: the URL, prefix or a setting is invalid.
    """

    def __init__(
        self,
        url: str,
        *,
        clock: Clock | None = None,
        ttl: float = 3600.0,
        max_sessions: int | None = None,
        history_limit: int = 100,
        events: EventBus | None = None,
        name: str = "",
        prefix: str | None = None,
        timeout: float = 5.0,
        expiry_interval: float = 1.0,
        expiry_grace: float = 0.0,
    ) -> None:
        super().__init__(clock, ttl, max_sessions, history_limit, events, name)
        parsed = parse_store_url(url)
        for option, value in (
            ("timeout", timeout),
            ("expiry_interval", expiry_interval),
            ("expiry_grace", expiry_grace),
        ):
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
                or value < 0
                or (value == 0 and option != "expiry_grace")
            ):
                raise ValueError(f"{option} must be a finite number of seconds > 0, got {value!r}")
        self.url = parsed.shown
        self.prefix = check_prefix(prefix) if prefix is not None else parsed.prefix
        self._timeout = float(timeout)
        self._expiry_interval = float(expiry_interval)
        self._grace = float(expiry_grace)
        self._client_url = parsed.client_url
        self._redis = self._client(retries=1)
        self._session_script = self._redis.register_script(wire.SESSION)
        self._remove_script = self._redis.register_script(wire.REMOVE)
        self._read_script = self._redis.register_script(wire.READ)
        self._commit_script = self._redis.register_script(wire.COMMIT)
        self._unpin_script = self._redis.register_script(wire.UNPIN)
        self._metadata_script = self._redis.register_script(wire.METADATA)
        self._index = f"{self.prefix}:sessions"
        self._counter = f"{self.prefix}:n"
        self._closed = False
        # the expiry loop: a pass, then a sleep until the next pass's target
        self._expiry = DeadlineTimer(
            self._clock, self._next_pass, self._expiry_pass, now=self._clock.time
        )
        self._pass_started = 0.0
        self._upcoming: float | None = None
        self._again = False
        # pub/sub, started by the first watch
        self._subs = Subscriptions(
            name,
            connect=lambda: self._client(retries=0),
            call=self._call,
            unavailable=self._unavailable,
            timeout=self._timeout,
        )

    def _client(self, *, retries: int) -> aioredis.Redis:
        client: aioredis.Redis = aioredis.Redis.from_url(
            self._client_url,
            decode_responses=True,
            socket_timeout=self._timeout,
            socket_connect_timeout=self._timeout,
            retry=Retry(NoBackoff(), retries),
        )
        return client

    # -- plumbing ----------------------------------------------------------------------------

    def _keys(self, session_id: str) -> list[str]:
        p = self.prefix
        return [f"{p}:s{{{session_id}}}", f"{p}:v{{{session_id}}}", f"{p}:h{{{session_id}}}"]

    def _channel(self, session_id: str) -> str:
        return f"{self.prefix}:w{{{session_id}}}"

    def _unavailable(self, operation: str, exc: BaseException) -> SessionStoreUnavailableError:
        return SessionStoreUnavailableError(
            f"session store {self.url} (store {self.name!r}) is unavailable during {operation}: "
            f"{type(exc).__name__}: {exc}; check that Redis runs and is reachable, then retry",
            url=self.url,
            operation=operation,
        )

    async def _call(self, operation: str, make: Callable[[], Awaitable[T]]) -> T:
        """Run one Redis round trip; every way it can fail becomes the store's typed error."""
        try:
            async with asyncio.timeout(self._timeout * 3):
                return await make()
        except (RedisError, OSError, TimeoutError) as exc:
            raise self._unavailable(operation, exc) from exc

    async def _script(
        self, operation: str, script: Any, session_id: str, args: list[Any], *extra_keys: str
    ) -> list[Any]:
        keys = [*self._keys(session_id), self._index, *extra_keys]
        now = wire.number(self._clock.time())
        result: list[Any] = await self._call(
            operation, lambda: script(keys=keys, args=[session_id, now, *args])
        )
        return result

    def _not_found(self, session_id: Any) -> Exception:
        return rules.session_not_found(self.name, session_id)

    async def _gone(self, session_id: str, status: str) -> Exception:
        """The error for a session the script found missing or expired (announcing the expiry)."""
        if status == "expired":
            await self._expire_one(session_id)
        return self._not_found(session_id)

    def _session(self, fields_list: list[str], count: int) -> SessionInfo:
        f = dict(zip(fields_list[::2], fields_list[1::2], strict=True))
        return SessionInfo(
            id=f["id"],
            metadata=wire.unpack(f["metadata"]),
            created_at=float(f["created_at"]),
            last_access=float(f["last_access"]),
            ttl=float(f["ttl"]),
            affinity_worker=f.get("affinity") or None,
            variable_count=int(count),
        )

    # -- lifecycle ---------------------------------------------------------------------------

    async def close(self) -> None:
        """End every watch of this store, the expiry loop and the connections. Idempotent.

        The sessions stay in Redis for the other hosts (and for this store, which
        reconnects if used again).

        Raises:
            Nothing.
        """
        self._closed = self._subs.closed = True
        self._subs.end_all("store closed")
        self._expiry.stop()
        task, self._expiry_task = self._expiry_task, None
        if task is not None:
            await task
        await self._subs.stop()
        with contextlib.suppress(Exception):
            await self._redis.aclose()

    async def run_expiry(self) -> None:
        """Announce expired sessions (of every host) as they come due, until closed.

        Looks at the index every ``expiry_interval`` seconds, or sooner when a
        session is due sooner; a Redis that is down is logged and tried again.

        Raises:
            asyncio.CancelledError: when cancelled.
        """
        await self._expiry.run()

    async def _expiry_pass(self) -> None:
        """Announce what is due and read the next deadline (None if Redis is down)."""
        self._pass_started = self._clock.time()
        try:
            await self.expire_due()
            self._upcoming = await self._next_deadline()
        except SessionStoreUnavailableError as exc:
            log.warning("store %s: expiry pass failed: %s", self.name, exc)
            self._upcoming = None

    def _next_pass(self) -> float:
        """When to look again: ``expiry_interval`` after this pass, or sooner for a session due
        sooner."""
        target = self._pass_started + self._expiry_interval
        upcoming = self._upcoming
        if upcoming is not None:
            if upcoming > self._clock.time():
                target = min(target, upcoming)
            elif not self._again:
                # Came due while this pass ran: look again now, but only once, so that a
                # deadline another host's clock disagrees with cannot spin.
                self._again = True
                return upcoming
        self._again = False
        return target

    async def _next_deadline(self) -> float | None:
        first = await self._call(
            "expiry", lambda: self._redis.zrange(self._index, 0, 0, withscores=True)
        )
        if not first:
            return None
        deadline = float(first[0][1])
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
        return await self._open(session_id, "create", metadata, ttl)

    async def get_or_create(
        self,
        session_id: str,
        *,
        metadata: Mapping[str, Any] | None = None,
        ttl: float | None = None,
    ) -> SessionInfo:
        rules.validate_session_id(session_id)
        return await self._open(session_id, "get_or_create", metadata, ttl)

    async def _open(
        self, session_id: str, mode: str, metadata: Mapping[str, Any] | None, ttl: float | None
    ) -> SessionInfo:
        seconds = self.ttl if ttl is None else rules.check_ttl(ttl)
        packed = wire.pack(dict(metadata or {}), f"metadata of session {session_id!r}")
        key_ms = (seconds + self._grace) * 1000
        ttl_ms = str(math.ceil(key_ms)) if key_ms <= _MAX_KEY_TTL_MS else ""
        args = [
            mode,
            "inf" if seconds == math.inf else wire.number(seconds),
            ttl_ms,
            packed,
            "" if self.max_sessions is None else str(self.max_sessions),
            secrets.token_hex(8),
        ]
        for _ in range(_QUOTA_ATTEMPTS):
            reply = await self._script(
                "create", self._session_script, session_id, args, self._counter
            )
            status = reply[0]
            if status in ("ok", "created"):
                session = self._session(reply[1], reply[2])
                if status == "created":
                    self._publish(
                        SessionCreated(
                            session_id=session_id, source=self.name, at=session.created_at
                        )
                    )
                return session
            if status == "exists":
                raise rules.session_exists_error(self.name, session_id)
            if status == "expired":
                await self._expire_one(session_id)
            elif status == "expire_first":
                await self.expire_due()
            else:
                break
        assert self.max_sessions is not None
        raise rules.quota_error(self.name, session_id, self.max_sessions)

    async def _use(self, session_id: str, operation: str, *args: str) -> SessionInfo:
        if not rules.is_session_id(session_id):
            raise self._not_found(session_id)
        reply = await self._script(operation, self._session_script, session_id, list(args))
        if reply[0] != "ok":
            raise await self._gone(session_id, reply[0])
        return self._session(reply[1], reply[2])

    async def get(self, session_id: str) -> SessionInfo:
        return await self._use(session_id, "get", "get")

    async def touch(self, session_id: str) -> SessionInfo:
        return await self._use(session_id, "touch", "get")

    async def delete(self, session_id: str) -> bool:
        if not rules.is_session_id(session_id):
            return False
        reply = await self._script(
            "delete",
            self._remove_script,
            session_id,
            [self._channel(session_id), "Esession deleted", "delete"],
        )
        if reply[0] == "expired":
            await self._expire_one(session_id)
            return False
        if reply[0] != "gone":
            return False
        self._publish(
            SessionDeleted(session_id=session_id, source=self.name, at=self._clock.time())
        )
        return True

    async def list_sessions(self) -> list[SessionInfo]:
        await self.expire_due()
        ids = [i for i in await self._members() if rules.is_session_id(i)]

        async def fetch() -> list[Any]:
            async with self._redis.pipeline(transaction=False) as pipe:
                for sid in ids:
                    s_key, v_key, _ = self._keys(sid)
                    pipe.hgetall(s_key)
                    pipe.hlen(v_key)
                result: list[Any] = await pipe.execute()
                return result

        replies = await self._call("list_sessions", fetch) if ids else []
        found = []
        for i in range(0, len(replies), 2):
            fields, count = replies[i], replies[i + 1]
            if fields:
                flat = [x for kv in fields.items() for x in kv]
                found.append((int(fields["n"]), self._session(flat, count)))
        return [session for _, session in sorted(found, key=lambda pair: pair[0])]

    async def _members(self) -> list[str]:
        members: list[Any] = await self._call(
            "list_sessions", lambda: self._redis.zrange(self._index, 0, -1)
        )
        return members

    async def set_affinity(self, session_id: str, worker_id: str | None) -> SessionInfo:
        return await self._use(session_id, "set_affinity", "affinity", "set", worker_id or "")

    async def get_affinity(self, session_id: str) -> str | None:
        return (await self._use(session_id, "get_affinity", "get")).affinity_worker

    async def drop_affinity(self, worker_id: str) -> list[str]:
        ids = [i for i in await self._members() if rules.is_session_id(i)]

        async def fetch() -> list[Any]:
            async with self._redis.pipeline(transaction=False) as pipe:
                for sid in ids:
                    pipe.hmget(self._keys(sid)[0], "n", "affinity")
                result: list[Any] = await pipe.execute()
                return result

        pins = await self._call("drop_affinity", fetch) if ids else []
        dropped = []
        for sid, (n, affinity) in zip(ids, pins, strict=True):
            if affinity == worker_id and await self._unpin(sid, worker_id):
                dropped.append((int(n), sid))
        return [sid for _, sid in sorted(dropped)]

    async def _unpin(self, session_id: str, worker_id: str) -> bool:
        """Unpin the session only if it is still pinned to ``worker_id`` (atomically)."""
        key = self._keys(session_id)[0]
        unpinned = await self._call(
            "drop_affinity", lambda: self._unpin_script(keys=[key], args=[worker_id])
        )
        return bool(unpinned)

    async def update_metadata(
        self, session_id: str, metadata: Mapping[str, Any], *, replace: bool = False
    ) -> SessionInfo:
        if not rules.is_session_id(session_id):
            raise self._not_found(session_id)
        while True:
            reply = await self._script("update_metadata", self._session_script, session_id, ["get"])
            if reply[0] != "ok":
                raise await self._gone(session_id, reply[0])
            fields = dict(zip(reply[1][::2], reply[1][1::2], strict=True))
            new = rules.merged_metadata(wire.unpack(fields["metadata"]), metadata, replace=replace)
            packed = wire.pack(new, f"metadata of session {session_id!r}")
            reply = await self._script(
                "update_metadata",
                self._metadata_script,
                session_id,
                [fields["metadata"], packed],
            )
            if reply[0] == "ok":
                return self._session(reply[1], reply[2])
            if reply[0] != "conflict":
                raise await self._gone(session_id, reply[0])

    async def expire_due(self) -> list[str]:
        now = wire.number(self._clock.time())
        due: list[Any] = await self._call(
            "expiry", lambda: self._redis.zrangebyscore(self._index, "-inf", now)
        )
        expired = []
        for sid in due:
            if rules.is_session_id(sid):
                n = await self._expire_one(sid, announce=False)
                if n is not None:
                    expired.append((n, sid))
        expired.sort()
        for _, sid in expired:
            self._publish(SessionExpired(session_id=sid, source=self.name, at=self._clock.time()))
        return [sid for _, sid in expired]

    async def _expire_one(self, session_id: str, *, announce: bool = True) -> int | None:
        """Remove the session if it is due; its creation number when this call removed it."""
        reply = await self._script(
            "expiry",
            self._remove_script,
            session_id,
            [self._channel(session_id), "Esession expired", "expire"],
        )
        if reply[0] != "gone":
            return None
        if announce:
            self._publish(
                SessionExpired(session_id=session_id, source=self.name, at=self._clock.time())
            )
        return int(reply[1]) if reply[1] else 0

    # -- variables ---------------------------------------------------------------------------

    async def _read(self, session_id: str, operation: str, what: str, *names: str) -> _Read:
        if not rules.is_session_id(session_id):
            raise self._not_found(session_id)
        reply = await self._script(
            operation, self._read_script, session_id, [what, str(self.history_limit), *names]
        )
        if reply[0] != "ok":
            raise await self._gone(session_id, reply[0])
        inc, seq = reply[1]
        return _Read(inc=inc or "", seq=int(seq or 0), records=list(reply[2]))

    async def _current(
        self, session_id: str, operation: str, names: list[str]
    ) -> dict[str, tuple[Variable, str] | None]:
        """The current version (and incarnation) of each name, None for a missing one."""
        valid = [n for n in names if rules.is_variable_name(n)]
        read = await self._read(session_id, operation, "names", *valid)
        found: dict[str, tuple[Variable, str] | None] = dict.fromkeys(names)
        for name, record in zip(valid, read.records, strict=True):
            if record:
                found[name] = wire.parse_record(record)
        return found

    async def _commit(self, session_id: str, operation: str, writes: list[wire.Write]) -> bool:
        """Commit planned writes if nothing changed since they were read; False on a conflict."""
        args = [self._channel(session_id), str(self.history_limit)]
        for write in writes:
            args.extend(write)
        reply = await self._script(operation, self._commit_script, session_id, args)
        if reply[0] == "conflict":
            return False
        if reply[0] != "ok":
            raise await self._gone(session_id, reply[0])
        return True

    async def _rewrite(
        self,
        session_id: str,
        operation: str,
        name: str,
        plan: Callable[[Variable | None, float], Variable],
    ) -> Variable:
        """Commit the next version ``plan`` makes of the current one, planned again on a conflict.

        ``plan`` raises for a missing variable (``VariableNotFoundError``), so a commit
        always replaces a version that was read.
        """
        while True:
            current = (await self._current(session_id, operation, [name]))[name]
            new = plan(_variable(current), self._clock.time())
            assert current is not None
            if await self._commit(session_id, operation, [self._over(new, current)]):
                self._announce(session_id, new)
                return new

    def _set(self, new: Variable, inc: str, expect: str) -> wire.Write:
        event = plans.update_event(self.name, "", new)
        return (
            "set",
            new.name,
            expect,
            wire.record(new, inc),
            str(new.version),
            wire.update_message(event),
        )

    def _over(self, new: Variable, read: tuple[Variable, str]) -> wire.Write:
        """The write of ``new`` over the version ``read``, committed only if it is still current."""
        return self._set(new, read[1], wire.expect(*read))

    def _fresh(self, new: Variable, expect: str = "") -> wire.Write:
        """The write of ``new`` as a new incarnation of its name ("" expects no variable)."""
        return self._set(new, secrets.token_hex(8), expect)

    def _announce(self, session_id: str, variable: Variable) -> None:
        self._publish(plans.update_event(self.name, session_id, variable))

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
        while True:
            current = (await self._current(session_id, "register_variable", [name]))[name]
            variable, created = plans.plan_register(
                session_id,
                name,
                type,
                value,
                constraints,
                metadata,
                _variable(current),
                self._clock.time(),
            )
            if not created:
                return variable
            write = self._fresh(variable)
            if await self._commit(session_id, "register_variable", [write]):
                self._announce(session_id, variable)
                return variable

    async def get_variable(self, session_id: str, name: str) -> Variable:
        current = (await self._current(session_id, "get_variable", [name]))[name]
        if current is None:
            raise rules.variable_not_found(session_id, name)
        return current[0]

    async def set_variable(
        self, session_id: str, name: str, value: Any, *, expected_version: int | None = None
    ) -> Variable:
        def plan(current: Variable | None, now: float) -> Variable:
            return plans.plan_write(session_id, name, current, value, expected_version, now)

        return await self._rewrite(session_id, "set_variable", name, plan)

    async def get_many(
        self, session_id: str, names: Iterable[str]
    ) -> tuple[dict[str, Variable], list[str]]:
        asked = list(names)
        current = await self._current(session_id, "get_many", asked)
        found: dict[str, Variable] = {}
        missing: list[str] = []
        for name in asked:
            entry = current[name]
            if entry is None:
                missing.append(name)
            else:
                found[name] = entry[0]
        return found, missing

    async def set_many(
        self,
        session_id: str,
        values: Mapping[str, Any],
        *,
        atomic: bool = False,
        expected_versions: Mapping[str, int] | None = None,
    ) -> BatchResult:
        while True:
            current = await self._current(session_id, "set_many", list(values))
            plan = plans.plan_batch(
                session_id,
                {name: _variable(entry) for name, entry in current.items()},
                values,
                atomic=atomic,
                expected_versions=expected_versions,
                now=self._clock.time(),
            )
            writes = []
            for name, new in plan.writes.items():
                entry = current[name]
                assert entry is not None
                writes.append(self._over(new, entry))
            if not writes or await self._commit(session_id, "set_many", writes):
                for new in plan.writes.values():
                    self._announce(session_id, new)
                return BatchResult(updated=dict(plan.writes), errors=plan.errors)

    async def list_variables(self, session_id: str, pattern: str = "*") -> list[Variable]:
        read = await self._read(session_id, "list_variables", "all")
        by_name = {v.name: v for v, _ in map(wire.parse_record, read.records)}
        return [by_name[name] for name in rules.match_names(by_name, pattern)]

    async def delete_variable(self, session_id: str, name: str) -> None:
        while True:
            current = (await self._current(session_id, "delete_variable", [name]))[name]
            if current is None:
                raise rules.variable_not_found(session_id, name)
            event = plans.deleted_event(self.name, session_id, current[0], self._clock.time())
            write = ("del", name, wire.expect(*current), "", "", wire.update_message(event))
            if await self._commit(session_id, "delete_variable", [write]):
                self._publish(event)
                return

    async def history(self, session_id: str, name: str) -> list[Variable]:
        return [v for v, _ in await self._history(session_id, name, "history")]

    async def _history(
        self, session_id: str, name: str, operation: str
    ) -> list[tuple[Variable, str]]:
        if not rules.is_variable_name(name):
            await self._read(session_id, operation, "names")  # touches, or raises not found
            raise rules.variable_not_found(session_id, name)
        read = await self._read(session_id, operation, "history", name)
        if not read.records:
            raise rules.variable_not_found(session_id, name)
        return [wire.parse_record(r) for r in read.records]

    async def rollback(
        self, session_id: str, name: str, version: int, *, expected_version: int | None = None
    ) -> Variable:
        while True:
            kept = await self._history(session_id, name, "rollback")
            current, inc = kept[-1]
            plans.check_version(session_id, current, expected_version)
            old = plans.rollback_target(
                session_id, name, [v for v, _ in kept], version, self.history_limit
            )
            new = plans.next_version(current, old.value, self._clock.time())
            if await self._commit(session_id, "rollback", [self._over(new, (current, inc))]):
                self._announce(session_id, new)
                return new

    async def update_variable_metadata(
        self,
        session_id: str,
        name: str,
        metadata: Mapping[str, Any],
        *,
        replace: bool = False,
        expected_version: int | None = None,
    ) -> Variable:
        def plan(current: Variable | None, now: float) -> Variable:
            return plans.plan_metadata(
                session_id,
                name,
                current,
                metadata,
                replace=replace,
                expected_version=expected_version,
                now=now,
            )

        return await self._rewrite(session_id, "update_variable_metadata", name, plan)

    async def import_variables(
        self, session_id: str, data: Mapping[str, Any], *, overwrite: bool = False
    ) -> dict[str, Variable]:
        names = transfer.import_names(data)
        while True:
            current = await self._current(session_id, "import_variables", names)
            planned = transfer.plan_import(
                session_id,
                data,
                {name: _variable(entry) for name, entry in current.items()},
                overwrite=overwrite,
                now=self._clock.time(),
            )
            writes = []
            events: list[VariableUpdated] = []
            for item in planned:
                new, entry = item.variable, current.get(item.variable.name)
                if entry is None:
                    writes.append(self._fresh(new))
                elif not item.redefined:
                    writes.append(self._over(new, entry))
                else:
                    # A redefinition: the old variable and its history go, a new incarnation
                    # starts (both checked against the version read, in the same commit).
                    gone = plans.deleted_event(self.name, session_id, entry[0], new.updated_at)
                    expect = wire.expect(*entry)
                    writes.append(("del", new.name, expect, "", "", wire.update_message(gone)))
                    writes.append(self._fresh(new, expect))
                    events.append(gone)
                events.append(plans.update_event(self.name, session_id, new))
            if not writes or await self._commit(session_id, "import_variables", writes):
                for event in events:
                    self._publish(event)
                return {item.variable.name: item.variable for item in planned}

    # -- watches -----------------------------------------------------------------------------

    async def watch(
        self,
        session_id: str,
        names: Iterable[str] | None = None,
        *,
        include_current: bool = False,
        maxsize: int = 1000,
    ) -> VariableWatch:
        wanted = None if names is None else frozenset(names)
        if self._closed:
            await self._read(session_id, "watch", "names")
            watch = VariableWatch(session_id, wanted, maxsize=maxsize)
            watch.end("store closed")
            return watch
        if not rules.is_session_id(session_id):
            raise self._not_found(session_id)
        channel = self._channel(session_id)
        follower: Follower | None = None
        watch = VariableWatch(
            session_id,
            wanted,
            maxsize=maxsize,
            on_close=lambda w: self._subs.unfollow(channel, follower),
        )
        follower = Follower(watch)
        try:
            await self._subs.follow(channel, follower)
            read = await self._read(session_id, "watch", "all")
        except BaseException:
            self._subs.unfollow(channel, follower)
            raise
        if include_current:
            current = sorted(
                (v for v, _ in map(wire.parse_record, read.records)), key=lambda v: v.name
            )
            for variable in current:
                watch.offer(plans.update_event(self.name, session_id, variable))
        self._subs.start(channel, follower, read.inc, read.seq)
        return watch

    def __repr__(self) -> str:
        watches = self._subs.watches
        state = "closed" if self._closed else "open"
        return (
            f"<RedisSessionStore {self.name!r} {self.url} prefix={self.prefix!r} {state} "
            f"[watches {watches}]>"
        )
