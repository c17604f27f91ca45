"""The worker process: ``python -m snakepit.adapter --adapter pkg.module:Class ...``.

With ``--local`` (the default transport) the host passes one end of a socket
pair as stdin; the worker speaks frames on it (:mod:`snakepit.adapter._local`,
specified in ``proto/snakepit/v1/FRAMING.md``), announces readiness with a
``READY`` frame, and exits when it reads EOF there. No gRPC is imported.

With ``--socket``/``--tcp`` (gRPC), the start-up order is: watch the host (stdin EOF and the parent-death signal), import
and set up the adapter, start the gRPC server on a Unix socket in the given
private directory (or TCP port 0), then print exactly one ready line on
stdout::

    SNAKEPIT_READY {"address": "unix:/run/.../w1.sock", "pid": 1234, "protocol": "1"}

After that, stdout is pointed at stderr (a stray ``print`` in a tool cannot
fill a pipe nobody reads) and logs go to stderr, which the host forwards to
``logging``. The process exits by itself when its stdin closes (the host
died), on SIGTERM (graceful), or on SIGKILL.

Exit codes: 0 normal, 2 bad command line, 3 adapter import failed, 4 setup
failed, 5 server could not bind.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import logging
import os
import signal
import sys
import threading
import traceback
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, NoReturn

from snakepit._wire._constants import PROTOCOL_VERSION, READY_PREFIX
from snakepit._wire._token import token_interceptor
from snakepit.adapter._process import die_with_parent, exit_now

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Awaitable, Callable

__all__ = ["READY_PREFIX", "load_adapter", "main"]

EXIT_BAD_ARGS, EXIT_IMPORT, EXIT_SETUP, EXIT_BIND = 2, 3, 4, 5
log = logging.getLogger("snakepit.adapter")


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m snakepit.adapter", description="Run a snakepit worker process."
    )
    p.add_argument("--adapter", required=True, help="pkg.module:Class of an Adapter subclass")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument(
        "--local",
        action="store_true",
        help="serve the local transport: frames on the socket passed as stdin (fd 0)",
    )
    where.add_argument("--socket", help="path of the Unix socket to serve on")
    where.add_argument("--tcp", metavar="HOST", help="serve on HOST:<free port> instead")
    where.add_argument("--listen", metavar="HOST:PORT", help="serve on HOST:PORT (remote use)")
    p.add_argument("--tls-cert", help="with --listen: serve TLS with this PEM certificate chain")
    p.add_argument("--tls-key", help="with --listen: the PEM private key of --tls-cert")
    p.add_argument("--worker-id", default=f"worker-{os.getpid()}")
    p.add_argument("--threads", type=int, default=4, help="threads for synchronous tools")
    p.add_argument("--parent-pid", type=int, default=0, help="exit if this process is gone")
    p.add_argument("--max-message-bytes", type=int, default=256 * 1024 * 1024)
    p.add_argument("--allow-pickle", action="store_true")
    p.add_argument("--log-level", default="INFO")
    p.add_argument("--no-stdin-watch", action="store_true", help="do not exit on stdin EOF")
    p.add_argument(
        "--secrets-stdin",
        action="store_true",
        help="read the pool's tokens (a JSON object on one line) first thing from stdin",
    )
    return p.parse_args(argv)


def _read_secrets(enabled: bool) -> dict[str, str]:
    """The tokens the host wrote as the first line of our stdin (its pipe, our lifeline).

    They never travel in the environment or on the command line: ``/proc/<pid>/environ``
    is readable by every process of the same user, and what a tool starts would inherit
    them.
    """
    if not enabled:
        return {}
    values = json.loads(sys.stdin.buffer.readline())
    if not isinstance(values, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in values.items()
    ):
        raise ValueError("the secrets line must hold a JSON object of strings")
    return values


def _die_with_parent(parent_pid: int) -> None:
    """SIGKILL when the host dies; leave now if it already has."""
    if not die_with_parent(parent_pid, signal.SIGKILL):
        log.error("the host (pid %d) is already gone; exiting", parent_pid)
        os._exit(0)


def _watch_stdin(on_eof: Callable[[], None]) -> None:
    def run() -> None:
        try:
            while sys.stdin.buffer.read(4096):
                pass
        except (OSError, ValueError):
            pass
        on_eof()

    threading.Thread(target=run, name="snakepit-stdin-watch", daemon=True).start()


def load_adapter(path: str) -> Any:
    module_name, _, class_name = path.partition(":")
    if not module_name or not class_name:
        raise ValueError(f"--adapter must look like 'pkg.module:Class', got {path!r}")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        hint = import_hint(module_name, exc)
        if hint is None:
            raise
        raise ImportError(hint) from exc
    try:
        cls = getattr(module, class_name)
    except AttributeError:
        raise ValueError(f"module {module_name!r} has no attribute {class_name!r}") from None
    from snakepit.adapter import Adapter

    if not (isinstance(cls, type) and issubclass(cls, Adapter)):
        raise TypeError(f"{path} is not a subclass of snakepit.adapter.Adapter")
    return cls()


def import_hint(module_name: str, exc: ModuleNotFoundError) -> str | None:
    """Why an adapter module did not import, where the worker looked, and how to fix it;
    None when the module itself was found and something it imports is missing."""
    if exc.name is None or not (module_name + ".").startswith(exc.name + "."):
        return None
    searched = "\n".join(f"    {p or '(current directory)'}" for p in sys.path)
    return (
        f"cannot import the adapter module {module_name!r}: {exc}\n"
        f"  the worker ({sys.executable}, cwd {os.getcwd()}) searched sys.path:\n{searched}\n"
        "  fix: give the Pool cwd='<the directory that contains it>' or "
        "env={'PYTHONPATH': '<that directory>'}, or install your package into this "
        "interpreter (pip install -e .)"
    )


async def _maybe_await(result: Awaitable[None] | None) -> None:
    if inspect.isawaitable(result):
        await result


async def _serve(args: argparse.Namespace, secrets: dict[str, str]) -> int:
    import asyncio  # lazily: a worker without async tools never loads it

    import grpc
    from grpc_health.v1 import health, health_pb2, health_pb2_grpc

    from snakepit._proto.snakepit.v1 import worker_pb2_grpc as pb_grpc
    from snakepit.adapter import _host_client as host_client
    from snakepit.adapter._service import WorkerServicer

    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    if not args.no_stdin_watch:
        _watch_stdin(lambda: _on_host_gone(loop, stopping))

    try:
        adapter = load_adapter(args.adapter)
    except ImportError as exc:
        if isinstance(exc.__cause__, ModuleNotFoundError):  # import_hint says it all
            log.error("cannot load adapter %s: %s", args.adapter, exc)
        else:
            log.error("cannot load adapter %s:\n%s", args.adapter, traceback.format_exc())
        return EXIT_IMPORT
    except Exception:
        log.error("cannot load adapter %s:\n%s", args.adapter, traceback.format_exc())
        return EXIT_IMPORT
    try:
        await _maybe_await(adapter.setup())
    except Exception:
        log.error("setup() of %s failed:\n%s", args.adapter, traceback.format_exc())
        return EXIT_SETUP

    limit = args.max_message_bytes
    options = [
        ("grpc.max_send_message_length", limit),
        ("grpc.max_receive_message_length", limit),
        ("grpc.so_reuseport", 0),
    ]
    token = secrets.get("token", "")
    # The host bridge's address (session variables, host tools); connected on first use.
    host_client.configure_from_environ(
        worker_id=args.worker_id,
        max_message_bytes=limit,
        allow_pickle=args.allow_pickle,
        token=secrets.get("host_token", ""),
    )
    interceptors = [token_interceptor(token)] if token else []
    server = grpc.aio.server(options=options, interceptors=interceptors)
    executor = ThreadPoolExecutor(max_workers=max(1, args.threads), thread_name_prefix="tool")
    servicer = WorkerServicer(
        adapter,
        adapter_path=args.adapter,
        worker_id=args.worker_id,
        executor=executor,
        allow_pickle=args.allow_pickle,
        max_message_bytes=limit,
    )
    pb_grpc.add_WorkerServiceServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]
    health_servicer = health.aio.HealthServicer()  # type: ignore[attr-defined]
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    try:
        if args.socket:
            address = f"unix:{args.socket}"
            server.add_insecure_port(address)
        elif args.listen:
            from snakepit.adapter._listen import bind

            address = bind(server, args.listen, tls_cert=args.tls_cert, tls_key=args.tls_key)
        else:
            port = server.add_insecure_port(f"{args.tcp}:0")
            host = f"[{args.tcp}]" if ":" in args.tcp else args.tcp
            address = f"{host}:{port}"
        await server.start()
        if args.socket:
            # Only this user may connect; the host learns the address only after this.
            os.chmod(args.socket, 0o600)
    except Exception:
        where = args.socket or args.tcp or args.listen
        log.error("cannot serve on %s:\n%s", where, traceback.format_exc())
        return EXIT_BIND
    serving = health_pb2.HealthCheckResponse.SERVING
    await health_servicer.set("", serving)
    await health_servicer.set("snakepit.v1.WorkerService", serving)

    ready = {"address": address, "pid": os.getpid(), "protocol": PROTOCOL_VERSION}
    os.write(1, (READY_PREFIX + json.dumps(ready) + "\n").encode())
    os.dup2(2, 1)  # from now on a stray print() lands in the forwarded log, not a full pipe

    await stopping.wait()
    log.info("worker %s stopping", args.worker_id)
    await health_servicer.enter_graceful_shutdown()
    await server.stop(grace=1.0)
    try:
        await asyncio.wait_for(_maybe_await(adapter.teardown()), timeout=5.0)
    except Exception:
        log.warning("teardown() of %s failed:\n%s", args.adapter, traceback.format_exc())
    return 0


def _on_host_gone(loop: asyncio.AbstractEventLoop, stopping: asyncio.Event) -> None:
    log.warning("stdin closed: the host is gone; exiting")
    # A tool stuck in native code would block a graceful stop: give it a bound, then leave.
    threading.Timer(3.0, exit_now, args=(0,)).start()
    try:
        loop.call_soon_threadsafe(stopping.set)
    except RuntimeError:
        os._exit(0)


def main(
    argv: list[str] | None = None,
    *,
    watch_parent: bool = True,
    secrets: dict[str, str] | None = None,
) -> NoReturn:
    """Run a worker until it is told to stop; never returns.

    ``watch_parent=False`` (a worker forked by the fork server) does not tie the worker's
    life to its parent process, the template, which may die and be replaced while the
    worker serves; the worker still exits when its stdin reaches EOF (the host is gone).
    """
    try:
        args = _parse(argv)
    except SystemExit as exc:
        sys.stderr.flush()
        os._exit(exc.code if isinstance(exc.code, int) else EXIT_BAD_ARGS)
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format=f"%(levelname)s [{args.worker_id}] %(name)s: %(message)s",
    )
    try:
        if secrets is None:  # else the caller (`snakepit worker`) read them itself
            secrets = _read_secrets(args.secrets_stdin)  # first, before anything can fork
    except (OSError, ValueError) as exc:
        log.error("cannot read the secrets line on stdin: %s", exc)
        exit_now(EXIT_BAD_ARGS)
    if watch_parent:
        _die_with_parent(args.parent_pid)
    if args.local:
        from snakepit.adapter import _local

        exit_now(_local.serve(args, load_adapter, exit_now))
    import asyncio  # lazily: a worker without async tools never loads it

    exit_now(asyncio.run(_serve(args, secrets)))
