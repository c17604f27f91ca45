"""How a worker starts: its options; a spawned one's command line, environment and secrets; what its failures to start mean.

Secrets (the tokens of TCP pools) reach the worker through a pipe it inherits as its
stdin, never its environment, which any process of the same user can read in
``/proc/<pid>/environ`` and which the worker's own children would inherit.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from snakepit.codec import Encoding
from snakepit.errors import WorkerStartupError
from snakepit.worker._launch import LaunchError
from snakepit.worker._paths import PACKAGE_ROOT, worker_pythonpath
from snakepit.worker._stderr import printable, printable_lines

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from pathlib import Path

    from snakepit.bridge._ops import HostOps
    from snakepit.worker._attached import Placement
    from snakepit.worker._launch import Launcher

__all__ = [
    "EXIT_MEANINGS",
    "WorkerOptions",
    "exit_description",
    "launch_error",
    "secrets_pipe",
    "worker_command",
    "worker_environment",
]

_UNIX_PATH_MAX = 107
#: The worker's exit codes at start-up (snakepit.adapter._main).
EXIT_MEANINGS = {
    2: " (bad worker command line)",
    3: " (the adapter could not be imported; the reason and how to fix it are below)",
    4: " (the adapter's setup() raised; its traceback is below)",
    5: " (the worker could not serve on its socket)",
}


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


def exit_description(code: int | None, *, exited: bool = False) -> str:
    """``"exit code 3"``, ``"killed by SIGKILL"``, ``"still running"``: for messages."""
    if code is None:
        # A forked worker outliving its fork server is reaped by init: nobody can tell us.
        return "exit code unknown (its fork server had died)" if exited else "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def worker_command(worker_id: str, o: WorkerOptions) -> list[str]:
    """``python -m snakepit.adapter ...`` for worker ``worker_id``; a stale socket of a
    gRPC worker of that id is removed.

    Raises:
        WorkerStartupError: the worker's Unix socket path would be too long.
    """
    cmd = [
        o.python,
        "-m",
        "snakepit.adapter",
        "--adapter",
        o.adapter,
        "--worker-id",
        worker_id,
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
        sock = o.runtime_dir / f"{worker_id}.sock"
        if len(str(sock)) > _UNIX_PATH_MAX:
            raise WorkerStartupError(
                f"worker {worker_id!r}: socket path {str(sock)!r} is longer than the "
                f"{_UNIX_PATH_MAX} bytes a Unix socket allows; use a shorter runtime_dir",
                worker_id=worker_id,
                exit_code=None,
                stderr_tail="",
            )
        with contextlib.suppress(FileNotFoundError):
            sock.unlink()
        cmd += ["--socket", str(sock)]
    else:
        cmd += ["--tcp", o.tcp_host]
    return cmd


def worker_environment(o: WorkerOptions) -> dict[str, str]:
    """The host's environment with the pool's additions, and the import paths it needs."""
    env = dict(os.environ)
    if o.env:
        env.update(o.env)
    env.update(o.extra_env)
    # The worker imports what the host imports (as multiprocessing's spawn does), and
    # an interpreter from another virtualenv can still import snakepit from here.
    env["PYTHONPATH"] = worker_pythonpath(env.get("PYTHONPATH", ""), PACKAGE_ROOT)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def secrets_pipe(secrets: dict[str, str]) -> tuple[int, int]:
    """A pipe for the worker's stdin: ``(read end, for the worker; write end)``. The write
    end, which stays with the host as the worker's lifeline (EOF: the host is gone), has
    carried ``secrets`` as one JSON line."""
    read_fd, write_fd = os.pipe()
    try:
        # Far below the pipe's buffer: the write never blocks.
        os.write(write_fd, json.dumps(secrets).encode() + b"\n")
    except BaseException:
        os.close(read_fd)
        os.close(write_fd)
        raise
    return read_fd, write_fd


def launch_error(
    worker_id: str, o: WorkerOptions, exc: LaunchError | OSError
) -> WorkerStartupError:
    """The error for a worker whose process could not be started at all."""
    if isinstance(exc, LaunchError):
        meaning = (
            f"; exit code {exc.exit_code}{EXIT_MEANINGS.get(exc.exit_code, '')}"
            if exc.exit_code is not None
            else ""
        )
        return WorkerStartupError(
            f"worker {worker_id!r} ({printable(o.adapter)}) failed to start: "
            f"{printable_lines(str(exc))}{meaning}",
            worker_id=worker_id,
            exit_code=exc.exit_code,
            stderr_tail=printable_lines(exc.output_tail),
        )
    return WorkerStartupError(
        f"worker {worker_id!r}: cannot run {o.python!r}: {exc}; check the pool's `python` option",
        worker_id=worker_id,
        exit_code=None,
        stderr_tail="",
    )
