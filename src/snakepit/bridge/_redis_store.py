"""``RedisSessionStore``: sessions and variables in Redis, shared by every host that uses it.

Several host processes (web servers, job runners, each with its own pool)
that point at the same Redis and prefix see the same sessions and variables,
and a watch on one host sees the writes of every other.

How the rules of :mod:`snakepit.bridge._rules` are kept atomically:

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
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import math
import secrets
import uuid
from dataclasses import dataclass, field
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

from snakepit import codec
from snakepit._variables import Variable
from snakepit.bridge import _rules as rules
from snakepit.bridge._store import BatchResult, SessionInfo, SessionStore
from snakepit.bridge._store_url import check_prefix, parse_store_url
from snakepit.bridge._watch import VariableWatch
from snakepit.clock import Clock, SystemClock
from snakepit.errors import SerializationError, SessionStoreUnavailableError
from snakepit.events import (
    Event,
    EventBus,
    SessionCreated,
    SessionDeleted,
    SessionExpired,
    VariableUpdated,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping

__all__ = ["RedisSessionStore"]

log = logging.getLogger("snakepit.bridge.redis")
T = TypeVar("T")

# -- Lua -----------------------------------------------------------------------------------------
# Every script gets KEYS = session, variables, history, index and ARGV[1] = id, ARGV[2] = now.
# The two comparisons made here mirror _rules: is_expired (now >= last_access + ttl) and
# quota_full (live >= max_sessions); everything else is decided in Python before the script.

_PRELUDE = """
local S, V, H, Z = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local sid, now = ARGV[1], ARGV[2]
local function state()
  local f = redis.call('HMGET', S, 'last_access', 'ttl')
  if not f[1] then return 0 end
  if f[2] ~= 'inf' and tonumber(now) >= tonumber(f[1]) + tonumber(f[2]) then return -1 end
  return 1
end
local function gone(st)
  if st == 0 then return {'missing'} end
  return {'expired'}
end
local function touch()
  redis.call('HSET', S, 'last_access', now)
  local f = redis.call('HMGET', S, 'ttl', 'ttl_ms')
  if f[1] == 'inf' then
    redis.call('ZADD', Z, '+inf', sid)
  else
    redis.call('ZADD', Z, tonumber(now) + tonumber(f[1]), sid)
  end
  for _, k in ipairs({S, V, H}) do
    if f[2] == '' then redis.call('PERSIST', k) else redis.call('PEXPIRE', k, f[2]) end
  end
end
"""

# ARGV[3] mode: create | get_or_create | get | affinity.
# create modes: ARGV[4] ttl, [5] ttl_ms, [6] metadata, [7] max_sessions or '', [8] incarnation;
# KEYS[5] the creation counter. affinity: ARGV[4] set | keep, [5] worker ('' unpins).
_SESSION = (
    _PRELUDE
    + """
local st, mode = state(), ARGV[3]
if st == -1 then return {'expired'} end
if st == 1 then
  if mode == 'create' then return {'exists'} end
  if mode == 'affinity' and ARGV[4] == 'set' then
    if ARGV[5] == '' then redis.call('HDEL', S, 'affinity')
    else redis.call('HSET', S, 'affinity', ARGV[5]) end
  end
  touch()
  return {'ok', redis.call('HGETALL', S), redis.call('HLEN', V)}
end
if mode ~= 'create' and mode ~= 'get_or_create' then return {'missing'} end
if ARGV[7] ~= '' then
  local max = tonumber(ARGV[7])
  if redis.call('ZCARD', Z) >= max then
    if redis.call('ZCOUNT', Z, '(' .. now, '+inf') >= max then return {'quota'} end
    return {'expire_first'}
  end
end
redis.call('HSET', S, 'id', sid, 'n', redis.call('INCR', KEYS[5]), 'created_at', now,
  'last_access', now, 'ttl', ARGV[4], 'ttl_ms', ARGV[5], 'metadata', ARGV[6],
  'inc', ARGV[8], 'seq', 0)
touch()
return {'created', redis.call('HGETALL', S), 0}
"""
)

# ARGV[3] channel, [4] end message, [5] mode: expire (only if due) | delete.
_REMOVE = (
    _PRELUDE
    + """
local st, mode = state(), ARGV[5]
if mode == 'delete' then
  if st == 0 then redis.call('ZREM', Z, sid); return {'missing'} end
  if st == -1 then return {'expired'} end
elseif st == 1 then
  return {'live'}
