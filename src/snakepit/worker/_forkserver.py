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
import contextlib
import functools
import itertools
import logging
import os
import socket
import subprocess
import sys
from typing import TYPE_CHECKING

from snakepit._tasks import TaskOwner
from snakepit.worker._launch import DEVNULL, PIPE, LaunchError
from snakepit.worker._template import MAX_MESSAGE, Exit, ForkedProcess, Template, TemplateGone

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from snakepit.worker._launch import StdioSpec, WorkerProcess
    from snakepit.worker._registry import ProcessRegistry

__all__ = ["ForkServer", "ForkedProcess", "effective_start_method", "forkserver_available"]

log = logging.getLogger("snakepit.forkserver")

WORKER_MODULE = "snakepit.adapter"
TEMPLATE_MODULE = "snakepit.adapter._forkserver"
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
        self._template: Template | None = None
        self._live: set[Template] = set()
        self._tasks = TaskOwner("fork server", "forkserver", log)
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
    ) -> Exit:
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            for attempt in (1, 2):
                template = await self._ensure_template(env, cwd)
                try:
                    return await template.spawn(args, env, cwd, fds)
                except TemplateGone:
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

    async def _ensure_template(self, env: Mapping[str, str], cwd: str | None) -> Template:
        t = self._template
        if t is not None and t.alive:
            return t
        return await self._start_template(env, cwd)

    async def _start_template(self, env: Mapping[str, str], cwd: str | None) -> Template:
        host_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        host_end.setblocking(False)
        with contextlib.suppress(OSError):
            host_end.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, MAX_MESSAGE)
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
        t = Template(
            proc,
            host_end,
            self.templates_started,
            request_ids=self._ids,
            on_death=self._template_died,
        )
        self._template = t
        self._live.add(t)
        if self.registry is not None:
            self.registry.add(f"forkserver-{t.number}", t.pid)
        self._tasks.spawn(self._watch(t), f"{t.number}:watch")
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

    async def _watch(self, t: Template) -> None:
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

    def _template_died(self, t: Template) -> None:
        if self._template is t:
            self._template = None

    # -- stopping ------------------------------------------------------------------------------

    async def close(self) -> None:
        """Stop the template (after the pool has stopped its workers). Idempotent."""
        self._closed = True
        self._template = None
        for t in list(self._live):
            await t.stop()
        await self._tasks.join(_STOP_TIMEOUT)
