"""The host's side of the fork server (``start_method="forkserver"``).

A :class:`ForkServer` is a :class:`~snakepit.worker._launch.Launcher` for one
pool. On its first launch it starts a template process
(``python -m snakepit.adapter._forkserver``, see there) that imports the
adapter's module once; every worker after that is a fork of the template,
requested over a ``SOCK_SEQPACKET`` socketpair that carries the worker's
arguments, environment and cwd, with its fds 0/1/2 attached (``SCM_RIGHTS``).

The template reports each worker's exit status; :meth:`ForkedProcess.wait`
resolves from that report. Each worker is also watched through a pidfd: if the
template dies, its workers keep serving (they are not tied to it), the next
launch starts a new template, and a worker of the dead template that exits
later is noticed through its pidfd, with an unknown exit code (``None``: it
was reaped by init, not by us).

No orphans: the template gets ``PR_SET_PDEATHSIG`` tied to the host and also
exits on EOF of the control socket, killing its workers' process groups
first; and it is recorded in the pool's process registry, so the next pool
sweeps it (its workers are recorded there too) after a host SIGKILL.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import itertools
import json
import logging
import os
import select
import signal
import socket
import subprocess
import sys
from typing import TYPE_CHECKING, Any

from snakepit.worker._handle import printable
from snakepit.worker._launch import DEVNULL, PIPE, LaunchError

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from snakepit.worker._launch import StdioSpec, WorkerProcess
    from snakepit.worker._registry import ProcessRegistry

__all__ = ["ForkServer", "ForkedProcess", "effective_start_method", "forkserver_available"]

log = logging.getLogger("snakepit.forkserver")

WORKER_MODULE = "snakepit.adapter"
TEMPLATE_MODULE = "snakepit.adapter._forkserver"
_MAX_MESSAGE = 1024 * 1024
_OUTPUT_TAIL = 40
_STOP_TIMEOUT = 5.0


def forkserver_available() -> bool:
    """Whether this platform has what the fork server needs (fork, pidfds, SCM_RIGHTS)."""
    return (
        sys.platform.startswith("linux")
        and hasattr(os, "pidfd_open")
        and hasattr(socket, "send_fds")
        and hasattr(socket, "SOCK_SEQPACKET")
    )


def effective_start_method(start_method: str, python: str) -> str:
    """``"forkserver"`` when asked for and possible: a worker on this very interpreter (a
    fork of another interpreter is impossible), on a platform with what the server needs."""
    if start_method != "forkserver" or not forkserver_available():
        return "spawn"
    if os.path.abspath(python) != os.path.abspath(sys.executable):
        return "spawn"
    return "forkserver"


class _TemplateGone(Exception):
    """The template died before it answered a request (the launch is retried once)."""


class _Exit:
    """A forked worker's end, as the template reports it or (template gone) its pidfd shows."""

    def __init__(self, loop: asyncio.AbstractEventLoop, pid: int, template: _Template) -> None:
        self.pid = pid
        self.template = template
        self.future: asyncio.Future[int | None] = loop.create_future()
        self._loop = loop
        self._gone = False  # its pidfd said so; the template's report may still be on its way
        self._pidfd: int | None = None
        try:
            self._pidfd = os.pidfd_open(pid)
        except OSError:  # already reaped: the template's report is behind the reply
            return
        loop.add_reader(self._pidfd, self._on_pidfd)

    def _on_pidfd(self) -> None:
        self._gone = True
        self._unwatch()
        if not self.template.alive:
            self.resolve(None)

    def template_died(self) -> None:
        if self._gone or self._pidfd is None or _readable(self._pidfd):
            self.resolve(None)

    def resolve(self, code: int | None) -> None:
        self._unwatch()
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None
        if not self.future.done():
            self.future.set_result(code)

    def _unwatch(self) -> None:
        if self._pidfd is not None:
            self._loop.remove_reader(self._pidfd)


def _readable(fd: int) -> bool:
    readable, _, _ = select.select([fd], [], [], 0)
    return bool(readable)


def _kill_unowned(future: asyncio.Future[_Exit]) -> None:
    if not future.cancelled() and future.exception() is None:
        with contextlib.suppress(OSError):
            os.kill(future.result().pid, signal.SIGKILL)  # it may not lead its group yet


