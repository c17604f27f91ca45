"""The host's handle on one worker process.

Spawns the worker in its own process group (session), waits for its ready
line within the startup timeout, connects the transport, asks for its tool
specs, forwards its stderr to ``logging``, watches for its exit, and stops it:
SIGTERM to the whole group, SIGKILL after a grace period. Every step is an
event on the pool's bus.

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

from snakepit._wire.constants import READY_PREFIX as _READY
from snakepit.clock import Clock, SystemClock
from snakepit.codec import Encoding
from snakepit.errors import WorkerCrashedError, WorkerStartupError
from snakepit.events import EventBus, WorkerExited, WorkerReady, WorkerStarting
from snakepit.worker import local
from snakepit.worker.transport import (
    DescribeResult,
    GrpcTransport,
    PingResult,
    ToolSpec,
    Transport,
    TransportError,
)

if TYPE_CHECKING:
    import socket
    from collections.abc import AsyncIterator, Mapping

    from snakepit.bridge.ops import HostOps

__all__ = ["WorkerHandle", "WorkerOptions", "WorkerState"]

READY_PREFIX = _READY.encode()
_STDERR_TAIL = 40
_STDERR_CHUNK = 64 * 1024
_STDERR_LINE_SHOWN = 4000
_UNIX_PATH_MAX = 107
_LEVELS = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40, "CRITICAL": 50}
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])


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
    # Answers a local worker's calls to the host (sessions, variables, host tools).
    host: HostOps | None = field(default=None, compare=False, repr=False)

    @property
    def grpc(self) -> bool:
        return self.transport != "local"


def exit_description(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


class WorkerHandle:
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
        self.tools: dict[str, ToolSpec] = {}
        self.describe_result: DescribeResult | None = None
        self.exit_code: int | None = None
        self.started_at: float | None = None
        self.ready_at: float | None = None
        self.requests = 0
        self._proc: asyncio.subprocess.Process | None = None
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
            cmd.append("--local")
        elif o.transport in ("grpc", "unix"):
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

    def _environment(self, token: str | None) -> dict[str, str]:
        env = dict(os.environ)
        if self.options.env:
            env.update(self.options.env)
        env.update(self.options.extra_env)
        # A worker interpreter from another virtualenv can still import snakepit from here.
        path = env.get("PYTHONPATH", "")
        env["PYTHONPATH"] = f"{path}{os.pathsep}{_PACKAGE_ROOT}" if path else _PACKAGE_ROOT
        env["PYTHONUNBUFFERED"] = "1"
        if token:
            env["SNAKEPIT_TOKEN"] = token
        return env

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
        if o.grpc:
            stdin: int = asyncio.subprocess.PIPE
            stdout: int = asyncio.subprocess.PIPE
        else:
            channel, theirs = local.socketpair()
            stdin, stdout = theirs.fileno(), asyncio.subprocess.DEVNULL
        try:
            self._proc = await self._launch(
                self._command(), env=self._environment(token), stdin=stdin, stdout=stdout
            )
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
                f"worker {self.id!r} ({o.adapter}) failed to start: {reason}; "
                f"{exit_description(self.exit_code)}"
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

    async def _launch(
        self, argv: list[str], *, env: dict[str, str], stdin: int, stdout: int
    ) -> asyncio.subprocess.Process:
        """Start the worker process (its stderr is always a pipe forwarded to logging)."""
        return await asyncio.create_subprocess_exec(
            *argv,
            stdin=stdin,
            stdout=stdout,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            cwd=self.options.cwd,
            start_new_session=True,
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
                except (ValueError, KeyError) as exc:
                    raise TransportError(f"malformed ready line {line!r}") from exc
            # Anything printed before the ready line (an import that prints) is a log line.
            self._log.info("%s", line.decode(errors="replace").rstrip())

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
            for raw in lines:
                self._log_line(raw)
            if len(pending) > _STDERR_CHUNK:  # an endless line: log what we have so far
                self._log_line(pending + b" [line continues]")
                pending = b""

    def _log_line(self, raw: bytes) -> None:
        line = raw.decode(errors="replace").rstrip()
        if len(line) > _STDERR_LINE_SHOWN:
            line = line[:_STDERR_LINE_SHOWN] + f"... [{len(line) - _STDERR_LINE_SHOWN} more chars]"
        self._stderr_tail.append(line)
        level = _LEVELS.get(line.split(" ", 1)[0], logging.INFO)
        self._log.log(level, "%s", line)

    async def _drain_stderr(self, task: asyncio.Task[Any]) -> None:
        # Whatever happened to the reader, the exit must still be recorded.
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await asyncio.wait_for(asyncio.shield(task), timeout=1.0)

    async def _watch_exit(self, stderr_task: asyncio.Task[Any]) -> None:
        assert self._proc is not None and self._exited is not None
        code = await self._proc.wait()
        await self._drain_stderr(stderr_task)
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
        if self.exit_code is not None:
            what = (
                f"worker {self.id!r} (pid {self.pid}) exited during {tool!r}: "
                + exit_description(self.exit_code)
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

    async def execute(
        self,
        tool: str,
        args: dict[str, Any],
        *,
        timeout: float | None = None,
        session_id: str | None = None,
        request_id: int = 0,
    ) -> Any:
        """Run ``tool`` on this worker.

        Raises:
            ToolError: the tool raised (remote type and traceback attached).
            ToolNotFoundError, InvalidArgumentsError, SerializationError: a bad request.
            ExecutionTimeoutError: past ``timeout``.
            WorkerCrashedError: the process died or the channel broke mid-call.
        """
        self.requests += 1
        try:
            return await self.transport.execute(
                tool, args, timeout=timeout, session_id=session_id, request_id=request_id
            )
        except TransportError as exc:
            raise await self._crash_error(exc, tool) from exc

    async def stream(
        self,
        tool: str,
        args: dict[str, Any],
        *,
        timeout: float | None = None,
        session_id: str | None = None,
        request_id: int = 0,
    ) -> AsyncIterator[Any]:
        """Run a streaming tool on this worker, yielding its chunks in order (errors as ``execute``)."""
        self.requests += 1
        agen = self.transport.stream(
            tool, args, timeout=timeout, session_id=session_id, request_id=request_id
        )
        try:
            async for chunk in agen:
                yield chunk
        except TransportError as exc:
            raise await self._crash_error(exc, tool) from exc
        finally:
            await agen.aclose()  # type: ignore[attr-defined]

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

    def _signal_group(self, sig: signal.Signals, *, after_exit: bool = False) -> None:
        if self.pid is None or (self.exit_code is not None and not after_exit):
            return
        try:
            os.killpg(self.pid, sig)
        except ProcessLookupError:
            pass
        except PermissionError:  # pragma: no cover - the group leader's pid was reused
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def kill(self) -> None:
        """SIGKILL the worker's whole process group now (non-blocking)."""
        self._stop_requested = True
        if self.state is not WorkerState.EXITED:
            self.state = WorkerState.STOPPING
        self._signal_group(signal.SIGKILL)

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
            if self.exit_code is None:
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
                    self._signal_group(signal.SIGKILL)
                    await self.wait_exited()
            # Anything else the worker started in its group goes too.
            self._signal_group(signal.SIGKILL, after_exit=True)
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
