"""A seeded fuzz of the public API: every bad input ends in a result or a typed SnakepitError.

Each run draws a fresh seed and prints it; ``SNAKEPIT_FUZZ_SEED=<seed>`` replays a run:
the inputs, drawn before each batch runs, depend only on the seed (how many are drawn
depends on the time budget, and the order in which concurrent calls finish may differ). It feeds at least ``MIN_INPUTS`` bad inputs - tool names,
arguments, values the codec must refuse, timeouts, session ids, variable names, types,
constraints and versions, and ``Pool`` options - to ``Pool.execute``, ``Pool.stream``,
``pool.session()``, session variables and ``Pool(...)``, a few at a time, for at least
``BUDGET`` seconds. Then it checks that no call escaped with anything but a
``SnakepitError`` (or hung) and that the pool is back at full size.
"""

from __future__ import annotations

import array
import asyncio
import datetime
import decimal
import enum
import math
import os
import random
import time
from typing import TYPE_CHECKING, Any

import snakepit
from snakepit.testing import isolated_pool, supervised
from supertester import wait_for_children

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

MIN_INPUTS = 1000
BUDGET = 0.4  # fuzz at least this long (and MIN_INPUTS); the test takes ~1 s in all
BOUND = 20.0  # an upper bound on one call: past it, the call hung
SIZE = 2
BATCH = 8  # calls in flight at once

# Tools that end or block the worker by design are left out: they are tested elsewhere and
# would only make the pool restart. Everything else is fair game, with any arguments.
TOOLS = [
    "ping", "echo", "add", "pid", "fail", "count", "remember", "recall",
    "register_var", "get_var", "set_var", "bump", "abump", "call_host", "acall_host",
]  # fmt: skip
TYPES = ["integer", "float", "string", "boolean", "choice", "module", "embedding", "tensor"]


class Color(enum.IntEnum):
    RED = 1


class Weird:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


def _deep(depth: int, bottom: Any) -> Any:
    value = bottom
    for _ in range(depth):
        value = [value]
    return value


def _cyclic() -> list[Any]:
    value: list[Any] = []
    value.append(value)
    return value