class ForkedProcess:
    """A worker forked by the template: what a handle needs of a process."""

    def __init__(
        self,
        exit_: _Exit,
        stdout: asyncio.StreamReader | None,
        stderr: asyncio.StreamReader | None,
        stdin_fd: int | None,
        pipes: list[asyncio.BaseTransport],
    ) -> None:
        self._exit = exit_
        self._pipes = pipes
        self._stdout = stdout
        self._stderr = stderr
        self._stdin_fd = stdin_fd
        exit_.future.add_done_callback(self._on_exit)

    @property
    def pid(self) -> int:
        return self._exit.pid

    @property
    def stdout(self) -> asyncio.StreamReader | None:
        return self._stdout

    @property
    def stderr(self) -> asyncio.StreamReader | None:
        return self._stderr

    @property
    def returncode(self) -> int | None:
        f = self._exit.future
        return f.result() if f.done() else None

    @property
    def exited(self) -> bool:
        return self._exit.future.done()

    async def wait(self) -> int | None:
        """Wait for the worker to end: its exit code, or None when its template had died."""
        return await asyncio.shield(self._exit.future)

    def close(self) -> None:
        for pipe in self._pipes:
            pipe.close()

    def _on_exit(self, _: object) -> None:
        if self._stdin_fd is not None:
            os.close(self._stdin_fd)  # the write end of its stdin: nobody else needs it
            self._stdin_fd = None

    def __repr__(self) -> str:
        return f"<ForkedProcess pid={self.pid} returncode={self.returncode}>"


class _Template:
    """One running template process and its control channel."""

    def __init__(
        self,
        server: ForkServer,
        proc: asyncio.subprocess.Process,
        control: socket.socket,
        number: int,
    ) -> None:
        self.server = server
        self.proc = proc
        self.pid = proc.pid
        self.control = control
        self.number = number
        self.alive = True
        self.ready: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pending: dict[int, asyncio.Future[_Exit]] = {}
        self.exits: dict[int, _Exit] = {}
        self.output_tail: collections.deque[str] = collections.deque(maxlen=_OUTPUT_TAIL)
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(control.fileno(), self._on_readable)
        self.output_task = self._loop.create_task(
            self._forward_output(), name=f"forkserver-{number}:output"
        )

    @property
    def output(self) -> str:
        return "\n".join(self.output_tail)

    async def _forward_output(self) -> None:
        assert self.proc.stdout is not None
        pending = b""
        # Chunks, not readline(): a line over the reader's limit must not stop the reading.
        while chunk := await self.proc.stdout.read(65536):
            *lines, pending = (pending + chunk).split(b"\n")
            if len(pending) > 65536:
                lines, pending = [*lines, pending], b""
            for line in lines:
                self._log_line(line)
        if pending:
            self._log_line(pending)

    def _log_line(self, line: bytes) -> None:
        text = printable(line.decode(errors="replace").rstrip()[:4000])
        self.output_tail.append(text)
        log.info("fork server %d (pid %d): %s", self.number, self.pid, text)

    def _on_readable(self) -> None:
        while self.alive:
            try:
                data = self.control.recv(_MAX_MESSAGE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                data = b""
            if not data:
                self.died()
                return
            try:
                message = json.loads(data)
                self._dispatch(message)
            except Exception:  # a bug here must not stop the reports that follow
                log.exception("fork server %d: bad message %r", self.number, data[:200])

    def _dispatch(self, message: dict[str, Any]) -> None:
        op = message.get("op")
        if op == "exit":
            exit_ = self.exits.pop(int(message["pid"]), None)
            if exit_ is not None:
                exit_.resolve(int(message["code"]))
        elif op == "spawned":
            pid = int(message["pid"])
            # Watched from here on, before anything else is read: its exit report may be next.
            exit_ = self.exits[pid] = _Exit(self._loop, pid, self)
            self._settle(message, exit_)
        elif op == "error":
            self._settle(
                message, LaunchError(f"the fork server could not fork: {message['message']}")
            )
        elif op == "ready" and not self.ready.done():
            self.ready.set_result(message)
        elif op == "failed" and not self.ready.done():
            self.ready.set_exception(
                LaunchError(str(message["message"]), exit_code=int(message["code"]))
            )

    def _settle(self, message: dict[str, Any], outcome: _Exit | Exception) -> None:
        future = self.pending.pop(int(message.get("id") or 0), None)
        if future is None or future.done():
            return
        if isinstance(outcome, Exception):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)

    def died(self) -> None:
        """The control channel closed: the template is gone (or being stopped)."""
        if not self.alive:
            return
        self.alive = False
        self._loop.remove_reader(self.control.fileno())
        self.control.close()
        if not self.ready.done():
            self.ready.set_exception(_TemplateGone())
        for future in self.pending.values():
            if not future.done():
                future.set_exception(_TemplateGone())
        self.pending.clear()
        for exit_ in list(self.exits.values()):
            exit_.template_died()
        self.exits = {pid: e for pid, e in self.exits.items() if not e.future.done()}
        self.server._template_died(self)

    async def spawn(
        self, args: list[str], env: dict[str, str], cwd: str | None, fds: list[int]
    ) -> _Exit:
        request_id = next(self.server._ids)
        future: asyncio.Future[_Exit] = self._loop.create_future()
        self.pending[request_id] = future
        data = json.dumps(
            {"op": "spawn", "id": request_id, "args": args, "env": env, "cwd": cwd}
        ).encode()
        try:
            socket.send_fds(self.control, [data], fds)
        except OSError as exc:
            self.pending.pop(request_id, None)
            if len(data) > _MAX_MESSAGE // 2:
                raise LaunchError(
                    f"the worker's environment and arguments ({len(data)} bytes) are too large "
                    "for the fork server; use start_method='spawn'"
                ) from exc
            self.died()
            raise _TemplateGone() from exc
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            # Nobody will own the worker forked for this request: do not let it start.
            future.add_done_callback(_kill_unowned)
            raise

    async def stop(self) -> int | None:
        """Close the channel (the template kills what it still has and exits); wait for it."""
        self.died()
        try:
            code = await asyncio.wait_for(asyncio.shield(self.proc.wait()), _STOP_TIMEOUT)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            code = await self.proc.wait()
        await asyncio.wait({self.output_task}, timeout=1.0)
        return code


