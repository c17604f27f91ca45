"""The host's handle on one worker process.

Spawns the worker in its own process group (session), waits for its ready
line within the startup timeout, connects the transport, asks for its tool
specs, forwards its stderr to ``logging``, watches for its exit, and stops it:
SIGTERM to the whole group, SIGKILL after a grace period. However the worker
ends (stopped, killed, crashed, killed from outside), what is left of its
group, the helpers it started, is killed as soon as its exit is seen. Every
step is an event on the pool's bus.

Its options, command line, environment and secrets pipe are in ``worker/_startup.py``;
what it prints is forwarded by ``worker/_stderr.py``.

A call whose channel breaks because the process died becomes
``WorkerCrashedError`` carrying the exit code (negative: the signal).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import secrets
import signal
from typing import TYPE_CHECKING, Any

from snakepit._wire._constants import READY_PREFIX as _READY
from snakepit.errors import WorkerCrashedError, WorkerStartupError
from snakepit.worker import _local as local
from snakepit.worker._base import HandleBase, WorkerState
from snakepit.worker._identity import pid_taken_by_a_live_process
from snakepit.worker._launch import DEVNULL, PIPE, SPAWN, LaunchError
from snakepit.worker._startup import (
    EXIT_MEANINGS,
    WorkerOptions,
    exit_description,
    launch_error,
    secrets_pipe,
    worker_command,
    worker_environment,
)
from snakepit.worker._stderr import LINE_SHOWN, forward_output, printable, shown
from snakepit.worker._transport import GrpcTransport, Transport, TransportError

if TYPE_CHECKING:
    import socket

    from snakepit.clock import Clock
    from snakepit.events import EventBus
    from snakepit.worker._launch import WorkerProcess

__all__ = ["WorkerHandle", "WorkerOptions", "WorkerState"]

READY_PREFIX = _READY.encode()
_STDERR_TAIL = 40
_STDERR_DRAIN = 5.0  # seconds a dead worker's last output may take to arrive


class WorkerHandle(HandleBase):
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
        super().__init__(worker_id, options, events=events, clock=clock, source=source)
        self._proc: WorkerProcess | None = None
        self._stdin: int | None = None  # our end of the worker's stdin: its lifeline
        self._reaped = False
        self._stderr_tail: collections.deque[str] = collections.deque(maxlen=_STDERR_TAIL)
        self._stop_lock = asyncio.Lock()

    @property
    def stderr_tail(self) -> str:
        return "\n".join(self._stderr_tail)

    def __repr__(self) -> str:
        return f"<WorkerHandle {self.id} pid={self.pid} {self.state.value}>"

    # -- start ---------------------------------------------------------------------------------

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
            stdin, self._stdin = secrets_pipe(handed)
            stdout = PIPE
        try:
            self._proc = await (o.launcher or SPAWN).launch(
                worker_command(self.id, o),
                env=worker_environment(o),
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
        self._starting()
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
        except (LaunchError, OSError) as exc:
            self.state = WorkerState.EXITED
            if channel is not None:
                channel.close()
            raise launch_error(self.id, o, exc) from exc
        finally:
            if theirs is not None:
                theirs.close()  # the worker holds it now: its EOF must mean the worker's end
        assert self._proc is not None
        self.pid = self._proc.pid
        self._exited = asyncio.get_running_loop().create_future()
        stderr_task = self._tasks.spawn(self._forward_stderr(), "stderr")
        self._tasks.spawn(self._watch_exit(stderr_task), "exit-watch")
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
                f"{EXIT_MEANINGS.get(self.exit_code or 0, '')}"
                + (
                    f"\n--- stderr (last lines) ---\n{self.stderr_tail}"
                    if self._stderr_tail
                    else ""
                ),
                worker_id=self.id,
                exit_code=self.exit_code,
                stderr_tail=self.stderr_tail,
            ) from (exc if not isinstance(exc, TimeoutError) else None)
        self._ready(address, pid=self.pid)

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
                    raise TransportError(f"malformed ready line {line[:LINE_SHOWN]!r}") from exc
            # Anything printed before the ready line (an import that prints) is a log line.
            self._log.info("%s", shown(line))

    async def _forward_stderr(self) -> None:
        """Forward the worker's stderr to logging, record by record, until it closes."""
        assert self._proc is not None and self._proc.stderr is not None
        await forward_output(self._proc.stderr, self._log_record)

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
        except Exception:  # the reader's own failure was logged by its TaskOwner
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
            self._publish_exited(code, expected=self._stop_requested)
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
        # The exit watcher finishes by itself once the process is reaped.
        await self._tasks.join(timeout=2.0)
        self._tasks.cancel()
