"""The fork server: a template process that imports an adapter's module once and forks workers.

``python -m snakepit.adapter._forkserver --adapter pkg.module:Class --control-fd N
--parent-pid P`` imports ``snakepit.adapter``, the worker main and the adapter's
module (and with it the user's heavy imports), freezes the garbage collector's
view of those objects (``gc.freeze``: a collection in a worker does not write
to the pages it shares with the template), and then serves requests from its
host over the control socket (fd ``N``, ``SOCK_SEQPACKET``, one JSON document
a message):

- host → template ``{"op": "spawn", "id": n, "args": [...], "env": {...}, "cwd": ...}``
  with the child's fds 0, 1 and 2 attached (``SCM_RIGHTS``);
- template → host ``{"op": "ready", "pid": p, "native_threads": k}`` once, after the imports,
  or ``{"op": "failed", "message": ..., "code": c}`` before it exits;
- template → host ``{"op": "spawned", "id": n, "pid": p}`` or ``{"op": "error", "id": n, ...}``;
- template → host ``{"op": "exit", "pid": p, "code": c}`` when it has reaped a worker
  (``c`` negative: killed by signal ``-c``).

A forked child becomes a worker exactly as a spawned one: its own session and
process group, the given fds on 0/1/2, the template's control socket and
signal plumbing closed, the given cwd and environment, ``random`` reseeded,
default signal handlers and an unconfigured ``logging``; then it runs
``snakepit.adapter._main.main(args)``, so ``setup()`` runs in each worker. It
does not tie its life to the template (the host supervises the template and
replaces it; workers keep serving): it exits when its stdin reaches EOF, i.e.
when the host is gone.

The template dies with its host: ``PR_SET_PDEATHSIG`` delivers SIGTERM when the
host exits, and so does EOF on the control socket; either way it SIGKILLs
every worker's process group, then exits.

The template is single-threaded when it forks: an adapter module that starts
Python threads at import is refused (exit 6) with a message that says how to
proceed. Native threads (a BLAS pool) are reported to the host, which logs them.

This module is worker side: it never imports the host side, nor gRPC.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import json
import logging
import os
import random
import select
import signal
import socket
import sys
import threading
import traceback
from typing import Any, NoReturn

from snakepit.adapter._process import die_with_parent, exit_now

__all__ = ["EXIT_THREADS", "main"]

EXIT_BAD_ARGS, EXIT_IMPORT, EXIT_THREADS, EXIT_CHILD_SETUP = 2, 3, 6, 7
MAX_MESSAGE = 4 * 1024 * 1024
_STDIO = 3


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m snakepit.adapter._forkserver",
        description="Import an adapter's module once and fork snakepit workers from it.",
    )
    p.add_argument("--adapter", required=True, help="pkg.module:Class of an Adapter subclass")
    p.add_argument("--control-fd", type=int, required=True, help="the host's control socket")
    p.add_argument("--parent-pid", type=int, default=0, help="exit if this process is gone")
    p.add_argument(
        "--preload-grpc",
        action="store_true",
        help="import the gRPC worker's modules too (its workers serve gRPC)",
    )
    return p.parse_args(argv)


class _Template:
    """The serving loop: single-threaded, blocking in ``poll`` when idle."""

    def __init__(self, control: socket.socket) -> None:
        self.control = control
        self.children: set[int] = set()
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_w, False)
        os.set_blocking(self.wake_r, False)

    # -- host messages ------------------------------------------------------------------------

    def send(self, message: dict[str, Any]) -> None:
        with contextlib.suppress(OSError):  # the host is gone: the loop sees EOF next
            self.control.send(json.dumps(message).encode())

    # -- the loop -------------------------------------------------------------------------------

    def install_signals(self) -> None:
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)  # wakes poll via the fd
        signal.set_wakeup_fd(self.wake_w, warn_on_full_buffer=False)
        signal.signal(signal.SIGTERM, self._on_host_gone)
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    def _on_host_gone(self, signum: int, frame: object) -> None:
        self.kill_children_and_exit()

    def kill_children_and_exit(self) -> NoReturn:
        for pid in list(self.children):
            with contextlib.suppress(OSError):
                os.killpg(pid, signal.SIGKILL)
        exit_now(0)

    def serve(self) -> NoReturn:
        poller = select.poll()
        poller.register(self.control.fileno(), select.POLLIN)
        poller.register(self.wake_r, select.POLLIN)
        while True:
            for fd, _ in poller.poll():
                if fd == self.wake_r:
                    with contextlib.suppress(OSError):
                        os.read(self.wake_r, 4096)
                    self.reap()
                else:
                    self.receive()

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self.children.discard(pid)
            self.send({"op": "exit", "pid": pid, "code": os.waitstatus_to_exitcode(status)})

    def receive(self) -> None:
        try:
            data, fds, _flags, _addr = socket.recv_fds(self.control, MAX_MESSAGE, _STDIO)
        except InterruptedError:  # pragma: no cover - PEP 475 retries
            return
        except OSError:
            data, fds = b"", []
        if not data:  # EOF: the host closed the channel or died
            for fd in fds:
                os.close(fd)
            self.kill_children_and_exit()
        try:
            request = json.loads(data)
            if request.get("op") != "spawn" or len(fds) != _STDIO:
                raise ValueError(f"unexpected request {request!r} with {len(fds)} fds")
            self.spawn(request, fds)
        except Exception as exc:
            self.send(
                {"op": "error", "id": _id_of(data), "message": f"{type(exc).__name__}: {exc}"}
            )
        finally:
            for fd in fds:
                with contextlib.suppress(OSError):
                    os.close(fd)  # the child has its copies; holding them would hide its EOFs

    def spawn(self, request: dict[str, Any], fds: list[int]) -> None:
        args = [str(a) for a in request["args"]]
        env = {str(k): str(v) for k, v in dict(request["env"]).items()}
        cwd = request.get("cwd")
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()  # or each child would write the template's buffered output again
        gc.freeze()
        # Until the parent has recorded the child, a host-death signal must wait: the handler
        # kills what it knows of.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGCHLD})
        try:
            pid = os.fork()
            if pid == 0:
                self._become_worker(args, env, cwd, fds)
            self.children.add(pid)
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGCHLD})
        self.send({"op": "spawned", "id": request["id"], "pid": pid})

    def _become_worker(
        self, args: list[str], env: dict[str, str], cwd: str | None, fds: list[int]
    ) -> NoReturn:
        try:
            os.setsid()
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            signal.pthread_sigmask(signal.SIG_SETMASK, set())
            os.close(self.control.detach())
            os.close(self.wake_r)
            os.close(self.wake_w)
            for target, fd in enumerate(fds):
                os.dup2(fd, target)
            for fd in fds:
                os.close(fd)
            fds.clear()
            if cwd:
                os.chdir(cwd)
            os.environ.clear()
            os.environ.update(env)
            random.seed()
            _reset_logging()
            sys.argv = ["snakepit.adapter", *args]
        except BaseException as exc:
            with contextlib.suppress(OSError):
                os.write(2, f"snakepit fork server: cannot prepare the worker: {exc}\n".encode())
            os._exit(EXIT_CHILD_SETUP)
        try:
            from snakepit.adapter._main import main as worker_main

            worker_main(args, watch_parent=False)
        except BaseException:
            with contextlib.suppress(Exception):
                traceback.print_exc()
        exit_now(1)


def _id_of(data: bytes) -> Any:
    try:
        return json.loads(data).get("id")
    except (ValueError, AttributeError):
        return None


def _reset_logging() -> None:
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.setLevel(logging.WARNING)


def _die_with_parent(parent_pid: int) -> None:
    """SIGTERM (caught: the workers go first) when the host dies; leave now if it has."""
    if not die_with_parent(parent_pid, signal.SIGTERM):
        exit_now(0)


def _native_threads() -> int:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return threading.active_count()


def _fail(control: socket.socket, code: int, message: str) -> NoReturn:
    sys.stderr.write(message + "\n")
    with contextlib.suppress(OSError):
        control.send(json.dumps({"op": "failed", "code": code, "message": message}).encode())
    exit_now(code)


def main(argv: list[str] | None = None) -> NoReturn:
    """Import the adapter's module, then fork workers on request until the host goes."""
    try:
        args = _parse(argv)
    except SystemExit as exc:
        sys.stderr.flush()
        os._exit(exc.code if isinstance(exc.code, int) else EXIT_BAD_ARGS)
    control = socket.socket(fileno=args.control_fd)
    control.setblocking(True)
    template = _Template(control)
    # Signals first: a host that dies during the (possibly long) imports is noticed.
    template.install_signals()
    _die_with_parent(args.parent_pid)
    module_name = args.adapter.partition(":")[0]
    try:
        import snakepit.adapter
        import snakepit.adapter._local
        import snakepit.adapter._main

        if args.preload_grpc:  # imported only: no channel, server or thread exists before a fork
            import grpc_health.v1.health  # noqa: F401

            import snakepit.adapter._service

        importlib.import_module(module_name)
    except BaseException as exc:
        hint = None
        if isinstance(exc, ModuleNotFoundError):
            hint = snakepit.adapter._main.import_hint(module_name, exc)
        _fail(
            control,
            EXIT_IMPORT,
            hint
            or f"cannot load adapter {args.adapter}: importing {module_name!r} failed:\n"
            + traceback.format_exc(),
        )
    others = [t.name for t in threading.enumerate() if t is not threading.main_thread()]
    if others:
        _fail(
            control,
            EXIT_THREADS,
            f"the fork server cannot fork from {args.adapter}: importing {module_name!r} "
            f"started {len(others)} thread(s) ({', '.join(map(repr, others))}), which a fork "
            "would copy half-alive; start them in setup() instead, or use "
            "start_method='spawn'",
        )
    gc.collect()
    gc.freeze()
    template.send({"op": "ready", "pid": os.getpid(), "native_threads": _native_threads()})
    template.serve()


if __name__ == "__main__":
    main()
