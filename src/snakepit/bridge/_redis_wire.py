"""What the Redis store keeps in and sends to Redis: its Lua scripts and the text forms of its data.

The scripts keep the rules atomic on the server (see :mod:`snakepit.bridge._redis_store`);
the forms are a stored version (``"version|incarnation|packed"``), a packed value
(codec JSON, bytes carried base64 beside it) and a watch message
(``"incarnation|seq|U..."`` for an update, ``"...|E<reason>"`` for an end).
"""

from __future__ import annotations

import base64
import json
from typing import Any, TypeAlias

from snakepit import codec
from snakepit._variables import Variable
from snakepit.events import VariableUpdated

__all__ = [
    "COMMIT",
    "METADATA",
    "READ",
    "REMOVE",
    "SESSION",
    "UNPIN",
    "Write",
    "expect",
    "number",
    "pack",
    "parse_record",
    "parse_update",
    "record",
    "unpack",
    "update_message",
]

# One write of the commit script: op (set | del), name, expected "version|incarnation|",
# the new record, its version, the update message.
Write: TypeAlias = tuple[str, str, str, str, str, str]

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
SESSION = (
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
REMOVE = (
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
READ = (
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
COMMIT = (
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
METADATA = (
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

UNPIN = """
if redis.call('HGET', KEYS[1], 'affinity') == ARGV[1] then
  redis.call('HDEL', KEYS[1], 'affinity')
  return 1
end
return 0
"""


# -- values ----------------------------------------------------------------------------------------


def pack(value: Any, what: str) -> str:
    """``value`` as text: codec JSON, with any bytes carried base64 beside it."""
    document, blobs = codec.encode(value, what=what)
    if not blobs:
        return "J" + document.decode()
    return "B" + json.dumps([document.decode(), [base64.b64encode(b).decode() for b in blobs]])


def unpack(text: str) -> Any:
    if text[:1] == "J":
        return codec.decode(text[1:].encode())
    document, blobs = json.loads(text[1:])
    return codec.decode(document.encode(), [base64.b64decode(b) for b in blobs])


def record(variable: Variable, inc: str) -> str:
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
    return f"{variable.version}|{inc}|{pack(body, f'variable {variable.name!r}')}"


def parse_record(text: str) -> tuple[Variable, str]:
    _, inc, packed = text.split("|", 2)
    body = unpack(packed)
    return Variable(**body), inc


def expect(variable: Variable, inc: str) -> str:
    return f"{variable.version}|{inc}|"


def update_message(event: VariableUpdated) -> str:
    body = {
        "name": event.name,
        "version": event.version,
        "value": event.value,
        "deleted": event.deleted,
        "at": event.at,
        "source": event.source,
    }
    return "U" + pack(body, f"update of variable {event.name!r}")


def number(value: float) -> str:
    return repr(float(value))


def parse_update(session_id: str, body: str) -> VariableUpdated:
    """The event an update message's body (after its ``U``) carries.

    Raises:
        ValueError, LookupError, TypeError or SerializationError: the body is malformed.
    """
    update = unpack(body)
    return VariableUpdated(
        session_id=session_id,
        name=update["name"],
        version=update["version"],
        value=update["value"],
        deleted=update["deleted"],
        source=update["source"],
        at=update["at"],
    )