class Fuzzer:
    """Draws bad inputs from one seeded ``random.Random``."""

    def __init__(self, seed: int, pool: snakepit.Pool) -> None:
        self.r = random.Random(seed)
        self.pool = pool
        self.sessions = [f"fz-{seed % 10_000}-{i}" for i in range(4)]

    # -- values ------------------------------------------------------------------------------

    def scalar(self) -> Any:
        r = self.r
        return r.choice(
            [
                lambda: None,
                lambda: r.choice([True, False]),
                lambda: r.randint(-(2**70), 2**70),
                lambda: r.uniform(-1e6, 1e6),
                lambda: r.choice([math.nan, math.inf, -math.inf, -0.0, 5e-324, 1.7e308]),
                lambda: "".join(chr(r.randrange(0x10FFFF)) for _ in range(r.randint(0, 12))),
                lambda: "\ud800",  # a lone surrogate: not encodable as UTF-8
                lambda: "a" * r.randint(20, 40) + "!",  # a regex bomb for (a+)+$
                lambda: "x" * r.choice([0, 1, 1000, 100_000]),
                lambda: r.randbytes(r.randint(0, 64)),
                lambda: bytearray(r.randbytes(8)),
                lambda: memoryview(r.randbytes(8))[:: r.randint(1, 3)],
                lambda: array.array("d", [1.5]),
                lambda: {1, 2},
                lambda: frozenset(),
                lambda: object(),
                lambda: Weird(),
                lambda: 3 + 4j,
                lambda: decimal.Decimal("1.5"),
                lambda: datetime.datetime(2024, 1, 1),
                lambda: Color.RED,
                lambda: 10 ** r.choice([400, 5000]),
                lambda: -(10**5000),
                lambda: {"\x00b": r.randint(-2, 2)},
                lambda: {"\x00f": "nan"},
                lambda: {1: "int key"},
                lambda: {(1, 2): "tuple key"},
                lambda: _deep(r.choice([150, 199, 200, 201, 480, 2000]), b"bottom"),
                _cyclic,
                lambda: print,
                lambda: ...,
            ]
        )()

    def value(self, depth: int = 0) -> Any:
        r = self.r
        roll = r.random()
        if depth > 2 or roll < 0.6:
            return self.scalar()
        if roll < 0.8:
            return [self.value(depth + 1) for _ in range(r.randint(0, 4))]
        if roll < 0.9:
            return tuple(self.value(depth + 1) for _ in range(r.randint(0, 3)))
        return {self.text(): self.value(depth + 1) for _ in range(r.randint(0, 3))}

    def text(self) -> Any:
        """Usually a string, sometimes any hashable value (they end up as names and keys)."""
        r = self.r
        text = r.choice(
            [
                lambda: r.choice(["a", "value", "name", "n", "key", "x" * 200]),
                lambda: "".join(r.choice("abc_.-/\\\x00\n:é ") for _ in range(r.randint(0, 20))),
                lambda: self.scalar(),
            ]
        )()
        try:
            hash(text)
        except TypeError:
            return repr(type(text))
        return text

    # -- the parts of a call -----------------------------------------------------------------

    def tool(self) -> Any:
        r = self.r
        if r.random() < 0.6:
            return r.choice(TOOLS)
        return r.choice(
            [
                "", "nope", "crash ", "ping\x00", "../../etc/passwd", "ping" * 1000,
                "x" * r.choice([10_000, 1_000_000]), None, 0, b"ping", ["ping"], Weird(),
                "\u202eping", "Ping",
            ]
        )  # fmt: skip

    def args(self) -> Any:
        r = self.r
        roll = r.random()
        if roll < 0.1:
            return r.choice([None, [], "a=1", 5, b"x", {"a", "b"}, ({"a": 1},)])
        names = ["value", "a", "b", "n", "key", "message", "name", "type", "by", "args"]
        args: dict[Any, Any] = {}
        for _ in range(r.randint(0, 4)):
            key = r.choice(names) if r.random() < 0.8 else self.text()
            args[key] = self.value()
        if roll < 0.15:
            args[r.choice([1, None, b"k"])] = 1
        return args

    def timeout(self) -> Any:
        r = self.r
        roll = r.random()
        if roll < 0.7:
            return BOUND
        if roll < 0.71:
            # Non-finite and enormous: until they are refused (or mean "no deadline") they
            # cost a worker each, so they are drawn rarely.
            return r.choice([math.nan, math.inf, 1e308])
        return r.choice(
            [None, 0, -1, -0.0, -math.inf, 10**5000, -(10**5000), "1", True, [], object()]
        )

    def session_id(self) -> Any:
        r = self.r
        if r.random() < 0.5:
            return r.choice(self.sessions)
        return r.choice(
            [
                None, "", "a" * 129, "a b", "../x", "x/y", "\x00", "é", 5, b"s1", ["s"],
                "s" * 1_000_000, Weird(),
            ]
        )  # fmt: skip

    def var_name(self) -> Any:
        r = self.r
        if r.random() < 0.6:
            return r.choice(["v", "n", "s", "e", "t", "c"])
        return self.text()

    def constraints(self) -> Any:
        r = self.r
        if r.random() < 0.3:
            return None
        keys = [
            "min", "max", "min_length", "max_length", "pattern", "choices", "allowed_modules",
            "dimensions", "shape", "dtype", "bogus",
        ]  # fmt: skip
        patterns = [
            "(a+)+$", "(a|a)*$", "[a-z]+", "(?=a)a", r"(a)\1", "(?i)x", "(", "a{1000}",
            "x" * 2000, "(" * 300 + ")" * 300, r"\bx", ".*",
        ]  # fmt: skip
        out: dict[Any, Any] = {}
        for _ in range(r.randint(0, 3)):
            key = r.choice(keys)
            out[key] = r.choice(patterns) if key == "pattern" else self.value(2)
        if r.random() < 0.1:
            return r.choice([[1, 2], "min=1", 5, {1: 2}])
        return out

    # -- operations: each returns a label and a coroutine factory ----------------------------

    def draw(self) -> tuple[str, Callable[[], Awaitable[Any]]]:
        op = self.r.choice(
            [self.op_execute] * 5 + [self.op_stream] * 2 + [self.op_variables] * 4
            + [self.op_session, self.op_config, self.op_sessions]
        )  # fmt: skip
        return op()

    def tool_args(self, tool: Any) -> Any:
        """Half the time the tool's own parameter names (with any values), so calls get as
        far as the worker; otherwise anything."""
        spec = self.pool.tools.get(tool) if isinstance(tool, str) else None
        if spec is None or self.r.random() < 0.5:
            return self.args()
        return {p.name: self.value() for p in spec.params if self.r.random() < 0.9}

    def op_execute(self) -> tuple[str, Callable[[], Awaitable[Any]]]:
        tool = self.tool()
        args, timeout = self.tool_args(tool), self.timeout()
        session = self.session_id() if self.r.random() < 0.4 else None

        async def run() -> Any:
            return await self.pool.execute(tool, args, timeout=timeout, session_id=session)

        label = f"execute({_short(tool)}, {_short(args)}, {_short(timeout)}, {_short(session)})"
        return label, run

    def op_stream(self) -> tuple[str, Callable[[], Awaitable[Any]]]:
        tool = (
            self.r.choice(["count", "count", "ping", "echo"])
            if self.r.random() < 0.7
            else self.tool()
        )
        args: Any = (
            {"n": self.r.choice([0, 3, 10**6, -1, "3", 2.5, None])}
            if tool == "count"
            else self.args()
        )
        timeout, keep = self.timeout(), self.r.choice([0, 1, 5, 50])

        async def run() -> Any:
            got = []
            stream = self.pool.stream(tool, args, timeout=timeout)
            try:
                async for chunk in stream:
                    got.append(chunk)
                    if len(got) >= keep:
                        break
            finally:
                await stream.aclose()  # type: ignore[attr-defined]
            return got

        return f"stream({_short(tool)}, {_short(args)}, {_short(timeout)}, keep={keep})", run

    def op_session(self) -> tuple[str, Callable[[], Awaitable[Any]]]:
        sid = self.session_id()
        what = self.r.choice(["initialize", "info", "delete", "execute"])
        ttl = self.r.choice([None, 0, -1, math.nan, math.inf, "1", 10**5000, 60.0])
        metadata = self.r.choice([None, {}, {"k": self.value()}, [1], "m"])
        tool = self.r.choice(TOOLS)
        args = self.tool_args(tool)

        async def run() -> Any:
            session = self.pool.session(sid)
            if what == "initialize":
                return await session.initialize(metadata=metadata, ttl=ttl)
            if what == "info":
                return await session.info()
            if what == "delete":
                return await session.delete()
            return await session.execute(tool, args, timeout=BOUND)

        label = f"session({_short(sid)}).{what}({_short(ttl)}, {_short(metadata)}, {tool})"
        return label, run

    def op_sessions(self) -> tuple[str, Callable[[], Awaitable[Any]]]:
        sid = self.session_id()
        what = self.r.choice(["get", "delete", "list"])

        async def run() -> Any:
            if what == "list":
                return await self.pool.sessions.list()
            return await getattr(self.pool.sessions, what)(sid)

        return f"sessions.{what}({_short(sid)})", run

    def op_variables(self) -> tuple[str, Callable[[], Awaitable[Any]]]:
        r = self.r
        sid = r.choice(self.sessions)
        what = r.choice(
            ["register"] * 4
            + ["set"] * 3
            + ["get", "get_many", "set_many", "list", "delete", "history", "rollback", "watch"]
        )
        name, value = self.var_name(), self.value()
        type_ = r.choice(TYPES) if r.random() < 0.8 else self.text()
        constraints, version = (
            self.constraints(),
            r.choice([None, 1, 2, 0, -1, "1", 1.0, True, 10**5000, math.nan]),
        )
        names = r.choice([[name], [name, self.text()], name, None, 5, [None]])
        values = r.choice([{name: value}, [(name, value)], None, {1: 2}, {name: value, "n": 1}])
        pattern = r.choice(["*", "v*", "[", "\x00", 5, None, "*" * 1000])
        atomic = r.choice([True, False, "yes"])

        async def run() -> Any:
            v = self.pool.session(sid).variables
            if what == "register":
                return await v.register(name, type_, value, constraints=constraints)
            if what == "set":
                return await v.set(name, value, expected_version=version)
            if what == "get":
                return await v.get(name)
            if what == "get_many":
                return await v.get_many(names)
            if what == "set_many":
                return await v.set_many(values, atomic=atomic, expected_versions=None)
            if what == "list":
                return await v.list(pattern)
            if what == "delete":
                return await v.delete(name)
            if what == "history":
                return await v.history(name)
            if what == "rollback":
                return await v.rollback(name, version)
            watch = await v.watch(names)
            watch.close()
            return watch

        label = (
            f"variables[{sid}].{what}({_short(name)}, {_short(type_)}, {_short(value)}, "
            f"constraints={_short(constraints)}, version={_short(version)})"
        )
        return label, run

    def op_config(self) -> tuple[str, Callable[[], Awaitable[Any]]]:
        r = self.r
        options = [
            "size", "max_queue", "queue_timeout", "timeout", "affinity", "max_concurrency",
            "startup_timeout", "max_restarts", "restart_window", "backoff_initial",
            "backoff_max", "max_requests", "ttl", "memory_limit_mb", "heartbeat_interval",
            "heartbeat_timeout", "python", "env", "cwd", "transport", "serialization",
            "max_message_mb", "threads", "startup_concurrency", "shutdown_grace",
            "drain_timeout", "session_ttl", "max_sessions", "name", "adapter", "sise",
        ]  # fmt: skip
        bad = [
            -1, 0, 1.5, math.nan, math.inf, -math.inf, 10**5000, -(10**5000), "4", "", None,
            True, [], {}, {"A": 1}, object(), "tcp2", "../../x", "x" * 10_000,
        ]  # fmt: skip
        chosen = {r.choice(options): r.choice(bad) for _ in range(r.randint(1, 3))}
        chosen.setdefault("adapter", "snakepit.examples.showcase:Showcase")

        async def run() -> Any:
            # Only built, never started: building must validate every option.
            return snakepit.Pool(**chosen).config

        return f"Pool(**{_short(chosen)})", run