class ForkServer:
    """Forks a pool's Python workers from a template that imported the adapter's module once.

    Args:
        adapter: ``pkg.module:Class``; the template imports ``pkg.module``.
        python: the interpreter of the template (and so of every worker).
        registry: the pool's orphan registry; each template is recorded there while it lives.
        startup_timeout: seconds the template has to import the adapter's module.
    """

    name = "forkserver"

    def __init__(
        self,
        adapter: str,
        *,
        python: str = sys.executable,
        registry: ProcessRegistry | None = None,
        startup_timeout: float = 30.0,
        label: str = "",
        grpc: bool = False,
    ) -> None:
        self.adapter = adapter
        # gRPC workers: the template imports the gRPC worker's modules too (no channel, no
        # server, no thread), so each fork does not import gRPC again.
        self.grpc = grpc
        self.python = python
        self.registry = registry
        self.startup_timeout = startup_timeout
        self.label = label or "pool"
        self.templates_started = 0
        self._template: _Template | None = None
        self._live: set[_Template] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._lock: asyncio.Lock | None = None
        self._ids = itertools.count(1)
        self._closed = False
        self._warned_threads = False

    @property
    def template_pid(self) -> int | None:
        """The running template's pid (None: not started yet, or dead)."""
        t = self._template
        return t.pid if t is not None and t.alive else None

    # -- launching -----------------------------------------------------------------------------

    async def launch(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        cwd: str | None,
        stdin: StdioSpec,
        stdout: StdioSpec,
        stderr: StdioSpec,
    ) -> WorkerProcess:
        """Fork a worker that runs ``argv`` (``python -m snakepit.adapter ...``).

        Raises:
            LaunchError: the template could not be started (its exit code and output are
                attached), refused to fork, or died twice in a row; or ``argv`` is not a
                snakepit worker of this interpreter.
            OSError: a pipe could not be made.
        """
        if self._closed:
            raise LaunchError(f"the fork server of {self.label} is closed")
        args = self._worker_args(argv)
        env = {k: v for k, v in env.items()}
        loop = asyncio.get_running_loop()
        child_fds: list[int] = []
        to_close: list[int] = []  # our copies of what only the child needs
        readers: list[asyncio.StreamReader | None] = []
        transports: list[asyncio.BaseTransport] = []
        stdin_fd: int | None = None
        try:
            for index, spec in enumerate((stdin, stdout, stderr)):
                if spec == PIPE:
                    r, w = os.pipe()
                    mine, theirs = (w, r) if index == 0 else (r, w)
                    child_fds.append(theirs)
                    to_close.append(theirs)
                    if index == 0:
                        stdin_fd = mine
                        readers.append(None)
                        continue
                    reader = asyncio.StreamReader(loop=loop)
                    pipe, _ = await loop.connect_read_pipe(
                        functools.partial(asyncio.StreamReaderProtocol, reader, loop=loop),
                        os.fdopen(mine, "rb", buffering=0),
                    )
                    transports.append(pipe)
                    readers.append(reader)
                    continue
                readers.append(None)
                if spec == DEVNULL:
                    fd = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
                    to_close.append(fd)
                elif spec == subprocess.STDOUT and index == 2:
                    fd = child_fds[1]
                else:
                    fd = spec if isinstance(spec, int) else spec.fileno()
                    if fd < 0:
                        raise ValueError(f"not a file descriptor for fd {index}: {spec!r}")
                child_fds.append(fd)
            exit_ = await self._fork(args, env, cwd, child_fds)
        except BaseException:
            for transport in transports:
                transport.close()
            if stdin_fd is not None:
                os.close(stdin_fd)
            raise
        finally:
            for fd in to_close:
                os.close(fd)
        return ForkedProcess(exit_, readers[1], readers[2], stdin_fd, transports)

    def _worker_args(self, argv: Sequence[str]) -> list[str]:
        argv = list(argv)
        if len(argv) < 3 or argv[0] != self.python or argv[1:3] != ["-m", WORKER_MODULE]:
            raise LaunchError(
                f"the fork server of {self.label} forks `{self.python} -m {WORKER_MODULE} ...` "
                f"only, not {argv[:3]!r}; use start_method='spawn' for other programs"
            )
        return argv[3:]

    async def _fork(
        self, args: list[str], env: dict[str, str], cwd: str | None, fds: list[int]
    ) -> _Exit:
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            for attempt in (1, 2):
                template = await self._ensure_template(env, cwd)
                try:
                    return await template.spawn(args, env, cwd, fds)
                except _TemplateGone:
                    if attempt == 2:
                        raise LaunchError(
                            f"the fork server of {self.label} (pid {template.pid}) died while "
                            f"forking, twice\n{template.output}",
                            output_tail=template.output,
                        ) from None
                    log.warning(
                        "fork server %d (pid %d) died while forking; starting a new one",
                        template.number,
                        template.pid,
                    )
        raise AssertionError("unreachable")  # pragma: no cover

    # -- the template --------------------------------------------------------------------------

    async def _ensure_template(self, env: Mapping[str, str], cwd: str | None) -> _Template:
        t = self._template
        if t is not None and t.alive:
            return t
        return await self._start_template(env, cwd)

    async def _start_template(self, env: Mapping[str, str], cwd: str | None) -> _Template:
        host_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        host_end.setblocking(False)
        with contextlib.suppress(OSError):
            host_end.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _MAX_MESSAGE)
        template_env = {k: v for k, v in env.items() if k != "SNAKEPIT_TOKEN"}
        try:
            proc = await asyncio.create_subprocess_exec(
                self.python,
                "-m",
                TEMPLATE_MODULE,
                "--adapter",
                self.adapter,
                "--control-fd",
                str(child_end.fileno()),
                "--parent-pid",
                str(os.getpid()),
                *(["--preload-grpc"] if self.grpc else []),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=template_env,
                cwd=cwd,
                pass_fds=(child_end.fileno(),),
                start_new_session=True,
            )
        except BaseException:
            host_end.close()
            raise
        finally:
            child_end.close()
        self.templates_started += 1
        t = _Template(self, proc, host_end, self.templates_started)
        self._template = t
        self._live.add(t)
        if self.registry is not None:
            self.registry.add(f"forkserver-{t.number}", t.pid)
        watch = asyncio.get_running_loop().create_task(
            self._watch(t), name=f"forkserver-{t.number}:watch"
        )
        self._tasks.add(watch)
        watch.add_done_callback(self._tasks.discard)
        try:
            async with asyncio.timeout(self.startup_timeout):
                ready = await asyncio.shield(t.ready)
        except BaseException as exc:
            await t.stop()
            if isinstance(exc, asyncio.CancelledError):
                raise
            code = t.proc.returncode
            if isinstance(exc, LaunchError):
                exc.exit_code = exc.exit_code if exc.exit_code is not None else code
                exc.output_tail = t.output
                raise
            if isinstance(exc, TimeoutError):
                why = (
                    f"did not import {self.adapter} within startup_timeout={self.startup_timeout}s"
                )
            else:
                why = f"exited while importing {self.adapter} (exit code {code})"
            raise LaunchError(
                f"the fork server of {self.label} {why}", exit_code=code, output_tail=t.output
            ) from None
        threads = int(ready.get("native_threads", 1))
        if threads > 1 and not self._warned_threads:
            self._warned_threads = True
            log.warning(
                "importing %s started %d native threads in the fork server (a BLAS pool?); "
                "forked workers get only the forking thread: if the library does not handle "
                "fork, set its thread count to 1 or use start_method='spawn'",
                self.adapter,
                threads - 1,
            )
        return t

    async def _watch(self, t: _Template) -> None:
        code = await t.proc.wait()
        t.died()
        await asyncio.wait({t.output_task}, timeout=1.0)
        if self.registry is not None:
            self.registry.remove(f"forkserver-{t.number}")
        if not self._closed and code != 0:
            log.warning(
                "fork server %d (pid %d) of %s exited (exit code %s); its workers keep serving "
                "and the next worker start forks from a new one",
                t.number,
                t.pid,
                self.label,
                code,
            )
        self._live.discard(t)

    def _template_died(self, t: _Template) -> None:
        if self._template is t:
            self._template = None

    # -- stopping ------------------------------------------------------------------------------

    async def close(self) -> None:
        """Stop the template (after the pool has stopped its workers). Idempotent."""
        self._closed = True
        self._template = None
        for t in list(self._live):
            await t.stop()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=_STOP_TIMEOUT)