elseif st == 0 and not redis.call('ZSCORE', Z, sid) then
  return {'missing'}
end
local n = redis.call('HGET', S, 'n') or ''
local inc = redis.call('HGET', S, 'inc') or ''
local seq = 0
if inc ~= '' then seq = redis.call('HINCRBY', S, 'seq', 1) end
redis.call('DEL', S, V, H)
redis.call('ZREM', Z, sid)
redis.call('PUBLISH', ARGV[3], inc .. '|' .. seq .. '|' .. ARGV[4])
return {'gone', n}
"""
)

# ARGV[3] what: names | all | history; [4] history limit; [5...] names.
_READ = (
    _PRELUDE
    + """
local st = state()
if st ~= 1 then return gone(st) end
touch()
local what = ARGV[3]
local head = redis.call('HMGET', S, 'inc', 'seq')
if what == 'names' then
  local out = {}
  for i = 5, #ARGV do out[#out + 1] = redis.call('HGET', V, ARGV[i]) or '' end
  return {'ok', head, out}
elseif what == 'all' then
  return {'ok', head, redis.call('HVALS', V)}
end
local name = ARGV[5]
local cur = redis.call('HGET', V, name)
if not cur then return {'ok', head, {}} end
local ver = tonumber(string.match(cur, '^(%d+)|'))
local vinc = string.match(cur, '^%d+|([^|]*)|')
local out = {}
for v = math.max(1, ver - tonumber(ARGV[4]) + 1), ver - 1 do
  local h = redis.call('HGET', H, name .. '#' .. v)
  if h and string.match(h, '^%d+|([^|]*)|') == vinc then out[#out + 1] = h end
end
out[#out + 1] = cur
return {'ok', head, out}
"""
)

# ARGV[3] channel, [4] history limit, then per write: op (set | del), name, the expected
# "version|incarnation|" ('' = must not exist), the new record, its version, the message.
_COMMIT = (
    _PRELUDE
    + """
local st = state()
if st ~= 1 then return gone(st) end
local count = (#ARGV - 4) / 6
for i = 0, count - 1 do
  local b = 5 + i * 6
  local cur, expect = redis.call('HGET', V, ARGV[b + 1]), ARGV[b + 2]
  if expect == '' then
    if cur then return {'conflict'} end
  elseif not cur or string.sub(cur, 1, #expect) ~= expect then
    return {'conflict'}
  end
end
local inc, limit = redis.call('HGET', S, 'inc'), tonumber(ARGV[4])
for i = 0, count - 1 do
  local b = 5 + i * 6
  local name = ARGV[b + 1]
  if ARGV[b] == 'set' then
    local ver = tonumber(ARGV[b + 4])
    redis.call('HSET', V, name, ARGV[b + 3])
    redis.call('HSET', H, name .. '#' .. ARGV[b + 4], ARGV[b + 3])
    if ver - limit >= 1 then redis.call('HDEL', H, name .. '#' .. (ver - limit)) end
  else
    local ver = tonumber(string.match(redis.call('HGET', V, name), '^(%d+)|'))
    redis.call('HDEL', V, name)
    for v = math.max(1, ver - limit + 1), ver do redis.call('HDEL', H, name .. '#' .. v) end
  end
  local seq = redis.call('HINCRBY', S, 'seq', 1)
  redis.call('PUBLISH', ARGV[3], inc .. '|' .. seq .. '|' .. ARGV[b + 5])
end
touch()
return {'ok'}
"""
)

# ARGV[3] the packed metadata read, [4] the new packed metadata (written only if unchanged).
_METADATA = (
    _PRELUDE
    + """
local st = state()
if st ~= 1 then return gone(st) end
if redis.call('HGET', S, 'metadata') ~= ARGV[3] then return {'conflict'} end
redis.call('HSET', S, 'metadata', ARGV[4])
touch()
return {'ok', redis.call('HGETALL', S), redis.call('HLEN', V)}
"""
)

_UNPIN = """
if redis.call('HGET', KEYS[1], 'affinity') == ARGV[1] then
  redis.call('HDEL', KEYS[1], 'affinity')
  return 1
end
return 0
"""

_MAX_KEY_TTL_MS = 10**15  # ~31,000 years; longer TTLs keep their keys without Redis expiry
_QUOTA_ATTEMPTS = 3


# -- values --------------------------------------------------------------------------------------


def _pack(value: Any, what: str) -> str:
    """``value`` as text: codec JSON, with any bytes carried base64 beside it."""
    document, blobs = codec.encode(value, what=what)
    if not blobs:
        return "J" + document.decode()
    return "B" + json.dumps([document.decode(), [base64.b64encode(b).decode() for b in blobs]])


def _unpack(text: str) -> Any:
    if text[:1] == "J":
        return codec.decode(text[1:].encode())
    document, blobs = json.loads(text[1:])
    return codec.decode(document.encode(), [base64.b64decode(b) for b in blobs])


def _record(variable: Variable, inc: str) -> str:
    """A stored version: ``"version|incarnation|packed"`` (the scripts read the first two)."""
    body = {
        "name": variable.name,
        "type": variable.type,
        "value": variable.value,
        "version": variable.version,
        "constraints": variable.constraints,
        "metadata": variable.metadata,
        "created_at": variable.created_at,
        "updated_at": variable.updated_at,
    }
    return f"{variable.version}|{inc}|{_pack(body, f'variable {variable.name!r}')}"


def _parse_record(text: str) -> tuple[Variable, str]:
    _, inc, packed = text.split("|", 2)
    body = _unpack(packed)
    return Variable(**body), inc


def _expect(variable: Variable, inc: str) -> str:
    return f"{variable.version}|{inc}|"


def _update_message(event: VariableUpdated) -> str:
    body = {
        "name": event.name,
        "version": event.version,
        "value": event.value,
        "deleted": event.deleted,
        "at": event.at,
        "source": event.source,
    }
    return "U" + _pack(body, f"update of variable {event.name!r}")


def _number(value: float) -> str:
    return repr(float(value))


# -- watches -------------------------------------------------------------------------------------


@dataclass(eq=False)
class _Follower:
    """One local watch of a session's channel, and what it has already seen."""

    watch: VariableWatch
    inc: str = ""
    seq: int = 0
    pending: list[tuple[str, int, str]] | None = field(default_factory=list)


@dataclass(eq=False)
class _Channel:
    ready: asyncio.Future[None]
    followers: set[_Follower] = field(default_factory=set)


@dataclass(frozen=True)
class _Read:
    """What the read script returned for a live session."""

    inc: str
    seq: int
    records: list[str]


class RedisSessionStore(SessionStore):
    """Sessions and variables in Redis, shared by every host that uses the same URL and prefix.

    ``Pool(..., session_store="redis://host:6379/0")`` builds one; build it
    yourself for more options and pass the object. Use it as ``async with
    RedisSessionStore(url) as store:`` to run the expiry loop in a task it
    owns, or run :meth:`run_expiry` in your own task group and :meth:`close`
    it at the end.

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
        rules.check_settings(ttl=ttl, max_sessions=max_sessions, history_limit=history_limit)
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
        self._clock: Clock = clock if clock is not None else SystemClock()
        self.ttl = float(ttl)
        self.max_sessions = max_sessions
        self.history_limit = history_limit
        self.name = name
        self._events = events
        self._timeout = float(timeout)
        self._expiry_interval = float(expiry_interval)
        self._grace = float(expiry_grace)
        self._client_url = parsed.client_url
        self._redis = self._client(retries=1)
        self._session_script = self._redis.register_script(_SESSION)
        self._remove_script = self._redis.register_script(_REMOVE)
        self._read_script = self._redis.register_script(_READ)
        self._commit_script = self._redis.register_script(_COMMIT)
        self._unpin_script = self._redis.register_script(_UNPIN)
        self._metadata_script = self._redis.register_script(_METADATA)
        self._index = f"{self.prefix}:sessions"
        self._counter = f"{self.prefix}:n"
        self._closed = False
        self._wake: asyncio.Future[None] | None = None
        self._expiry_task: asyncio.Task[None] | None = None
        # pub/sub, started by the first watch
        self._sub_client: aioredis.Redis | None = None
        self._pubsub: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._sub_lock: asyncio.Lock | None = None
        self._channels: dict[str, _Channel] = {}
        self._chores: set[asyncio.Task[None]] = set()

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
        now = _number(self._clock.time())
        result: list[Any] = await self._call(
            operation, lambda: script(keys=keys, args=[session_id, now, *args])
        )
        return result

    def _publish(self, event: Event) -> None:
        if self._events is not None:
            self._events.publish(event)

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
            metadata=_unpack(f["metadata"]),
            created_at=float(f["created_at"]),
            last_access=float(f["last_access"]),
            ttl=float(f["ttl"]),
            affinity_worker=f.get("affinity") or None,
            variable_count=int(count),
        )

    # -- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> RedisSessionStore:
        self._expiry_task = asyncio.create_task(
            self.run_expiry(), name=f"snakepit-session-expiry[{self.name}]"
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """End every watch of this store, the expiry loop and the connections. Idempotent.

        The sessions stay in Redis for the other hosts (and for this store, which
        reconnects if used again).

        Raises:
            Nothing.
        """
        self._closed = True
        self._end_all("store closed")
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)
        task, self._expiry_task = self._expiry_task, None
        if task is not None:
            await task
        await self._stop_pubsub()
        with contextlib.suppress(Exception):
            await self._redis.aclose()

    async def run_expiry(self) -> None:
        """Announce expired sessions (of every host) as they come due, until closed.

        Looks at the index every ``expiry_interval`` seconds, or sooner when a
        session is due sooner; a Redis that is down is logged and tried again.

        Raises:
            asyncio.CancelledError: when cancelled.
        """
        loop = asyncio.get_running_loop()
        again = False
        try:
            while not self._closed:
                target = self._clock.time() + self._expiry_interval
                try:
                    await self.expire_due()
                    upcoming = await self._next_deadline()
                except SessionStoreUnavailableError as exc:
                    log.warning("store %s: expiry pass failed: %s", self.name, exc)
                    upcoming = None
                if upcoming is not None:
                    if upcoming > self._clock.time():
                        target = min(target, upcoming)
                    elif not again:
                        # Came due while this pass ran: look again now, but only once, so
                        # that a deadline another host's clock disagrees with cannot spin.
                        again = True
                        continue
                again = False
                if self._closed:  # closed while this pass awaited Redis
                    break
                wake = self._wake = loop.create_future()
                sleeper = asyncio.ensure_future(self._sleep_until(target))
                try:
                    await asyncio.wait((sleeper, wake), return_when=asyncio.FIRST_COMPLETED)
                finally:
                    sleeper.cancel()
                    await asyncio.wait((sleeper,))
        finally:
            self._wake = None

    async def _sleep_until(self, deadline: float) -> None:
        # Measured when the sleep starts, not when its task was created.
        await self._clock.sleep(deadline - self._clock.time())

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
        """Create a session and publish ``SessionCreated``.

        Raises:
            ValueError: the id is malformed, already in use, or ``ttl`` is not > 0.
            SessionQuotaError: the store already holds ``max_sessions`` live sessions.
            SerializationError: ``metadata`` holds a value the codec cannot carry.
            SessionStoreUnavailableError: Redis cannot be reached.
        """
        if session_id is None:
            session_id = uuid.uuid4().hex
        rules.validate_session_id(session_id)
        return await self._open(session_id, "create", metadata, ttl)

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
            SerializationError: ``metadata`` holds a value the codec cannot carry.
            SessionStoreUnavailableError: Redis cannot be reached.
        """
        rules.validate_session_id(session_id)
        return await self._open(session_id, "get_or_create", metadata, ttl)

    async def _open(
        self, session_id: str, mode: str, metadata: Mapping[str, Any] | None, ttl: float | None
    ) -> SessionInfo:
        seconds = self.ttl if ttl is None else rules.check_ttl(ttl)
        packed = _pack(dict(metadata or {}), f"metadata of session {session_id!r}")
        key_ms = (seconds + self._grace) * 1000
        ttl_ms = str(math.ceil(key_ms)) if key_ms <= _MAX_KEY_TTL_MS else ""
        args = [
            mode,
            "inf" if seconds == math.inf else _number(seconds),
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
        """The session ``session_id``, touched.

        Raises:
            SessionNotFoundError: no live session has that id.
            SessionStoreUnavailableError: Redis cannot be reached.
        """
        return await self._use(session_id, "get", "get")

    async def touch(self, session_id: str) -> SessionInfo:
        """Mark the session used now, so its TTL (and its keys' Redis expiry) restarts.

        Raises:
            SessionNotFoundError: no live session has that id.
            SessionStoreUnavailableError: Redis cannot be reached.
        """
        return await self._use(session_id, "touch", "get")

    async def delete(self, session_id: str) -> bool:
        """Delete the session with its variables; its watches (on every host) end. Idempotent.

        Returns:
            True when a live session was deleted (and ``SessionDeleted`` published).

        Raises:
            SessionStoreUnavailableError: Redis cannot be reached.
        """
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
        """Snapshots of every live session (of every host), oldest first; nothing is touched.

        Raises:
            SessionStoreUnavailableError: Redis cannot be reached.
        """
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
        """Pin the session to ``worker_id`` (None unpins it); other hosts see the pin.

        Raises:
            SessionNotFoundError: no live session has that id.
            SessionStoreUnavailableError: Redis cannot be reached.
        """
        return await self._use(session_id, "set_affinity", "affinity", "set", worker_id or "")

    async def get_affinity(self, session_id: str) -> str | None:
        """The worker the session is pinned to (possibly another host's), or None.

        Raises:
            SessionNotFoundError: no live session has that id.
            SessionStoreUnavailableError: Redis cannot be reached.
        """
        return (await self._use(session_id, "get_affinity", "get")).affinity_worker

    async def drop_affinity(self, worker_id: str) -> list[str]:
        """Unpin every session pinned to ``worker_id`` (it exited); returns their ids.

        Raises:
            SessionStoreUnavailableError: Redis cannot be reached.
        """
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
        """Change a session's metadata (merged, or replaced whole); compare-and-set on the server.

        Raises:
            SessionNotFoundError: no live session has that id.
            InvalidValueError: ``metadata`` is not a mapping or ``replace`` not a bool.
            SerializationError: ``metadata`` holds a value the codec cannot carry.
            SessionStoreUnavailableError: Redis cannot be reached.
        """
        if not rules.is_session_id(session_id):
            raise self._not_found(session_id)
        while True:
            reply = await self._script("update_metadata", self._session_script, session_id, ["get"])
            if reply[0] != "ok":
                raise await self._gone(session_id, reply[0])
            fields = dict(zip(reply[1][::2], reply[1][1::2], strict=True))
            new = rules.merged_metadata(_unpack(fields["metadata"]), metadata, replace=replace)
            packed = _pack(new, f"metadata of session {session_id!r}")
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
        """Remove every session (of any host) whose TTL ran out, publishing ``SessionExpired``.

        Returns:
            The ids of the sessions this call expired, oldest first.

        Raises:
            SessionStoreUnavailableError: Redis cannot be reached.
        """
        now = _number(self._clock.time())
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
                found[name] = _parse_record(record)
        return found

    async def _commit(
        self, session_id: str, operation: str, writes: list[tuple[str, str, str, str, str, str]]
    ) -> bool:
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

    def _set(self, new: Variable, inc: str, expect: str) -> tuple[str, str, str, str, str, str]:
        event = rules.update_event(self.name, "", new)
        return (
            "set",
            new.name,
            expect,
            _record(new, inc),
            str(new.version),
            _update_message(event),
        )

    def _announce(self, session_id: str, variable: Variable) -> None:
        self._publish(rules.update_event(self.name, session_id, variable))

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
            SerializationError: the value, constraints or metadata cannot be stored.
            SessionStoreUnavailableError: Redis cannot be reached.
        """
        while True:
            current = (await self._current(session_id, "register_variable", [name]))[name]
            variable, created = rules.plan_register(
                session_id,
                name,
                type,
                value,
                constraints,
                metadata,
                current[0] if current is not None else None,
                self._clock.time(),
            )
            if not created:
                return variable
            write = self._set(variable, secrets.token_hex(8), "")
            if await self._commit(session_id, "register_variable", [write]):
                self._announce(session_id, variable)
                return variable

    async def get_variable(self, session_id: str, name: str) -> Variable:
        """The current version of a variable.

        Raises:
            SessionNotFoundError: no live session has that id.
            VariableNotFoundError: the session has no such variable.
            SessionStoreUnavailableError: Redis cannot be reached.
        """
        current = (await self._current(session_id, "get_variable", [name]))[name]
        if current is None:
            raise rules.variable_not_found(session_id, name)
        return current[0]

    async def set_variable(
        self, session_id: str, name: str, value: Any, *, expected_version: int | None = None
    ) -> Variable:
        """Write a new value (compare-and-set on the server); returns the new version.

        Raises:
            SessionNotFoundError: no live session has that id.
            VariableNotFoundError: the session has no such variable.
            VersionConflictError: ``expected_version`` is not the current version.
            VariableValidationError: the value breaks the type or a constraint.
            SessionStoreUnavailableError: Redis cannot be reached.
        """
        while True:
            current = (await self._current(session_id, "set_variable", [name]))[name]
            new = rules.plan_write(
                session_id,
                name,
                current[0] if current is not None else None,
                value,
                expected_version,
                self._clock.time(),
            )
            assert current is not None
            write = self._set(new, current[1], _expect(*current))
            if await self._commit(session_id, "set_variable", [write]):
                self._announce(session_id, new)
                return new

    async def get_many(
        self, session_id: str, names: Iterable[str]
    ) -> tuple[dict[str, Variable], list[str]]:
        """Several variables at once: ``(found, missing)``.

        Raises:
            SessionNotFoundError: no live session has that id.
            SessionStoreUnavailableError: Redis cannot be reached.
        """
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
        """Write several variables in one commit, all or nothing when ``atomic``.

        Raises:
            SessionNotFoundError: no live session has that id.
            VariableNotFoundError: atomic, and a name is not a variable.
            VersionConflictError: atomic, and an expected version does not match.
            VariableValidationError: atomic, and a value breaks its type or constraints.
            SessionStoreUnavailableError: Redis cannot be reached.
        """
        while True:
            current = await self._current(session_id, "set_many", list(values))
            plan = rules.plan_batch(
                session_id,
                {name: entry[0] if entry else None for name, entry in current.items()},
                values,
                atomic=atomic,
                expected_versions=expected_versions,
                now=self._clock.time(),
            )
            writes = []
            for name, new in plan.writes.items():
                entry = current[name]
                assert entry is not None
                writes.append(self._set(new, entry[1], _expect(*entry)))
            if not writes or await self._commit(session_id, "set_many", writes):
                for new in plan.writes.values():
                    self._announce(session_id, new)
                return BatchResult(updated=dict(plan.writes), errors=plan.errors)

    async def list_variables(self, session_id: str, pattern: str = "*") -> list[Variable]:
        """The variables whose names match the ``fnmatch`` ``pattern``, sorted by name.

        Raises:
            SessionNotFoundError: no live session has that id.
            SessionStoreUnavailableError: Redis cannot be reached.
        """
        read = await self._read(session_id, "list_variables", "all")
        by_name = {v.name: v for v, _ in map(_parse_record, read.records)}
        return [by_name[name] for name in rules.match_names(by_name, pattern)]

    async def delete_variable(self, session_id: str, name: str) -> None:
        """Delete a variable and its history; watchers get an update with ``deleted=True``.

        Raises:
            SessionNotFoundError: no live session has that id.
            VariableNotFoundError: the session has no such variable.
            SessionStoreUnavailableError: Redis cannot be reached.
        """
        while True:
            current = (await self._current(session_id, "delete_variable", [name]))[name]
            if current is None:
                raise rules.variable_not_found(session_id, name)
            event = rules.deleted_event(self.name, session_id, current[0], self._clock.time())
            write = ("del", name, _expect(*current), "", "", _update_message(event))
            if await self._commit(session_id, "delete_variable", [write]):
                self._publish(event)
                return

    async def history(self, session_id: str, name: str) -> list[Variable]:
        """The kept versions of a variable, oldest first, the current one last.

        Raises:
            SessionNotFoundError: no live session has that id.
            VariableNotFoundError: the session has no such variable.
            SessionStoreUnavailableError: Redis cannot be reached.
        """
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
        return [_parse_record(r) for r in read.records]

    async def rollback(
        self, session_id: str, name: str, version: int, *, expected_version: int | None = None
    ) -> Variable:
        """Write the value of an older ``version`` again, as a new version.

        Raises:
            SessionNotFoundError: no live session has that id.
            VariableNotFoundError: no such variable, or ``version`` is not in its history.
            VersionConflictError: ``expected_version`` is not the current version.
            SessionStoreUnavailableError: Redis cannot be reached.
        """
        while True:
            kept = await self._history(session_id, name, "rollback")
            current, inc = kept[-1]
            rules.check_version(session_id, current, expected_version)
            old = rules.rollback_target(
                session_id, name, [v for v, _ in kept], version, self.history_limit
            )
            new = rules.next_version(current, old.value, self._clock.time())
            if await self._commit(
                session_id, "rollback", [self._set(new, inc, _expect(current, inc))]
            ):
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
        """Change a variable's metadata (merged, or replaced whole); returns the new version.

        Raises:
            SessionNotFoundError: no live session has that id.
            VariableNotFoundError: the session has no such variable.
            VersionConflictError: ``expected_version`` is not the current version.
            InvalidValueError: ``metadata`` is not a mapping or ``replace`` not a bool.
            SerializationError: ``metadata`` holds a value the codec cannot carry.
            SessionStoreUnavailableError: Redis cannot be reached.
        """
        while True:
            current = (await self._current(session_id, "update_variable_metadata", [name]))[name]
            new = rules.plan_metadata(
                session_id,
                name,
                current[0] if current is not None else None,
                metadata,
                replace=replace,
                expected_version=expected_version,
                now=self._clock.time(),
            )
            assert current is not None
            write = self._set(new, current[1], _expect(*current))
            if await self._commit(session_id, "update_variable_metadata", [write]):
                self._announce(session_id, new)
                return new

    async def import_variables(
        self, session_id: str, data: Mapping[str, Any], *, overwrite: bool = False
    ) -> dict[str, Variable]:
        """Write the variables of an export document into the session in one commit.

        Raises:
            SessionNotFoundError: no live session has that id.
            InvalidValueError: ``data`` is not an export document.
            VariableValidationError: an entry's name, type, constraints or value is invalid.
            VariableRedefinedError: a name exists and ``overwrite`` is False.
            SerializationError: a value or metadata cannot be stored.
            SessionStoreUnavailableError: Redis cannot be reached.
        """
        names = rules.import_names(data)
        while True:
            current = await self._current(session_id, "import_variables", names)
            planned = rules.plan_import(
                session_id,
                data,
                {name: entry[0] if entry else None for name, entry in current.items()},
                overwrite=overwrite,
                now=self._clock.time(),
            )
            writes = []
            events: list[VariableUpdated] = []
            for item in planned:
                new, entry = item.variable, current.get(item.variable.name)
                if entry is None:
                    writes.append(self._set(new, secrets.token_hex(8), ""))
                elif not item.redefined:
                    writes.append(self._set(new, entry[1], _expect(*entry)))
                else:
                    # A redefinition: the old variable and its history go, a new incarnation
                    # starts (both checked against the version read, in the same commit).
                    gone = rules.deleted_event(self.name, session_id, entry[0], new.updated_at)
                    expect = _expect(*entry)
                    writes.append(("del", new.name, expect, "", "", _update_message(gone)))
                    writes.append(self._set(new, secrets.token_hex(8), expect))
                    events.append(gone)
                events.append(rules.update_event(self.name, session_id, new))
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
        """Follow the session's variable updates, written by any host, from now on.

        Raises:
            SessionNotFoundError: no live session has that id.
            ValueError: ``maxsize`` is below 1.
            SessionStoreUnavailableError: Redis cannot be reached.
        """
        wanted = None if names is None else frozenset(names)
        if self._closed:
            await self._read(session_id, "watch", "names")
            watch = VariableWatch(session_id, wanted, maxsize=maxsize)
            watch.end("store closed")
            return watch
        if not rules.is_session_id(session_id):
            raise self._not_found(session_id)
        channel = self._channel(session_id)
        follower: _Follower | None = None
        watch = VariableWatch(
            session_id,
            wanted,
            maxsize=maxsize,
            on_close=lambda w: self._unfollow(channel, follower),
        )
        follower = _Follower(watch)
        try:
            await self._follow(channel, follower)
            read = await self._read(session_id, "watch", "all")
        except BaseException:
            self._unfollow(channel, follower)
            raise
        follower.inc, follower.seq = read.inc, read.seq
        if include_current:
            current = sorted((v for v, _ in map(_parse_record, read.records)), key=lambda v: v.name)
            for variable in current:
                watch.offer(rules.update_event(self.name, session_id, variable))
        pending, follower.pending = follower.pending or [], None
        for message in pending:
            self._deliver(channel, follower, *message)
        return watch

    async def _follow(self, channel: str, follower: _Follower) -> None:
        """Subscribe to ``channel`` (once per store) and wait until Redis confirms it."""
        if self._sub_lock is None:
            self._sub_lock = asyncio.Lock()
        async with self._sub_lock:
            entry = self._channels.get(channel)
            if entry is None:
                entry = _Channel(ready=asyncio.get_running_loop().create_future())
                self._channels[channel] = entry
                try:
                    if self._pubsub is None:
                        self._sub_client = self._client(retries=0)
                        self._pubsub = self._sub_client.pubsub()
                    await self._call("watch", lambda: self._pubsub.subscribe(channel))
                except BaseException:
                    del self._channels[channel]
                    raise
                if self._reader is None:
                    self._reader = asyncio.create_task(
                        self._read_messages(self._pubsub), name=f"snakepit-store-watch[{self.name}]"
                    )
            entry.followers.add(follower)
        try:
            async with asyncio.timeout(self._timeout):
                await asyncio.shield(entry.ready)
        except TimeoutError as exc:
            raise self._unavailable("watch", exc) from exc

    def _unfollow(self, channel: str, follower: _Follower | None) -> None:
        entry = self._channels.get(channel)
        if entry is None or follower not in entry.followers:
            return
        entry.followers.discard(follower)
        if not entry.followers:
            del self._channels[channel]
            if not self._closed:
                task = asyncio.get_running_loop().create_task(self._unsubscribe(channel))
                self._chores.add(task)
                task.add_done_callback(self._chores.discard)

    async def _unsubscribe(self, channel: str) -> None:
        assert self._sub_lock is not None
        async with self._sub_lock:
            if channel not in self._channels and self._pubsub is not None:
                with contextlib.suppress(Exception):
                    await self._pubsub.unsubscribe(channel)

    async def _read_messages(self, pubsub: Any) -> None:
        try:
            while True:
                message = await pubsub.get_message(timeout=None)
                if message is None:
                    continue
                kind, channel = message["type"], message["channel"]
                entry = self._channels.get(channel)
                if kind == "subscribe":
                    if entry is not None and not entry.ready.done():
                        entry.ready.set_result(None)
                elif kind == "message" and entry is not None:
                    try:
                        inc, seq, body = message["data"].split("|", 2)
                        number = int(seq)
                    except ValueError:
                        log.warning(
                            "store %s: ignored a malformed message on %s", self.name, channel
                        )
                        continue
                    for follower in list(entry.followers):
                        self._deliver(channel, follower, inc, number, body)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            error = self._unavailable("watch", exc)
            log.warning("store %s: watches ended: %s", self.name, error)
            self._reader = None  # this task ends here; the next watch starts a fresh reader
            self._end_all("session store unavailable", error)
            chore = asyncio.get_running_loop().create_task(self._drop_pubsub())  # detaches now
            self._chores.add(chore)
            chore.add_done_callback(self._chores.discard)

    def _deliver(self, channel: str, follower: _Follower, inc: str, seq: int, body: str) -> None:
        if follower.pending is not None:
            follower.pending.append((inc, seq, body))
            return
        if inc and inc != follower.inc:
            return  # an earlier incarnation of the session id
        if body[:1] == "E":
            follower.watch.end(body[1:])
            self._unfollow(channel, follower)
        elif seq > follower.seq:
            try:
                update = _unpack(body[1:])
                event = VariableUpdated(
                    session_id=follower.watch.session_id,
                    name=update["name"],
                    version=update["version"],
                    value=update["value"],
                    deleted=update["deleted"],
                    source=update["source"],
                    at=update["at"],
                )
            except (ValueError, LookupError, TypeError, SerializationError):
                log.warning("store %s: ignored a malformed update on %s", self.name, channel)
                return
            follower.seq = seq
            follower.watch.offer(event)

    def _end_all(self, reason: str, error: BaseException | None = None) -> None:
        channels, self._channels = self._channels, {}
        for entry in channels.values():
            if not entry.ready.done():
                if error is None:
                    entry.ready.set_result(None)  # closing: the watch being made ends at once
                else:
                    entry.ready.set_exception(error)
                    entry.ready.exception()  # retrieved: the waiter may have gone
            for follower in entry.followers:
                follower.watch.end(reason, error)

    async def _stop_pubsub(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.cancel()
            await asyncio.wait((reader,))
        chores = list(self._chores)
        for task in chores:
            task.cancel()
        if chores:
            await asyncio.wait(chores)
        await self._drop_pubsub()

    def _drop_pubsub(self) -> Coroutine[Any, Any, None]:
        """Detach the pub/sub connection now (the next watch makes a new one); close it later."""
        pubsub, self._pubsub = self._pubsub, None
        client, self._sub_client = self._sub_client, None
        return self._close_pubsub(pubsub, client)

    @staticmethod
    async def _close_pubsub(pubsub: Any, client: aioredis.Redis | None) -> None:
        with contextlib.suppress(Exception):
            if pubsub is not None:
                await pubsub.aclose()
        with contextlib.suppress(Exception):
            if client is not None:
                await client.aclose()

    def __repr__(self) -> str:
        watches = sum(len(entry.followers) for entry in self._channels.values())
        state = "closed" if self._closed else "open"
        return (
            f"<RedisSessionStore {self.name!r} {self.url} prefix={self.prefix!r} {state} "
            f"[watches {watches}]>"
        )
