"""``PoolConfig``: every pool option in one validated, frozen object.

``Pool(adapter=..., size=4)`` and ``Pool(PoolConfig(adapter=..., size=4))``
are the same. An invalid option raises ``ConfigError`` (an ``InvalidValueError``,
so also a ``ValueError`` and a ``SnakepitError``) naming the option, the value (cut short
when long), and what is allowed.
"""

from __future__ import annotations

import math
import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from snakepit.bridge._store import SessionStore

from snakepit.errors import ConfigError, brief

__all__ = [
    "AFFINITY_MODES",
    "LAUNCHERS",
    "MAX_COUNT",
    "MAX_MESSAGE_MB",
    "NAME_RULE",
    "RAY_OPTIONS",
    "SERIALIZATIONS",
    "START_METHODS",
    "TRANSPORTS",
    "PoolConfig",
]

AFFINITY_MODES = ("hint", "strict_queue", "strict_fail_fast")
TRANSPORTS = ("local", "grpc", "unix", "tcp")
START_METHODS = ("forkserver", "spawn")
SERIALIZATIONS = ("json", "pickle")
# A pool's name goes into file names (its registry file, its runtime directory): no path
# separators, no NUL, nothing that could make it "." or "..".
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}")
MAX_COUNT = 65_536  # workers, threads, concurrency: far beyond any one host
MAX_MESSAGE_MB = 2047  # gRPC's limit is a 32-bit count of bytes
NAME_RULE = "1-128 characters from A-Z a-z 0-9 _ . : -, starting with a letter or digit"
LAUNCHERS = ("local", "ray")
#: what ``ray_options`` may set on each worker's actor (passed to ``.options()``)
RAY_OPTIONS = (
    "num_cpus",
    "num_gpus",
    "resources",
    "memory",
    "accelerator_type",
    "runtime_env",
    "scheduling_strategy",
    "label_selector",
)


def _default_size() -> int:
    return max(1, os.cpu_count() or 1)


