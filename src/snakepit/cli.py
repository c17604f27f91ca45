"""The snakepit command: demo, doctor, status, worker and bench."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

__all__ = ["main"]

_SHOWCASE = "snakepit.examples.showcase:Showcase"


_DEMO_TOOLS = frozenset({"add", "count", "remember", "pid", "recall", "fail", "crash", "hang"})


class _DemoError(Exception):
    """Raised when the demo cannot run with the adapter it was given."""


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


class _Printer:
    def __init__(self) -> None:
        self.t0 = time.perf_counter()

    def step(self, title: str) -> None:
        print(f"\n== {title}", flush=True)

    def line(self, text: str) -> None:
        print(f"   {text}", flush=True)


async def _demo(size: int, adapter: str) -> int:
    import snakepit
    from snakepit.events import WorkerReady

    out = _Printer()
    out.step(f"starting a pool of {size} workers ({adapter})")
    t = time.perf_counter()
    async with snakepit.Pool(adapter=adapter, size=size, heartbeat_interval=5.0) as pool:
        out.line(f"ready in {_ms(time.perf_counter() - t)}: {pool!r}")
        missing = sorted(_DEMO_TOOLS - set(pool.tools))
        if missing:
            raise _DemoError(
                f"the demo calls the showcase's tools and {adapter} lacks "
                f"{', '.join(missing)}; run it with the default adapter ({_SHOWCASE}), and "
                f"try yours with: snakepit doctor --adapter {adapter}"
            )
        for w in pool.workers():
            out.line(f"{w.id}: pid {w.pid} at {w.address}")

        out.step("200 parallel calls of add(a, b)")
        t = time.perf_counter()
        results = await asyncio.gather(*(pool.execute("add", {"a": i, "b": i}) for i in range(200)))
        elapsed = time.perf_counter() - t
        assert results == [2 * i for i in range(200)]
        used = {w.id: w.requests for w in pool.workers()}
        out.line(f"all 200 correct in {_ms(elapsed)} ({200 / elapsed:,.0f} calls/s)")
        out.line(f"requests per worker: {used}")

        out.step("a stream: count(n=2000)")
        t = time.perf_counter()
        n = 0
        async for chunk in pool.stream("count", {"n": 2000}):
            assert chunk == {"i": n}
            n += 1
        elapsed = time.perf_counter() - t
        out.line(f"{n} chunks in order in {_ms(elapsed)} ({n / elapsed:,.0f} chunks/s)")

        out.step("a session: worker-local state stays reachable")
        async with pool.session("demo-user") as session:
            await session.execute("remember", {"key": "model", "value": "loaded"})
            pids = {await session.execute("pid") for _ in range(5)}
            recalled = await session.execute("recall", {"key": "model"})
            out.line(
                f"session {session.id} ran on {session.worker_id} (pids seen: {pids}); "
                f"recall -> {recalled!r}"
            )

        out.step("a tool error carries the remote traceback")
        try:
            await pool.execute("fail", {"message": "bad input"})
        except snakepit.ToolError as exc:
            out.line(f"ToolError: {exc.message} (remote type {exc.remote_type})")

        await _recover(
            out,
            pool,
            "a crash and its recovery: crash(code=3) kills a worker mid-call",
            lambda: pool.execute("crash", {"code": 3}),
            WorkerReady,
        )
        await _recover(
            out,
            pool,
            "a timeout and its recovery: hang() with timeout=0.5s",
            lambda: pool.execute("hang", timeout=0.5),
            WorkerReady,
        )

        out.step("final state")
        stats = pool.stats()
        out.line(repr(pool))
        out.line(
            f"requests {stats.requests}, completed {stats.completed}, errors {stats.errors}, "
            f"timeouts {stats.timeouts}, crashes {stats.crashes}, restarts {stats.restarts}"
        )
    out.line(f"pool closed; no worker left behind. total {_ms(time.perf_counter() - out.t0)}")
    return 0


async def _recover(
    out: _Printer, pool: Any, title: str, call: Callable[[], Awaitable[Any]], ready: type
) -> None:
    import snakepit

    out.step(title)
    sub = pool.events.subscribe(ready)
    t = time.perf_counter()
    try:
        await call()
    except (snakepit.WorkerCrashedError, snakepit.ExecutionTimeoutError) as exc:
        out.line(
            f"{type(exc).__name__} after {_ms(time.perf_counter() - t)}: {str(exc).splitlines()[0]}"
        )
    event = await asyncio.wait_for(sub.get(), 30)
    sub.close()
    out.line(
        f"replacement {event.worker_id} (pid {event.pid}) ready {_ms(time.perf_counter() - t)} "
        f"after the failure; pool: {pool!r}"
    )
    value = await pool.execute("add", {"a": 20, "b": 22})
    out.line(f"next call works: add(20, 22) = {value}")


# -- doctor --------------------------------------------------------------------------------------


def _check(name: str, ok: bool, detail: str, fix: str = "") -> bool:
    mark = "ok  " if ok else "FAIL"
    print(f"[{mark}] {name}: {detail}")
    if not ok and fix:
        print(f"       fix: {fix}")
    return ok


# Run by the interpreter under test (--python): what a worker would find there.
_PROBE = r"""
import importlib, json, sys
out = {"version": sys.version.split()[0], "executable": sys.executable,
       "ok": sys.version_info >= (3, 11), "modules": {}}