def _short(value: Any) -> str:
    """A repr for the report that never raises (the inputs include values repr() refuses)."""
    try:
        text = repr(value)
    except Exception:
        text = f"<{type(value).__name__}>"
    return text if len(text) <= 80 else text[:77] + "..."


async def _outcome(label: str, make: Callable[[], Awaitable[Any]]) -> str | None:
    """None for a result or a typed error; otherwise what went wrong, for the report."""
    try:
        await asyncio.wait_for(make(), BOUND)
    except snakepit.SnakepitError:
        return None
    except TimeoutError:
        return f"{label}: hung for {BOUND}s"
    except BaseException as exc:
        return f"{label}: {type(exc).__module__}.{type(exc).__qualname__}: {_short(str(exc))}"
    return None


class TestFuzz:
    async def test_every_bad_input_ends_typed_and_the_pool_stays_whole(self) -> None:
        seed = int(os.environ.get("SNAKEPIT_FUZZ_SEED") or random.SystemRandom().randrange(2**32))
        print(f"fuzz seed: {seed} (replay with SNAKEPIT_FUZZ_SEED={seed})")
        async with isolated_pool(size=SIZE, max_message_mb=1, max_restarts=1000) as pool:
            fuzzer = Fuzzer(seed, pool)
            failures: list[str] = []
            done = 0
            started = time.monotonic()
            while done < MIN_INPUTS or time.monotonic() - started < BUDGET:
                batch = [fuzzer.draw() for _ in range(BATCH)]
                outcomes = await asyncio.gather(*(_outcome(label, make) for label, make in batch))
                failures.extend(o for o in outcomes if o is not None)
                done += len(batch)
            print(f"fuzz: {done} inputs in {time.monotonic() - started:.2f}s, seed {seed}")
            assert not failures, (
                f"seed {seed}: {len(failures)} of {done} inputs escaped untyped or hung:\n"
                + "\n".join(failures[:15])
            )
            await wait_for_children(
                supervised(pool),
                lambda children: sum(c.alive for c in children) == SIZE,
                timeout=BOUND,
                what=f"{SIZE} live workers after the fuzz (seed {seed})",
            )
            assert pool.stats().live_workers == SIZE
            assert await pool.execute("ping") == {"status": "pong"}
