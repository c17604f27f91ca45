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
- :class:`~snakepit.worker.forkserver.ForkServer` (``start_method="forkserver"``):
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
    "StdioSpec",
    "WorkerProcess",
]

PIPE = subprocess.PIPE
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
        who could tell us)."""
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
        """Spawn ``argv`` with ``asyncio.create_subprocess_exec`` in a new session.

        Raises:
            OSError: the program cannot be run.
        """
        return await asyncio.create_subprocess_exec(
            *argv,
            stdin=_fd(stdin),
            stdout=_fd(stdout),
            stderr=_fd(stderr),
            env=dict(env),
            cwd=cwd,
            start_new_session=True,
        )


def _fd(spec: StdioSpec) -> int:
    return spec if isinstance(spec, int) else spec.fileno()


SPAWN = SpawnLauncher()
