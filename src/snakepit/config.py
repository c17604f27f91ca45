"""``PoolConfig``: every pool option in one validated, frozen object.

``Pool(adapter=..., size=4)`` and ``Pool(PoolConfig(adapter=..., size=4))``
are the same. An invalid option raises ``ValueError`` naming the option, the
value, and what is allowed.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal

__all__ = ["AFFINITY_MODES", "PoolConfig"]

AFFINITY_MODES = ("hint", "strict_queue", "strict_fail_fast")
TRANSPORTS = ("local", "grpc", "unix", "tcp")
SERIALIZATIONS = ("json", "pickle")


def _default_size() -> int:
    return max(1, os.cpu_count() or 1)


@dataclass(frozen=True, kw_only=True)
class PoolConfig:
    """Options of a :class:`~snakepit.Pool`.

    Attributes:
        adapter: ``"pkg.module:Class"`` of the worker's Adapter subclass.
        size: number of worker processes.
        name: the pool's name in events, logs and ``repr`` (default: generated).
        max_queue: requests that may wait for a worker; one more is ``PoolSaturatedError``.
        queue_timeout: seconds a request may wait in the queue (None: no bound).
        timeout: default per-call deadline in seconds (None: no deadline).
        affinity: ``"hint"``, ``"strict_queue"`` or ``"strict_fail_fast"`` for sessions.
        max_concurrency: requests one worker runs at once (async tools, thread profile).
        startup_timeout: seconds a worker has to print its ready line and describe itself.
        max_restarts, restart_window: restart intensity; more unexpected exits than
            ``max_restarts`` within ``restart_window`` seconds make the pool degraded.
        backoff_initial, backoff_max: restart backoff bounds (exponential, with jitter).
        max_requests: recycle a worker after this many requests (None: never).
        ttl: recycle a worker after this many seconds (None: never).
        memory_limit_mb: recycle a worker whose RSS exceeds this (None: never).
        heartbeat_interval: seconds between liveness pings (None: no heartbeat).
        heartbeat_timeout: seconds a ping may take before the worker is replaced.
        python: interpreter for the workers (a different virtualenv works).
        env: extra environment variables for the workers.
        cwd: working directory of the workers.
        transport: ``"local"`` (default: frames on a socket pair, shared memory for large
            bytes, no gRPC in the worker), ``"grpc"`` (gRPC on a Unix socket; ``"unix"`` is
            accepted as another name for it) or ``"tcp"`` (gRPC on loopback, with a per-pool
            token). Workers in other languages speak gRPC or the framing in FRAMING.md.
        serialization: ``"json"`` (default) or ``"pickle"`` (Python-to-Python, opt-in).
        max_message_mb: the largest message either side accepts.
        threads: threads per worker for synchronous tools.
        startup_concurrency: workers started at once.
        shutdown_grace: seconds between SIGTERM and SIGKILL when stopping a worker.
        drain_timeout: seconds ``close()`` waits for running calls before stopping workers.
        runtime_dir: base directory for the pool's private socket directory.
        registry_dir: where the orphan registry lives (default: per-user data directory).
        session_ttl: seconds of inactivity after which a session expires.
        max_sessions: most live sessions (None: no limit).
    """

    adapter: str
    size: int = field(default_factory=_default_size)
    name: str | None = None
    max_queue: int = 1000
    queue_timeout: float | None = None
    timeout: float | None = 60.0
    affinity: Literal["hint", "strict_queue", "strict_fail_fast"] = "hint"
    max_concurrency: int = 1
    startup_timeout: float = 30.0
    max_restarts: int = 10
    restart_window: float = 60.0
    backoff_initial: float = 0.05
    backoff_max: float = 5.0
    max_requests: int | None = None
    ttl: float | None = None
    memory_limit_mb: float | None = None
    heartbeat_interval: float | None = 10.0
    heartbeat_timeout: float = 5.0
    python: str = sys.executable
    env: Mapping[str, str] | None = None
    cwd: str | None = None
    transport: Literal["local", "grpc", "unix", "tcp"] = "local"
    serialization: Literal["json", "pickle"] = "json"
    max_message_mb: int = 256
    threads: int = 4
    startup_concurrency: int = 4
    shutdown_grace: float = 5.0
    drain_timeout: float = 10.0
    runtime_dir: str | None = None
    registry_dir: str | None = None
    session_ttl: float = 3600.0
    max_sessions: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.adapter, str) or ":" not in self.adapter:
            _bad("adapter", self.adapter, "a string 'pkg.module:Class'")
        _int("size", self.size, 1)
        _int("max_queue", self.max_queue, 0)
        _int("max_concurrency", self.max_concurrency, 1)
        _int("max_restarts", self.max_restarts, 0)
        _int("max_message_mb", self.max_message_mb, 1)
        _int("threads", self.threads, 1)
        _int("startup_concurrency", self.startup_concurrency, 1)
        _int("max_requests", self.max_requests, 1, optional=True)
        _int("max_sessions", self.max_sessions, 1, optional=True)
        _seconds("queue_timeout", self.queue_timeout, optional=True)
        _seconds("timeout", self.timeout, optional=True)
        _seconds("startup_timeout", self.startup_timeout)
        _seconds("restart_window", self.restart_window)
        _seconds("backoff_initial", self.backoff_initial, allow_zero=True)
        _seconds("backoff_max", self.backoff_max, allow_zero=True)
        _seconds("ttl", self.ttl, optional=True)
        _seconds("memory_limit_mb", self.memory_limit_mb, optional=True)
        _seconds("heartbeat_interval", self.heartbeat_interval, optional=True)
        _seconds("heartbeat_timeout", self.heartbeat_timeout)
        _seconds("shutdown_grace", self.shutdown_grace, allow_zero=True)
        _seconds("drain_timeout", self.drain_timeout, allow_zero=True)
        _seconds("session_ttl", self.session_ttl)
        if self.backoff_max < self.backoff_initial:
            _bad("backoff_max", self.backoff_max, f">= backoff_initial ({self.backoff_initial})")
        _choice("affinity", self.affinity, AFFINITY_MODES)
        _choice("transport", self.transport, TRANSPORTS)
        if self.transport == "unix":
            object.__setattr__(self, "transport", "grpc")
        _choice("serialization", self.serialization, SERIALIZATIONS)
        if not isinstance(self.python, str) or not self.python:
            _bad("python", self.python, "the path of a Python interpreter")
        if self.env is not None and not (
            isinstance(self.env, Mapping)
            and all(isinstance(k, str) and isinstance(v, str) for k, v in self.env.items())
        ):
            _bad("env", self.env, "a mapping of str to str")
        if self.name is not None and (not isinstance(self.name, str) or not self.name.strip()):
            _bad("name", self.name, "a non-empty string")

    @classmethod
    def from_options(cls, config: PoolConfig | None, options: dict[str, Any]) -> PoolConfig:
        """Merge keyword options over an optional config, rejecting unknown names."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ValueError(
                f"unknown Pool option(s) {', '.join(map(repr, unknown))}; "
                f"allowed: {', '.join(sorted(known))}"
            )
        if config is None:
            if "adapter" not in options:
                raise ValueError(
                    "Pool needs an adapter: Pool(adapter='pkg.module:Class', ...), e.g. "
                    "'snakepit.examples.showcase:Showcase'"
                )
            return cls(**options)
        if not isinstance(config, PoolConfig):
            raise ValueError(f"Pool config must be a PoolConfig, got {type(config).__name__}")
        if not options:
            return config
        merged = {f.name: getattr(config, f.name) for f in fields(cls)}
        merged.update(options)
        return cls(**merged)


def _bad(option: str, value: Any, allowed: str) -> None:
    raise ValueError(f"invalid Pool option {option}={value!r}: must be {allowed}")


def _int(option: str, value: Any, minimum: int, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        _bad(option, value, f"an integer >= {minimum}" + (" or None" if optional else ""))


def _seconds(option: str, value: Any, *, optional: bool = False, allow_zero: bool = False) -> None:
    if value is None and optional:
        return
    ok = (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and (value >= 0 if allow_zero else value > 0)
    )
    if not ok:
        rule = ">= 0" if allow_zero else "> 0"
        _bad(option, value, f"a finite number {rule}" + (" or None" if optional else ""))


def _choice(option: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        _bad(option, value, "one of " + ", ".join(map(repr, allowed)))
