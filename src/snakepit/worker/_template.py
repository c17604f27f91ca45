"""One fork-server template process as the host sees it: its control channel, its forks, their exits.

The template (``python -m snakepit.adapter._forkserver``) answers each spawn request
on a ``SOCK_SEQPACKET`` channel with the new worker's pid, and reports each worker's
exit status. A :class:`ForkedProcess` resolves its ``wait()`` from that report; each
worker is also watched through a pidfd, so if the template dies first, a worker of
it that exits later is still noticed, with an unknown exit code (``None``: it was
reaped by init, not by us).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import os
import select
import signal
import socket
from typing import TYPE_CHECKING, Any

from snakepit.worker._launch import LaunchError
from snakepit.worker._stderr import forward_output

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

__all__ = ["MAX_MESSAGE", "Exit", "ForkedProcess", "Template", "TemplateGone"]

log = logging.getLogger("snakepit.forkserver")

MAX_MESSAGE = 1024 * 1024
_OUTPUT_TAIL = 40
_STOP_TIMEOUT = 5.0


class TemplateGone(Exception):
    """Raised when the template died before it answered a request (the launch is retried once)."""


class Exit:
    """A forked worker's end, as the template reports it or (template gone) its pidfd shows."""

    def __init__(self, loop: asyncio.AbstractEventLoop, pid: int, template: Template) -> None:
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


def _kill_unowned(future: asyncio.Future[Exit]) -> None:
    if not future.cancelled() and future.exception() is None:
        with contextlib.suppress(OSError):
            os.kill(future.result().pid, signal.SIGKILL)  # it may not lead its group yet


class ForkedProcess:
    """A worker forked by the template: what a handle needs of a process."""

    def __init__(
        self,
        exit_: Exit,
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


class Template:
    """One running template process and its control channel."""

    def __init__(
        self,
        proc: asyncio.subprocess.Process,
        control: socket.socket,
        number: int,
        *,
        request_ids: Iterator[int],
        on_death: Callable[[Template], None],
    ) -> None:
        self.proc = proc
        self.pid = proc.pid
        self.control = control
        self.number = number
        self.alive = True
        self.ready: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pending: dict[int, asyncio.Future[Exit]] = {}
        self.exits: dict[int, Exit] = {}
        self.output_tail: collections.deque[str] = collections.deque(maxlen=_OUTPUT_TAIL)
        self._request_ids = request_ids
        self._on_death = on_death
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
        await forward_output(self.proc.stdout, self._log_record)

    def _log_record(self, lines: list[str]) -> None:
        self.output_tail.extend(lines)
        log.info("fork server %d (pid %d): %s", self.number, self.pid, "\n".join(lines))

    def _on_readable(self) -> None:
        while self.alive:
            try:
                data = self.control.recv(MAX_MESSAGE)
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
            exit_ = self.exits[pid] = Exit(self._loop, pid, self)
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

    def _settle(self, message: dict[str, Any], outcome: Exit | Exception) -> None:
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
            self.ready.set_exception(TemplateGone())
        for future in self.pending.values():
            if not future.done():
                future.set_exception(TemplateGone())
        self.pending.clear()
        for exit_ in list(self.exits.values()):
            exit_.template_died()
        self.exits = {pid: e for pid, e in self.exits.items() if not e.future.done()}
        self._on_death(self)

    async def spawn(
        self, args: list[str], env: dict[str, str], cwd: str | None, fds: list[int]
    ) -> Exit:
        request_id = next(self._request_ids)
        future: asyncio.Future[Exit] = self._loop.create_future()
        self.pending[request_id] = future
        data = json.dumps(
            {"op": "spawn", "id": request_id, "args": args, "env": env, "cwd": cwd}
        ).encode()
        try:
            socket.send_fds(self.control, [data], fds)
        except OSError as exc:
            self.pending.pop(request_id, None)
            if len(data) > MAX_MESSAGE // 2:
                raise LaunchError(
                    f"the worker's environment and arguments ({len(data)} bytes) are too large "
                    "for the fork server; use start_method='spawn'"
                ) from exc
            self.died()
            raise TemplateGone() from exc
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
