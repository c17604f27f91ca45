"""How a worker process comes to be: the launcher seam between a handle and the OS.

``await launcher.launch(argv, env=..., cwd=..., stdin=..., stdout=..., stderr=...)``
starts ``argv`` in its own session (so its process group is its pid, and a
signal to the group reaches whatever it starts) and returns a
:class:`WorkerProcess`. Each of ``stdin``/``stdout``/``stderr`` is ``PIPE`` (the
host keeps the other end: a ``StreamReader`` for output; for stdin the write end
stays open for the process's life, so the worker sees EOF only when the host is
gone), ``DEVNULL``, or a file descriptor (an ``int`` or anything with
``fileno()``, e.g. one end of a socketpair) that the child receives a copy of;
the caller still owns and closes its own copy.

Two launchers exist:

- :class:`SpawnLauncher` (``start_method="spawn"``): a fresh interpreter via
  ``asyncio.create_subprocess_exec``;
- :class:`~snakepit.worker._forkserver.ForkServer` (``start_method="forkserver"``):
  a fork of a template process that has imported the adapter's module once.
"""

from __future__ import annotations

import asyncio
import subprocess
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

__all__ = [
    "DEVNULL",
    "PIPE",
    "SPAWN",
    "LaunchError",
    "Launcher",
    "SpawnLauncher",
    "SpawnedProcess",
    "StdioSpec",
    "WorkerProcess",
]

PIPE = subprocess.PIPE
_STREAM_LIMIT = 64 * 1024
DEVNULL = subprocess.DEVNULL


class _HasFileno(Protocol):
    def fileno(self) -> int: ...


#: ``PIPE``, ``DEVNULL``, a file descriptor, or an object with ``fileno()``.
StdioSpec = int | _HasFileno


class LaunchError(Exception):
    """Raised when a launcher could not start the process for a reason other than a missing
    program (which is ``OSError``): the fork server failed to import the adapter's module,
    refused to fork, or died; ``exit_code`` and ``output_tail`` tell why."""

    def __init__(
        self, message: str, *, exit_code: int | None = None, output_tail: str = ""
    ) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.output_tail = output_tail


class WorkerProcess(Protocol):
    """What a handle uses of a started process (``asyncio.subprocess.Process`` is one)."""

    @property
    def pid(self) -> int: ...

    @property
    def stdout(self) -> asyncio.StreamReader | None: ...

    @property
    def stderr(self) -> asyncio.StreamReader | None: ...

    @property
    def returncode(self) -> int | None: ...

    async def wait(self) -> int | None:
        """Wait for the process to end: its exit code (negative: the signal), or None when
        the process has ended but its code cannot be known (it was not reaped by anyone
        who could tell us). Resolves when the process ends, even while a helper it started
        still holds its stdout or stderr open."""
        ...

    def close(self) -> None:
        """Close the host's ends of the process's pipes (after it ended: a helper that left
        its group may still hold the other ends)."""
        ...


class Launcher(Protocol):
    """Starts worker processes; see the module docstring for the stdio rules."""

    name: str

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
        """Start ``argv``.

        Raises:
            OSError: the program cannot be run (missing interpreter, bad cwd).
            LaunchError: the launcher itself failed (see its message).
        """
        ...


class SpawnLauncher:
    """A fresh interpreter for each worker, in its own session."""

    name = "spawn"

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
        """Spawn ``argv`` in a new session.

        Raises:
            OSError: the program cannot be run.
        """
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.subprocess_exec(
            lambda: _ExitProtocol(_STREAM_LIMIT, loop),
            *argv,
            stdin=_fd(stdin),
            stdout=_fd(stdout),
            stderr=_fd(stderr),
            env=dict(env),
            cwd=cwd,
            start_new_session=True,
        )
        return SpawnedProcess(transport, protocol, loop)


class _ExitProtocol(asyncio.subprocess.SubprocessStreamProtocol):
    """Reports the process's exit as soon as it is reaped.

    ``Process.wait()`` also waits for the stdout and stderr pipes to close, which never
    happens while a helper the worker started keeps them open.
    """

    def __init__(self, limit: int, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(limit=limit, loop=loop)
        self.exited: asyncio.Future[None] = loop.create_future()

    def process_exited(self) -> None:
        super().process_exited()
        if not self.exited.done():
            self.exited.set_result(None)


class SpawnedProcess(asyncio.subprocess.Process):
    """An ``asyncio.subprocess.Process`` whose ``wait()`` ends with the process, not its pipes."""

    def __init__(
        self,
        transport: asyncio.SubprocessTransport,
        protocol: _ExitProtocol,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        super().__init__(transport, protocol, loop)
        self._exit_protocol = protocol
        self._subprocess = transport

    async def wait(self) -> int:
        await self._exit_protocol.exited
        code = self._subprocess.get_returncode()
        assert code is not None  # reaped, since process_exited ran
        return code

    def close(self) -> None:
        self._subprocess.close()


def _fd(spec: StdioSpec) -> int:
    return spec if isinstance(spec, int) else spec.fileno()


SPAWN = SpawnLauncher()
