"""The Ray actor that holds one snakepit worker process on its node (``launcher="ray"``).

Ray places the actor (with the pool's ``ray_options``: CPUs, GPUs, custom resources,
``runtime_env``); the actor starts ``python -m snakepit.adapter`` on its node, bound to
the node's IP over TCP with the pool's token, and reports the address from the
worker's ready line. Calls never pass through Ray: the pool talks to the worker
directly. The worker dies with its actor: it gets SIGKILL when the actor process dies
(``PR_SET_PDEATHSIG``, set by the worker) and EOF on its stdin, which only the actor
holds.

This module is imported by Ray on every node: it needs only the standard library
and Ray, never the host side of snakepit.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from typing import Any

__all__ = ["WorkerActor"]

_READY = b"SNAKEPIT_READY "


class WorkerActor:
    """One worker process on this actor's node (an async actor: ``wait`` and ``stop`` run
    concurrently)."""

    def __init__(
        self, argv: list[str], env: dict[str, str], token: str, host_token: str | None = None
    ) -> None:
        self._argv = list(argv)
        self._env = dict(env)
        self._secrets = {"token": token, **({"host_token": host_token} if host_token else {})}
        self._proc: asyncio.subprocess.Process | None = None
        self._forwarder: asyncio.Task[None] | None = None

    async def start(self, startup_timeout: float) -> dict[str, Any]:
        """Start the worker and return where it listens (and on which node).

        Raises:
            RuntimeError: it exited or printed no ready line in time (its output attached).
        """
        import ray

        node_ip = ray.util.get_node_ip_address()  # type: ignore[no-untyped-call,unused-ignore]
        env = dict(os.environ)
        env.update(self._env)
        # What this actor can import (runtime_env's working_dir, py_modules), the worker can.
        paths = [p for p in sys.path if p]
        env["PYTHONPATH"] = os.pathsep.join([*paths, env.get("PYTHONPATH", "")]).rstrip(":")
        env["PYTHONUNBUFFERED"] = "1"
        argv = [
            sys.executable,
            "-m",
            "snakepit.adapter",
            *self._argv,
            "--tcp",
            node_ip,
            "--parent-pid",
            str(os.getpid()),
            "--secrets-stdin",
        ]
        self._proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        assert self._proc.stdin is not None and self._proc.stdout is not None
        # The token goes on the first line of stdin, never in the environment; the pipe
        # stays open as the worker's lifeline (EOF: this actor is gone).
        self._proc.stdin.write(json.dumps(self._secrets).encode() + b"\n")
        lines: list[str] = []
        try:
            async with asyncio.timeout(startup_timeout):
                while True:
                    line = await self._proc.stdout.readline()
                    if not line:
                        code = await self._proc.wait()
                        raise RuntimeError(
                            f"the worker exited with code {code} before it was ready on node "
                            f"{node_ip}:\n" + "\n".join(lines[-40:])
                        )
                    if line.startswith(_READY):
                        address = str(json.loads(line[len(_READY) :])["address"])
                        break
                    lines.append(line.decode(errors="replace").rstrip())
        except TimeoutError:
            self._signal(signal.SIGKILL)
            raise RuntimeError(
                f"the worker printed no ready line within {startup_timeout}s on node "
                f"{node_ip}:\n" + "\n".join(lines[-40:])
            ) from None
        # From here its output goes to this actor's log (Ray forwards it to the driver).
        self._forwarder = asyncio.get_running_loop().create_task(self._forward(self._proc.stdout))
        return {
            "address": address,
            "pid": self._proc.pid,
            "node_ip": node_ip,
            "node_id": ray.get_runtime_context().get_node_id(),
        }

    async def _forward(self, stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            sys.stderr.write(line.decode(errors="replace"))

    async def wait(self) -> int | None:
        """Return the worker's exit code once it has ended."""
        if self._proc is None:
            return None
        return await self._proc.wait()

    def _signal(self, sig: signal.Signals) -> None:
        if self._proc is not None and self._proc.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._proc.pid, sig)

    async def stop(self, grace: float) -> int | None:
        """SIGTERM the worker's process group, SIGKILL after ``grace`` seconds."""
        if self._proc is None:
            return None
        self._signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(self._proc.wait(), grace)
        except TimeoutError:
            self._signal(signal.SIGKILL)
            return await self._proc.wait()