for name in ("grpc", "google.protobuf", "psutil", "grpc_health.v1.health", "snakepit.adapter"):
    try:
        mod = importlib.import_module(name)
        out["modules"][name] = [True, getattr(mod, "__version__", "") or "installed"]
    except Exception as exc:
        out["modules"][name] = [False, f"{type(exc).__name__}: {exc}"]
module, _, cls = sys.argv[1].partition(":")
try:
    from snakepit.adapter import Adapter
    target = getattr(importlib.import_module(module), cls)
    if not (isinstance(target, type) and issubclass(target, Adapter)):
        raise TypeError(f"{sys.argv[1]} is not a subclass of snakepit.Adapter")
    out["adapter"] = [True, ", ".join(sorted(target.tools())) or "no tools"]
except Exception as exc:
    out["adapter"] = [False, f"{type(exc).__name__}: {exc}"]
print(json.dumps(out))
"""
_DISTS = {
    "grpc": "grpcio",
    "google.protobuf": "protobuf",
    "psutil": "psutil",
    "grpc_health.v1.health": "grpcio-health-checking",
    "snakepit.adapter": "pysnakepit",
}


def _probe(adapter: str, python: str) -> dict[str, Any] | str:
    """What ``python`` reports about itself and the adapter, or why it cannot run."""
    import json

    from snakepit.worker._paths import PACKAGE_ROOT, worker_pythonpath

    env = dict(os.environ)
    env["PYTHONPATH"] = worker_pythonpath(env.get("PYTHONPATH", ""), PACKAGE_ROOT)
    try:
        done = subprocess.run(
            [python, "-c", _PROBE, adapter],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return f"cannot run {python!r}: {exc}"
    try:
        info: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return (
            f"{python!r} is not a working Python interpreter (exit code {done.returncode}: {tail})"
        )
    return info


def _doctor(adapter: str, python: str) -> int:
    module, _, cls = adapter.partition(":")
    if not module or not cls:
        print(
            f"snakepit doctor: --adapter must be 'pkg.module:Class' (a colon before the class), "
            f"got {adapter!r}"
            + (
                f"; did you mean {module.rpartition('.')[0]}:{module.rpartition('.')[2]}?"
                if "." in module and not cls
                else ""
            ),
            file=sys.stderr,
        )
        return 2
    results = []
    info = _probe(adapter, python)
    if isinstance(info, str):
        _check("python", False, info, "pass --python the path of a Python 3.11+ interpreter")
        print("\nsome checks failed (see fixes above)")
        return 1
    results.append(
        _check(
            "python",
            bool(info["ok"]),
            f"{info['version']} at {info['executable']}",
            "install Python 3.11 or newer",
        )
    )
    for module_name, (ok, detail) in info["modules"].items():
        dist = _DISTS[module_name]
        results.append(_check(dist, ok, detail, f"{python} -m pip install {dist}"))
    try:
        from snakepit.worker._runtime import make_runtime_dir, remove_runtime_dir

        d = make_runtime_dir("doctor")
        path = os.path.join(d, "probe.sock")
        with socket.socket(socket.AF_UNIX) as s:
            s.bind(path)
        remove_runtime_dir(d)
        results.append(_check("socket dir", True, f"Unix sockets work under {os.path.dirname(d)}"))
    except OSError as exc:
        results.append(
            _check(
                "socket dir",
                False,
                str(exc),
                "set XDG_RUNTIME_DIR or TMPDIR to a short writable directory, "
                "or use transport='tcp'",
            )
        )
    ok, detail = info["adapter"]
    results.append(
        _check(
            "adapter",
            ok,
            f"{adapter} importable by {python} (tools: {detail})" if ok else detail,
            "check the module path (run doctor from your project directory) and that the "
            "worker's interpreter has the package (pip install it into that environment)",
        )
    )
    if all(results):
        results.append(_worker_check(adapter, python))
    print("\nall checks passed" if all(results) else "\nsome checks failed (see fixes above)")
    return 0 if all(results) else 1


def _worker_check(adapter: str, python: str) -> bool:
    from snakepit.testing._servers import with_python_server

    # The failure is reported below, in full; the worker's own log lines would repeat it.
    # Muted for this check only: doctor may run inside a program with logging of its own.
    worker_log = logging.getLogger("snakepit.worker")
    level = worker_log.level
    worker_log.setLevel(logging.CRITICAL + 1)

    async def run() -> float:
        t = time.perf_counter()
        async with with_python_server(adapter, python=python) as w:
            await w.ping(timeout=10)
            return time.perf_counter() - t

    try:
        took = asyncio.run(run())
    except Exception as exc:
        # The whole reason (a failing setup()'s traceback is in the worker's stderr tail).
        lines = str(exc).splitlines()
        detail = lines[0] + "".join(f"\n       | {line}" for line in lines[1:])
        return _check(
            "worker",
            False,
            detail,
            "fix what the reason above says, then run snakepit doctor again",
        )
    finally:
        worker_log.setLevel(level)
    return _check("worker", True, f"started, answered Ping and stopped in {_ms(took)}")


# -- worker: serve one worker for a pool on another machine ---------------------------------------


def _worker_command(argv: list[str]) -> int:
    """``snakepit worker --adapter pkg.mod:Class --listen HOST:PORT --token-file F [TLS]``.

    Checks what an operator can get wrong before anything starts (the address, TLS for
    anything beyond loopback, the token file), then becomes the worker: it serves until
    SIGTERM or Ctrl-C and never returns. See docs/scaling.md.
    """
    from snakepit.adapter._listen import ListenError, is_loopback, parse_listen

    p = argparse.ArgumentParser(
        prog="snakepit worker",
        description="Serve one worker over TCP for a pool on another machine "
        "(Pool(remote_workers=['host:port'], token_file=..., tls_ca=...)).",
    )
    p.add_argument("--adapter", required=True, help="pkg.module:Class of an Adapter subclass")
    p.add_argument("--listen", required=True, metavar="HOST:PORT", help="address to serve on")
    p.add_argument("--token-file", required=True, help="file holding the token pools must send")
    p.add_argument("--tls-cert", help="PEM certificate chain (required beyond loopback)")
    p.add_argument("--tls-key", help="PEM private key of --tls-cert")
    p.add_argument(
        "--insecure",
        action="store_true",
        help="allow a non-loopback --listen without TLS (the token then travels in clear)",
    )
    p.add_argument("--threads", type=int, default=4, help="threads for synchronous tools")
    p.add_argument("--max-message-mb", type=int, default=256)
    p.add_argument("--allow-pickle", action="store_true", help="for pools with pickle")
    p.add_argument("--worker-id", default=None, help="name in this worker's log lines")
    p.add_argument("--log-level", default="INFO")
    args = p.parse_args(argv)

    def refuse(message: str) -> int:
        print(f"snakepit worker: {message}", file=sys.stderr)
        return 2

    if ":" not in args.adapter:
        return refuse(f"--adapter must be 'pkg.module:Class', got {args.adapter!r}")
    try:
        host, _port = parse_listen(args.listen)
    except ListenError as exc:
        return refuse(str(exc))
    if bool(args.tls_cert) != bool(args.tls_key):
        return refuse("--tls-cert and --tls-key go together: give both or neither")
    if not args.tls_cert and not is_loopback(host) and not args.insecure:
        return refuse(
            f"--listen {args.listen} is reachable from other machines, and without TLS the "
            "token and every call travel in clear: give --tls-cert and --tls-key (and the "
            "pool tls_ca=), or --insecure if the network is trusted"
        )
    for path in filter(None, (args.tls_cert, args.tls_key)):
        if not os.access(path, os.R_OK):
            return refuse(f"cannot read {path!r}")
    try:
        with open(args.token_file, encoding="utf-8") as f:
            token = f.read().strip()
    except (OSError, UnicodeDecodeError) as exc:
        return refuse(f"cannot read --token-file {args.token_file!r}: {exc}")
    if not token or any(c.isspace() or not c.isprintable() for c in token):
        return refuse(
            f"--token-file {args.token_file!r} must hold one token (printable, no spaces), "
            "e.g. python -c 'import secrets; print(secrets.token_hex(32))' > FILE"
        )
    if args.threads < 1 or args.max_message_mb < 1:
        return refuse("--threads and --max-message-mb must be >= 1")
    worker_argv = [
        "--adapter",
        args.adapter,
        "--listen",
        args.listen,
        "--threads",
        str(args.threads),
        "--max-message-bytes",
        str(args.max_message_mb * 1024 * 1024),
        "--log-level",
        args.log_level,
        "--no-stdin-watch",
        *(["--worker-id", args.worker_id] if args.worker_id else []),
        *(["--tls-cert", args.tls_cert, "--tls-key", args.tls_key] if args.tls_cert else []),
        *(["--allow-pickle"] if args.allow_pickle else []),
    ]
    from snakepit.adapter._main import main as worker_main

    worker_main(worker_argv, watch_parent=False, secrets={"token": token})


# -- entry point ---------------------------------------------------------------------------------


def _add_version_and_status(parser: argparse.ArgumentParser, sub: Any) -> None:
    """``--version`` and the ``status`` sub-command."""
    from snakepit import __version__
    from snakepit._status_cli import add_status_parser

    parser.add_argument(
        "--version", action="version", version=f"snakepit {__version__}", help="print the version"
    )
    add_status_parser(sub)


def main(argv: list[str] | None = None) -> int:
    from snakepit._bench import add_bench_parser, run_bench_command

    parser = argparse.ArgumentParser(
        prog="snakepit",
        description="A supervised pool of worker processes: try it, check it, watch it.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = sub.add_parser("demo", help="run a pool of the showcase adapter and show what it does")
    demo.add_argument("--size", type=int, default=4, help="worker processes (default: 4)")
    demo.add_argument(
        "--adapter", default=_SHOWCASE, help=f"module:Class of the adapter (default: {_SHOWCASE})"
    )
    doctor = sub.add_parser("doctor", help="check this environment and say how to fix problems")
    doctor.add_argument(
        "--adapter", default=_SHOWCASE, help="module:Class of the adapter to try starting"
    )
    doctor.add_argument(
        "--python",
        default=sys.executable,
        help="the interpreter the workers would run (default: this one)",
    )
    add_bench_parser(sub)
    sub.add_parser("worker", help="serve one worker for a pool on another machine", add_help=False)
    _add_version_and_status(parser, sub)
    args, rest = parser.parse_known_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    if args.command == "worker":
        return _worker_command(rest)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if args.command == "bench":
        return run_bench_command(args)
    if args.command == "status":
        from snakepit._status_cli import run_status

        return run_status(args)
    if args.command == "demo":
        if args.size < 1:
            parser.error("--size must be >= 1")
        from snakepit.errors import SnakepitError

        try:
            return asyncio.run(_demo(args.size, args.adapter))
        except KeyboardInterrupt:
            return 130
        except (SnakepitError, _DemoError, ValueError) as exc:
            print(f"\nsnakepit demo: {exc}", file=sys.stderr)
            return 1
    return _doctor(args.adapter, args.python)


if __name__ == "__main__":
    sys.exit(main())
