"""The host's handle on one worker process.

Spawns the worker in its own process group (session), waits for its ready
line within the startup timeout, connects the transport, asks for its tool
specs, forwards its stderr to ``logging``, watches for its exit, and stops it:
SIGTERM to the whole group, SIGKILL after a grace period. However the worker
ends (stopped, killed, crashed, killed from outside), what is left of its
group, the helpers it started, is killed as soon as its exit is seen. Every
step is an event on the pool's bus.

Secrets (the tokens of TCP pools) reach the worker through a pipe it
inherits, never its environment, which any process of the same user can read
in ``/proc/<pid>/environ`` and which the worker's own children would inherit.

A call whose channel breaks because the process died becomes
``WorkerCrashedError`` carrying the exit code (negative: the signal).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import enum
import json
import logging
import os
import secrets
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from snakepit._wire._constants import READY_PREFIX as _READY
from snakepit.clock import Clock, SystemClock
from snakepit.codec import Encoding
from snakepit.errors import WorkerCrashedError, WorkerStartupError
from snakepit.events import EventBus, WorkerExited, WorkerReady, WorkerStarting
from snakepit.worker import _local as local
from snakepit.worker._calls import TransportCalls
from snakepit.worker._identity import pid_taken_by_a_live_process
from snakepit.worker._launch import DEVNULL, PIPE, SPAWN, LaunchError
from snakepit.worker._paths import worker_pythonpath
from snakepit.worker._transport import (
    DescribedTool,
    DescribeResult,
    GrpcTransport,
    PingResult,
    Transport,
    TransportError,
)

if TYPE_CHECKING:
    import socket
    from collections.abc import Callable, Mapping

    from snakepit.bridge._ops import HostOps
    from snakepit.worker._attached import Placement
    from snakepit.worker._launch import Launcher, WorkerProcess

__all__ = ["WorkerHandle", "WorkerOptions", "WorkerState"]

READY_PREFIX = _READY.encode()
_STDERR_TAIL = 40
_STDERR_CHUNK = 64 * 1024
_STDERR_LINE_SHOWN = 4000
_STDERR_DRAIN = 5.0  # seconds a dead worker's last output may take to arrive
_UNIX_PATH_MAX = 107
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])
# The worker's exit codes at start-up (snakepit.adapter._main).
_EXIT_MEANINGS = {
    2: " (bad worker command line)",
    3: " (the adapter could not be imported; the reason and how to fix it are below)",
    4: " (the adapter's setup() raised; its traceback is below)",
    5: " (the worker could not serve on its socket)",
}


class WorkerState(enum.Enum):
    STARTING = "starting"
    READY = "ready"
    STOPPING = "stopping"
    EXITED = "exited"


@dataclass(frozen=True)
class WorkerOptions:
    """How to start a worker process. The pool builds one from its config."""

    adapter: str
    runtime_dir: Path
    python: str = sys.executable
    env: Mapping[str, str] | None = None
    cwd: str | None = None
    transport: Literal["local", "grpc", "unix", "tcp"] = "local"
    tcp_host: str = "127.0.0.1"
    startup_timeout: float = 30.0
    threads: int = 4
    shutdown_grace: float = 5.0
    max_message_bytes: int = 256 * 1024 * 1024
    encoding: Encoding = Encoding.JSON
    log_level: str = "INFO"
    extra_env: Mapping[str, str] = field(default_factory=dict)
    #: how the process is started (None: a fresh interpreter, ``SpawnLauncher``)
    launcher: Launcher | None = None
    host_token: str | None = None
    #: a worker the host does not spawn (remote, Ray): ``AttachedWorkerHandle`` runs it
    placement: Callable[[], Placement] | None = None
    # Answers a local worker's calls to the host (sessions, variables, host tools).
    host: HostOps | None = field(default=None, compare=False, repr=False)

    @property
    def grpc(self) -> bool:
        return self.transport != "local"


def printable(text: str) -> str:
    """``text`` with every non-printable character escaped (``\\x1b``, ``\\n``, ``\\u2028``...),
    so what a worker prints cannot move the cursor, recolour a terminal or start a fake
    log record."""
    if text.isprintable():
        return text
    return "".join(
        ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text
    )


def printable_lines(text: str) -> str:
    """``text`` line by line through :func:`printable`: its line breaks stay, nothing else."""
    return "\n".join(printable(line) for line in text.splitlines())


_TRACEBACK = "Traceback (most recent call last):"


def whole_records(lines: list[str]) -> list[list[str]]:
    """Group lines a worker printed into the records they belong to, so a log record and
    its traceback arrive as one host record, not as a line ending in a colon followed by
    loose lines. A line joins the record before it when it is indented, when it starts
    a traceback, or when it ends one (the exception line after the indented frames)."""
    records: list[list[str]] = []
    in_traceback = False
    for line in lines:
        joins = bool(records) and (
            line[:1] in (" ", "\t") or line == _TRACEBACK or (in_traceback and line != "")
        )
        if joins:
            records[-1].append(line)
            if line == _TRACEBACK:
                in_traceback = True
            elif in_traceback and line[:1] not in (" ", "\t"):
                in_traceback = False  # "ValueError: ...": the traceback's last line
        else:
            records.append([line])
            in_traceback = line == _TRACEBACK
    return records


def exit_description(code: int | None, *, exited: bool = False) -> str:
    if code is None:
        # A forked worker outliving its fork server is reaped by init: nobody can tell us.
        return "exit code unknown (its fork server had died)" if exited else "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


class WorkerHandle(TransportCalls):
    """One worker process and the channel to it."""

    def __init__(
        self,
        worker_id: str,
        options: WorkerOptions,
        *,
        events: EventBus | None = None,
        clock: Clock | None = None,
        source: str = "",
    ) -> None:
        self.id = worker_id
        self.options = options
        self._events = events or EventBus(worker_id)
        self._clock = clock or SystemClock()
        self._source = source
        self._log = logging.getLogger(f"snakepit.worker.{worker_id}")
        self.state = WorkerState.STARTING
        self.pid: int | None = None
        self.address: str | None = None
        self.tools: dict[str, DescribedTool] = {}
        self.describe_result: DescribeResult | None = None
        self.exit_code: int | None = None
        self.started_at: float | None = None
        self.ready_at: float | None = None
        self.requests = 0
        self._proc: WorkerProcess | None = None
        self._stdin: int | None = None  # our end of the worker's stdin: its lifeline
        self._reaped = False
        self._transport: Transport | None = None
        self._stderr_tail: collections.deque[str] = collections.deque(maxlen=_STDERR_TAIL)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._exited: asyncio.Future[int | None] | None = None
        self._stop_requested = False
        self._stop_lock = asyncio.Lock()

    # -- observation ---------------------------------------------------------------------------

    @property
    def transport(self) -> Transport:
        if self._transport is None:
            raise RuntimeError(f"worker {self.id!r} is not connected")
        return self._transport

    @property
    def alive(self) -> bool:
        return self.state in (WorkerState.STARTING, WorkerState.READY)

    @property
    def stderr_tail(self) -> str:
        return "\n".join(self._stderr_tail)

    async def wait_exited(self) -> int | None:
        """Wait for the process to end; its exit code (negative: the signal)."""
        if self._exited is None:
            return self.exit_code
        return await asyncio.shield(self._exited)

    def __repr__(self) -> str:
        return f"<WorkerHandle {self.id} pid={self.pid} {self.state.value}>"

    # -- start ---------------------------------------------------------------------------------

    def _command(self) -> list[str]:
        o = self.options
        cmd = [
            o.python,
            "-m",
            "snakepit.adapter",
            "--adapter",
            o.adapter,
            "--worker-id",
            self.id,
            "--threads",
            str(o.threads),
            "--parent-pid",
            str(os.getpid()),
            "--max-message-bytes",
            str(o.max_message_bytes),
            "--log-level",
            o.log_level,
        ]
        if o.encoding is Encoding.PICKLE:
            cmd.append("--allow-pickle")
        if o.transport == "local":
            cmd.append("--local")  # its channel is its stdin; it needs no token
            return cmd
        cmd.append("--secrets-stdin")
        if o.transport in ("grpc", "unix"):
            sock = o.runtime_dir / f"{self.id}.sock"
            if len(str(sock)) > _UNIX_PATH_MAX:
                raise WorkerStartupError(
                    f"worker {self.id!r}: socket path {str(sock)!r} is longer than the "
                    f"{_UNIX_PATH_MAX} bytes a Unix socket allows; use a shorter runtime_dir",
                    worker_id=self.id,
                    exit_code=None,
                    stderr_tail="",
                )
            with contextlib.suppress(FileNotFoundError):
                sock.unlink()
            cmd += ["--socket", str(sock)]
        else:
            cmd += ["--tcp", o.tcp_host]
        return cmd

    def _environment(self) -> dict[str, str]:
        env = dict(os.environ)
        if self.options.env:
            env.update(self.options.env)
        env.update(self.options.extra_env)
        # The worker imports what the host imports (as multiprocessing's spawn does), and
        # an interpreter from another virtualenv can still import snakepit from here.
        env["PYTHONPATH"] = worker_pythonpath(env.get("PYTHONPATH", ""), _PACKAGE_ROOT)
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def _stdin_pipe(self, secrets: dict[str, str]) -> int:
        """The read end of the worker's stdin; the write end stays with us as its lifeline
        (EOF: the host is gone) after carrying ``secrets`` as one JSON line, which keeps
        tokens out of the worker's environment and command line."""
        read_fd, write_fd = os.pipe()
        try:
            # Far below the pipe's buffer: the write never blocks.
            os.write(write_fd, json.dumps(secrets).encode() + b"\n")
        except BaseException:
            os.close(read_fd)
            os.close(write_fd)
            raise
        self._stdin = write_fd
        return read_fd

    async def _launch(self, token: str | None, channel: socket.socket | None) -> None:
        """Start the process in a session of its own (its pid is its process group).

        A local worker's stdin is its end of the ``channel`` (its lifeline and its
        transport; it needs no token). A gRPC worker's stdin is a pipe whose first line
        carries its tokens.
        """
        o = self.options
        stdin: int | socket.socket
        if channel is not None:
            stdin, stdout = channel, DEVNULL
        else:
            handed = {
                key: value
                for key, value in (("token", token), ("host_token", o.host_token))
                if value
            }
            stdin, stdout = self._stdin_pipe(handed), PIPE
        try:
            self._proc = await (o.launcher or SPAWN).launch(
                self._command(),
                env=self._environment(),
                cwd=o.cwd,
                stdin=stdin,
                stdout=stdout,
                stderr=PIPE,
            )
        except BaseException:
            self._close_stdin()
            raise
        finally:
            if isinstance(stdin, int):
                os.close(stdin)

    def _close_stdin(self) -> None:
        if self._stdin is not None:
            os.close(self._stdin)
            self._stdin = None

    async def start(self) -> None:
        """Spawn the worker and return once it has answered ``Describe``.

        Raises:
            WorkerStartupError: it exited, printed no ready line within ``startup_timeout``,
                or could not be reached; names the exit code and the tail of its stderr.
        """
        o = self.options
        self.started_at = self._clock.monotonic()
        self._events.publish(
            WorkerStarting(source=self._source, at=self.started_at, worker_id=self.id)
        )
        token = secrets.token_hex(16) if o.transport == "tcp" else None
        channel: socket.socket | None = None
        theirs: socket.socket | None = None
        if not o.grpc:
            channel, theirs = local.socketpair()
        try:
            await self._launch(token, theirs)
        except asyncio.CancelledError:
            if channel is not None:
                channel.close()
            raise
        except LaunchError as exc:
            self.state = WorkerState.EXITED
            if channel is not None:
                channel.close()
            raise WorkerStartupError(
                f"worker {self.id!r} ({printable(o.adapter)}) failed to start: "
                f"{printable_lines(str(exc))}"
                + (
                    f"; exit code {exc.exit_code}{_EXIT_MEANINGS.get(exc.exit_code, '')}"
                    if exc.exit_code is not None
                    else ""
                ),
                worker_id=self.id,
                exit_code=exc.exit_code,
                stderr_tail=printable_lines(exc.output_tail),
            ) from exc
        except OSError as exc:
            self.state = WorkerState.EXITED
            if channel is not None:
                channel.close()
            raise WorkerStartupError(
                f"worker {self.id!r}: cannot run {o.python!r}: {exc}; check the pool's "
                "`python` option",
                worker_id=self.id,
                exit_code=None,
                stderr_tail="",
            ) from exc
        finally:
            if theirs is not None:
                theirs.close()  # the worker holds it now: its EOF must mean the worker's end
        assert self._proc is not None
        self.pid = self._proc.pid
        self._exited = asyncio.get_running_loop().create_future()
        stderr_task = self._spawn(self._forward_stderr(), "stderr")
        self._spawn(self._watch_exit(stderr_task), "exit-watch")
        try:
            async with asyncio.timeout(o.startup_timeout):
                if channel is not None:
                    address = f"local:{self.pid}"
                    transport: Transport = local.LocalTransport(
                        channel,
                        worker_id=self.id,
                        max_message_bytes=o.max_message_bytes,
                        encoding=o.encoding,
                        host=o.host,
                    )
                    self._transport = transport
                    self.describe_result = await transport.ready()  # type: ignore[attr-defined]
                else:
                    address = await self._read_ready_line()
                    transport = GrpcTransport(
                        address,
                        worker_id=self.id,
                        max_message_bytes=o.max_message_bytes,
                        token=token,
                        encoding=o.encoding,
                    )
                    self._transport = transport
                    self.describe_result = await transport.describe(timeout=o.startup_timeout)
        except BaseException as exc:
            if self._transport is None and channel is not None:
                channel.close()  # no transport took it over
            reason = self._startup_reason(exc)
            if isinstance(exc, TransportError) and self._exited is not None:
                # The channel closed before the worker was ready: it is exiting; keep its code.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(self._exited), timeout=1.0)
            await self.kill_and_wait()
            if isinstance(exc, asyncio.CancelledError):
                raise
            await self._drain_stderr(stderr_task)
            raise WorkerStartupError(
                f"worker {self.id!r} ({printable(o.adapter)}) failed to start: {reason}; "
                f"{exit_description(self.exit_code, exited=self.state is WorkerState.EXITED)}"
                f"{_EXIT_MEANINGS.get(self.exit_code or 0, '')}"
                + (
                    f"\n--- stderr (last lines) ---\n{self.stderr_tail}"
                    if self._stderr_tail
                    else ""
                ),
                worker_id=self.id,
                exit_code=self.exit_code,
                stderr_tail=self.stderr_tail,
            ) from (exc if not isinstance(exc, TimeoutError) else None)
        self.address = address
        self.tools = self.describe_result.tools
        self.ready_at = self._clock.monotonic()
        self.state = WorkerState.READY
        self._events.publish(
            WorkerReady(
                source=self._source,
                at=self.ready_at,
                worker_id=self.id,
                pid=self.pid,
                address=address,
                startup_seconds=self.ready_at - self.started_at,
            )
        )

    def _startup_reason(self, exc: BaseException) -> str:
        if isinstance(exc, TimeoutError):
            return f"no ready line within startup_timeout={self.options.startup_timeout}s"
        if isinstance(exc, asyncio.CancelledError):
            return "start was cancelled"
        return str(exc)

    async def _read_ready_line(self) -> str:
        assert self._proc is not None and self._proc.stdout is not None
        while True:
            line = await self._proc.stdout.readline()
            if not line:
                raise TransportError("the process exited before it printed its ready line")
            if line.startswith(READY_PREFIX):
                try:
                    info = json.loads(line[len(READY_PREFIX) :])
                    return str(info["address"])
                except (ValueError, KeyError, TypeError) as exc:
                    raise TransportError(
                        f"malformed ready line {line[:_STDERR_LINE_SHOWN]!r}"
                    ) from exc
            # Anything printed before the ready line (an import that prints) is a log line.
            self._log.info("%s", self._shown(line))

    def _spawn(self, coro: Any, what: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=f"{self.id}:{what}")
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self._log.error(
                "worker %s: background task %s failed",
                self.id,
                task.get_name(),
                exc_info=task.exception(),
            )

    async def _forward_stderr(self) -> None:
        """Forward the worker's stderr to logging, line by line, however long a line is.

        Reads in chunks (never ``readline``, which fails on a line over 64 KiB and would
        leave the pipe unread and the worker blocked on its next write).
        """
        assert self._proc is not None and self._proc.stderr is not None
        stream = self._proc.stderr
        pending = b""
        while True:
            chunk = await stream.read(_STDERR_CHUNK)
            if not chunk:
                if pending:
                    self._log_line(pending)
                return
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for record in whole_records([self._shown(raw) for raw in lines]):
                self._log_record(record)
            if len(pending) > _STDERR_CHUNK:  # an endless line: log what we have so far
                self._log_line(pending + b" [line continues]")
                pending = b""

    @staticmethod
    def _shown(raw: bytes) -> str:
        """A line the worker printed, as the host shows it: bounded, control characters escaped."""
        line = raw.decode(errors="replace").rstrip()
        more = len(line) - _STDERR_LINE_SHOWN
        if more > 0:
            return printable(line[:_STDERR_LINE_SHOWN]) + f"... [{more} more chars]"
        return printable(line)

    def _log_line(self, raw: bytes) -> None:
        self._log_record([self._shown(raw)])

    def _log_record(self, lines: list[str]) -> None:
        # The worker's text never picks the record's level or logger: what it prints is
        # data, and a line that starts with "CRITICAL" is still only something it printed.
        self._stderr_tail.extend(lines)
        self._log.info("%s", "\n".join(lines))

    async def _drain_stderr(self, task: asyncio.Task[Any]) -> None:
        """Let the reader forward what the worker printed last (its traceback), bounded: a
        helper that left the worker's group may hold the pipe open for good. Whatever
        happened to the reader, the exit must still be recorded."""
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout=_STDERR_DRAIN)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # we are being cancelled, not the reader
        except Exception:  # the reader's own failure was logged by _task_done
            pass

    async def _watch_exit(self, stderr_task: asyncio.Task[Any]) -> None:
        assert self._proc is not None and self._exited is not None
        code = await self._proc.wait()
        self._reaped = True
        # Whatever ended the worker, its helpers go with it (and the pipes they hold close).
        self._kill_group()
        await self._drain_stderr(stderr_task)
        self._proc.close()  # a helper that left the group may still hold a pipe
        self._close_stdin()
        self.exit_code = code
        was_ready = self.state is not WorkerState.STARTING
        self.state = WorkerState.EXITED
        if not self._exited.done():
            self._exited.set_result(code)
        if self.options.transport in ("grpc", "unix"):
            with contextlib.suppress(OSError):
                (self.options.runtime_dir / f"{self.id}.sock").unlink()
        if was_ready or self._stop_requested:
            self._events.publish(
                WorkerExited(
                    source=self._source,
                    at=self._clock.monotonic(),
                    worker_id=self.id,
                    pid=self.pid or 0,
                    exit_code=code,
                    expected=self._stop_requested,
                )
            )
        if self._transport is not None:
            # With a grace period, calls still in flight end with the channel's own error
            # (which execute() turns into WorkerCrashedError), not a local cancellation.
            await self._transport.close(grace=1.0)

    # -- calls ---------------------------------------------------------------------------------

    async def _crash_error(self, exc: TransportError, tool: str) -> WorkerCrashedError:
        """The error for a call whose channel broke: wait (bounded) for the exit code."""
        # A dead process closes its socket and is reaped within moments; a channel closed on
        # this side says nothing about the process, so there is nothing to wait for.
        if self._exited is not None and exc.code != "CLOSED":
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._exited), timeout=1.0)
        if self.exit_code is not None or self.state is WorkerState.EXITED:
            what = (
                f"worker {self.id!r} (pid {self.pid}) exited during {tool!r}: "
                + exit_description(self.exit_code, exited=True)
            )
        else:
            what = (
                f"the channel to worker {self.id!r} (pid {self.pid}) broke during {tool!r}: {exc}"
            )
        return WorkerCrashedError(
            what + "; the pool replaces the worker, and the call may be retried",
            worker_id=self.id,
            pid=self.pid,
            exit_code=self.exit_code,
            tool=tool,
        )

    async def ping(self, *, timeout: float | None = 5.0) -> PingResult:
        """Ask the worker for a sign of life (answered even while a sync tool runs).

        Raises:
            ExecutionTimeoutError: no answer within ``timeout``.
            WorkerCrashedError: the process died or the channel broke.
        """
        try:
            return await self.transport.ping(timeout=timeout)
        except TransportError as exc:
            raise await self._crash_error(exc, "Ping") from exc

    # -- stop ----------------------------------------------------------------------------------

    def _signal_group(self, sig: signal.Signals) -> None:
        """Send ``sig`` to the worker's process group: the worker, if it still runs, and
        every helper it started there.

        Once the worker is reaped its pid is free for reuse, but not while a member of its
        group lives: so if a live process has that pid now, the group is empty and nothing is
        sent. A zombie there is the worker itself, dead but not yet reaped by whoever adopted
        it (a forked worker whose fork server died): its group is still its own.
        """
        pid = self.pid
        if pid is None:
            return
        if self._reaped and pid_taken_by_a_live_process(pid):
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)

    def _kill_group(self) -> None:
        """SIGKILL whatever is left of the worker's process group; every way out ends here."""
        self._signal_group(signal.SIGKILL)

    def kill(self) -> None:
        """SIGKILL the worker's whole process group now (non-blocking)."""
        self._stop_requested = True
        if self.state is not WorkerState.EXITED:
            self.state = WorkerState.STOPPING
        self._kill_group()

    async def kill_and_wait(self) -> int | None:
        """SIGKILL the group and wait until the process is reaped."""
        self.kill()
        code = await self.wait_exited()
        await self._close_tasks()
        return code

    async def stop(self, grace: float | None = None) -> int | None:
        """Stop gracefully: SIGTERM to the group, then SIGKILL after ``grace`` seconds.

        Idempotent and safe to call concurrently; returns the exit code.
        """
        grace = self.options.shutdown_grace if grace is None else grace
        async with self._stop_lock:
            if self._proc is None:
                self.state = WorkerState.EXITED
                return None
            if self.exit_code is None and self.state is not WorkerState.EXITED:
                self._stop_requested = True
                self.state = WorkerState.STOPPING
                self._signal_group(signal.SIGTERM)
                try:
                    await asyncio.wait_for(self.wait_exited(), timeout=grace)
                except TimeoutError:
                    self._log.warning(
                        "worker %s did not stop within %.1fs of SIGTERM; sending SIGKILL",
                        self.id,
                        grace,
                    )
                    self._kill_group()
                    await self.wait_exited()
            # Anything else the worker started in its group goes too (its exit watcher did
            # this already; a helper may have been forked since).
            self._kill_group()
            await self._close_tasks()
            return self.exit_code

    async def _close_tasks(self) -> None:
        if self._transport is not None:
            await self._transport.close()
        pending = [t for t in self._tasks if not t.done()]
        if pending:
            # The exit watcher finishes by itself once the process is reaped.
            await asyncio.wait(pending, timeout=2.0)
        for t in self._tasks:
            if not t.done():
                t.cancel()