@dataclass(frozen=True, kw_only=True)
class PoolConfig:
    """Options of a :class:`~snakepit.Pool`.

    Attributes:
        adapter: ``"pkg.module:Class"`` of the worker's Adapter subclass.
        size: number of worker processes (1 to 65536, as are threads and the concurrencies).
        name: the pool's name in events, logs and ``repr`` (default: generated);
            1-128 characters ``[A-Za-z0-9_.:-]``, starting with a letter or digit.
        max_queue: requests that may wait for a worker; one more is ``PoolSaturatedError``.
        queue_timeout: seconds a request may wait in the queue (None: no bound).
        timeout: default per-call deadline in seconds, queue wait included (None or
            ``math.inf``: no deadline; above 10**9 s, no deadline can represent it, so none
            either).
        idempotent_retries: times a call of an ``@tool(idempotent=True)`` tool is run again
            on a fresh worker after its worker crashed (``execute(retries=N)`` overrides).
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
        start_method: ``"forkserver"`` (default: workers are forks of a template process
            that imported the adapter's module once; ``setup()`` runs in each) or
            ``"spawn"`` (a fresh interpreter each). Workers are spawned whatever this
            says when ``python`` is another interpreter or the platform cannot fork them.
        transport: ``"local"`` (default: frames on a socket pair, shared memory for large
            bytes, no gRPC in the worker), ``"grpc"`` (gRPC on a Unix socket; ``"unix"`` is
            accepted as another name for it) or ``"tcp"`` (gRPC on loopback, with a per-pool
            token). Workers in other languages speak gRPC or the framing in FRAMING.md.
        serialization: ``"json"`` (default) or ``"pickle"`` (Python-to-Python, opt-in).
        max_message_mb: the largest message either side accepts (1 to 2047: gRPC counts
            bytes in 32 bits).
        threads: threads per worker for synchronous tools.
        startup_concurrency: workers started at once.
        shutdown_grace: seconds between SIGTERM and SIGKILL when stopping a worker; also
            how long a synchronous generator whose stream ended early has to stop (at its
            next chunk) before its worker is recycled.
        drain_timeout: seconds ``close()`` waits for running calls before stopping workers.
        runtime_dir: base directory for the pool's private socket directory.
        registry_dir: where the orphan registry lives (default: per-user data directory).
        session_ttl: seconds of inactivity after which a session expires.
        max_sessions: most live sessions (None: no limit).
        session_store: where sessions live: None for this process's memory, a URL
            ``"redis://host:6379/0"`` (``rediss://``, ``unix://``; ``?prefix=name`` sets the
            key namespace) for a Redis shared by several hosts (``pip install
            'pysnakepit[redis]'``), or a ``SessionStore`` object, which the pool uses but
            neither runs nor closes.
        remote_workers: ``["host:port", ...]``: attach workers that ``snakepit worker``
            serves on other machines instead of starting local ones, one slot each
            (``size`` defaults to their number). Needs ``token`` or ``token_file``, and
            ``tls_ca`` for any address that is not loopback. See ``docs/scaling.md``.
        token: the token remote workers expect (as in their ``--token-file``).
        token_file: a file holding that token, read when the pool starts.
        tls_ca: a PEM file with the CA that signed the remote workers' certificates;
            the pool then connects over TLS and checks them.
        insecure_remote: allow non-loopback ``remote_workers`` without TLS (trusted
            networks only: the token travels in clear).
        launcher: ``"local"`` (default: processes on this machine) or ``"ray"``: each
            worker runs in a Ray actor placed by Ray, which starts the worker process on
            its node; the pool talks to it directly over TCP (``pip install
            'pysnakepit[ray]'``).
        ray_options: with ``launcher="ray"``, what each worker's actor asks of Ray:
            ``num_cpus``, ``num_gpus``, ``resources``, ``memory``, ``accelerator_type``,
            ``runtime_env``, ``scheduling_strategy``, ``label_selector``.
    """

    adapter: str
    size: int = field(default_factory=_default_size)
    name: str | None = None
    max_queue: int = 1000
    queue_timeout: float | None = None
    timeout: float | None = 60.0
    idempotent_retries: int = 1
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
    start_method: Literal["forkserver", "spawn"] = "forkserver"
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
    session_store: str | SessionStore | None = None
    remote_workers: Sequence[str] | None = None
    token: str | None = field(default=None, repr=False)
    token_file: str | None = None
    tls_ca: str | None = None
    insecure_remote: bool = False
    launcher: Literal["local", "ray"] = "local"
    ray_options: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.adapter, str) or ":" not in self.adapter:
            _bad("adapter", self.adapter, "a string 'pkg.module:Class'")
        # Upper bounds too: a pool builds its slots eagerly (size=10**5000 never returned), and
        # gRPC takes the message limit in bytes as a 32-bit int.
        _int("size", self.size, 1, maximum=MAX_COUNT)
        _int("max_queue", self.max_queue, 0)
        _int("idempotent_retries", self.idempotent_retries, 0)
        _int("max_concurrency", self.max_concurrency, 1, maximum=MAX_COUNT)
        _int("max_restarts", self.max_restarts, 0)
        _int("max_message_mb", self.max_message_mb, 1, maximum=MAX_MESSAGE_MB)
        _int("threads", self.threads, 1, maximum=MAX_COUNT)
        _int("startup_concurrency", self.startup_concurrency, 1, maximum=MAX_COUNT)
        _int("max_requests", self.max_requests, 1, optional=True)
        _int("max_sessions", self.max_sessions, 1, optional=True)
        _seconds("queue_timeout", self.queue_timeout, optional=True)
        _seconds("timeout", self.timeout, optional=True, allow_inf=True)
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
        _choice("start_method", self.start_method, START_METHODS)
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
        if self.name is not None and (
            not isinstance(self.name, str) or _NAME.fullmatch(self.name) is None
        ):
            _bad("name", self.name, NAME_RULE)
        _session_store(self.session_store)
        _placement(self)

    @classmethod
    def from_options(cls, config: PoolConfig | None, options: dict[str, Any]) -> PoolConfig:
        """Merge keyword options over an optional config, rejecting unknown names."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            shown = ", ".join(brief(name, 60) for name in unknown[:10])
            raise ConfigError(
                f"unknown Pool option(s) {shown}{', ...' if len(unknown) > 10 else ''}; "
                f"allowed: {', '.join(sorted(known))}",
                option=unknown[0],
            )
        remote = options.get("remote_workers")
        if "size" not in options and isinstance(remote, list | tuple) and remote:
            options = {**options, "size": len(remote)}  # one slot per remote worker
        if config is None:
            if "adapter" not in options:
                raise ConfigError(
                    "Pool needs an adapter: Pool(adapter='pkg.module:Class', ...), e.g. "
                    "'snakepit.examples.showcase:Showcase'",
                    option="adapter",
                )
            return cls(**options)
        if not isinstance(config, PoolConfig):
            raise ConfigError(
                f"Pool config must be a PoolConfig, got {type(config).__name__}", option="config"
            )
        if not options:
            return config
        merged = {f.name: getattr(config, f.name) for f in fields(cls)}
        merged.update(options)
        return cls(**merged)


def _bad(option: str, value: Any, allowed: str) -> None:
    raise ConfigError(
        f"invalid Pool option {option}={brief(value)}: must be {allowed}", option=option
    )


def _int(
    option: str, value: Any, minimum: int, *, optional: bool = False, maximum: int | None = None
) -> None:
    if value is None and optional:
        return
    if (
        not isinstance(value, int)
        or isinstance(value, bool)
        or value < minimum
        or (maximum is not None and value > maximum)
    ):
        bounds = f">= {minimum}" if maximum is None else f"from {minimum} to {maximum}"
        _bad(option, value, f"an integer {bounds}" + (" or None" if optional else ""))


def _seconds(
    option: str,
    value: Any,
    *,
    optional: bool = False,
    allow_zero: bool = False,
    allow_inf: bool = False,
) -> None:
    if value is None and optional:
        return
    ok = (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and (_finite(value) or (allow_inf and value == math.inf))
        and (value >= 0 if allow_zero else value > 0)
    )
    if not ok:
        rule = ">= 0" if allow_zero else "> 0"
        if allow_inf:
            _bad(option, value, f"a number {rule}, math.inf or None")
        _bad(option, value, f"a finite number {rule}" + (" or None" if optional else ""))


def _session_store(value: Any) -> None:
    if value is None:
        return
    if isinstance(value, str):
        from snakepit.bridge._store_url import parse_store_url

        try:
            parse_store_url(value)
        except ValueError as exc:
            raise ConfigError(
                f"invalid Pool option session_store: {exc}", option="session_store"
            ) from None
        return
    from snakepit.bridge._store import SessionStore

    if not isinstance(value, SessionStore):
        _bad(
            "session_store",
            value,
            "None (in memory), a URL 'redis://host:6379/0', or a SessionStore object",
        )


def _placement(config: PoolConfig) -> None:
    """Where the workers run: local processes, ``remote_workers``, or Ray actors."""
    from snakepit.adapter._listen import ListenError, is_loopback, parse_listen

    _choice("launcher", config.launcher, LAUNCHERS)
    if not isinstance(config.insecure_remote, bool):
        _bad("insecure_remote", config.insecure_remote, "True or False")
    for option in ("token", "token_file", "tls_ca"):
        value = getattr(config, option)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            _bad(option, "<hidden>" if option == "token" else value, "a non-empty string or None")
    if config.token is not None and any(c.isspace() or not c.isprintable() for c in config.token):
        _bad("token", "<hidden>", "printable, without spaces")
    remote = config.remote_workers
    if remote is not None:
        if isinstance(remote, str) or not isinstance(remote, Sequence) or not remote:
            _bad("remote_workers", remote, "a non-empty list of 'host:port' strings")
        for address in remote:
            try:
                host, port = parse_listen(address) if isinstance(address, str) else ("", 0)
            except ListenError:
                host, port = "", 0
            if not port:
                _bad("remote_workers", address, "'host:port' strings with a port 1-65535")
            if not (config.tls_ca or config.insecure_remote or is_loopback(host)):
                raise ConfigError(
                    f"invalid Pool option remote_workers: {brief(address)} is not a loopback "
                    "address, and without TLS the token and every call travel in clear; give "
                    "tls_ca='ca.pem' (and the worker --tls-cert/--tls-key), or "
                    "insecure_remote=True on a trusted network",
                    option="remote_workers",
                )
        if len(set(remote)) != len(remote):
            _bad("remote_workers", remote, "distinct addresses (one slot each)")
        object.__setattr__(config, "remote_workers", tuple(remote))
        if config.size != len(remote):
            _bad("size", config.size, f"the number of remote_workers ({len(remote)}), or left out")
        if (config.token is None) == (config.token_file is None):
            raise ConfigError(
                "invalid Pool options: remote_workers needs exactly one of token= or "
                "token_file= (the token the workers' --token-file holds)",
                option="token",
            )
        if config.launcher != "local":
            _bad("launcher", config.launcher, "'local' with remote_workers (started by hand)")
    elif config.token is not None or config.token_file is not None or config.tls_ca is not None:
        option = next(o for o in ("token", "token_file", "tls_ca") if getattr(config, o))
        raise ConfigError(
            f"invalid Pool option {option}: it is for remote_workers=['host:port', ...]; "
            "local and Ray-placed workers get a fresh token from the pool",
            option=option,
        )
    for option in ("token_file", "tls_ca"):
        path = getattr(config, option)
        if path is not None and not os.access(path, os.R_OK):
            _bad(option, path, "a readable file")
    options = config.ray_options
    if options is not None:
        if config.launcher != "ray":
            _bad("ray_options", options, "None unless launcher='ray'")
        if not isinstance(options, Mapping) or not all(isinstance(k, str) for k in options):
            _bad("ray_options", options, "a dict of actor options")
        unknown = sorted(set(options) - set(RAY_OPTIONS))
        if unknown:
            _bad("ray_options", unknown[0], "one of " + ", ".join(RAY_OPTIONS))


def _finite(value: float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float: no use as seconds
        return False


def _choice(option: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        _bad(option, value, "one of " + ", ".join(map(repr, allowed)))
