"""``launcher="ray"``: each worker in a Ray actor, reached directly over TCP.

When the pool starts it connects to Ray (``ray.init()`` if the program has not,
which joins ``RAY_ADDRESS`` or starts a local instance) and draws a token. Each
worker start creates a :class:`~snakepit.worker._ray_actor.WorkerActor` with the
pool's ``ray_options``; Ray places it, the actor starts the worker process on its
node (TCP on the node's IP, the pool's token) and reports the address, and the pool
calls the worker directly, never through Ray. The placement watches the actor:
when the actor or its node dies, the handle is lost, the calls it ran fail with
``WorkerCrashedError``, and the pool's supervision starts a new actor, which Ray may place
on another node. ``close()`` kills every actor the pool made (``ray.kill``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
from typing import TYPE_CHECKING, Any

from snakepit.errors import InvalidValueError, WorkerStartupError
from snakepit.worker._attached import Endpoint
from snakepit.worker._paths import host_import_paths

if TYPE_CHECKING:
    from collections.abc import Callable

    from snakepit.config import PoolConfig
    from snakepit.worker._attached import Placement

__all__ = ["RayPlacement", "RayPlacements"]

log = logging.getLogger("snakepit.pool")


class RayPlacements:
    """The pool's side of Ray: the connection, the token, and every actor it made."""

    def __init__(self, config: PoolConfig, pool: str) -> None:
        self.config = config
        self.pool = pool
        self.token = secrets.token_hex(16)
        self.actors: dict[str, Any] = {}  # actor id (hex) -> handle, until killed
        self.actor_class: Any = None
        self.worker_env: dict[str, str] = {}
        self.bridge_token: str | None = None

    async def open(self) -> None:
        try:
            import ray
        except ImportError:
            raise InvalidValueError(
                "launcher='ray' needs Ray: pip install 'pysnakepit[ray]'", option="launcher"
            ) from None
        if not ray.is_initialized():
            await asyncio.to_thread(ray.init, include_dashboard=False)
        from snakepit.worker._ray_actor import WorkerActor

        self.actor_class = ray.remote(WorkerActor)

    def bridge_host(self) -> str:
        """Where the host bridge listens so that workers on other nodes reach it."""
        import ray

        return str(ray.util.get_node_ip_address())  # type: ignore[no-untyped-call,unused-ignore]

    def attach_bridge(self, env: dict[str, str], token: str | None) -> None:
        self.worker_env = dict(env)
        self.bridge_token = token

    def factory(self, slot: int) -> Callable[[], Placement]:
        return lambda: RayPlacement(self)

    async def close(self) -> None:
        """Kill every actor still alive (the pool stopped the workers gracefully)."""
        if not self.actors:
            return
        import ray

        for actor in list(self.actors.values()):
            with contextlib.suppress(Exception):
                ray.kill(actor, no_restart=True)
        self.actors.clear()


def _argv(config: PoolConfig, worker_id: str) -> list[str]:
    argv = [
        "--adapter",
        config.adapter,
        "--worker-id",
        worker_id,
        "--threads",
        str(max(config.threads, config.max_concurrency)),
        "--max-message-bytes",
        str(config.max_message_mb * 1024 * 1024),
    ]
    if config.serialization == "pickle":
        argv.append("--allow-pickle")
    return argv


class RayPlacement:
    """One worker start: one actor."""

    restartable = True
    loss_grace = 1.0

    def __init__(self, owner: RayPlacements) -> None:
        self._owner = owner
        self._actor: Any = None
        self._actor_id = ""
        self._where = "Ray actor (not placed yet)"

    def describe(self) -> str:
        return self._where

    async def start(self, worker_id: str, timeout: float) -> Endpoint:
        owner = self._owner
        options = dict(owner.config.ray_options or {})
        env = dict(owner.config.env or {})
        env.update(owner.worker_env)
        # As local workers do, import what the host imports (paths missing on a node are
        # skipped there; runtime_env's working_dir and py_modules come first).
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in [env.get("PYTHONPATH", ""), *host_import_paths()] if p
        )
        try:
            self._actor = owner.actor_class.options(**options).remote(
                _argv(owner.config, worker_id), env, owner.token, owner.bridge_token
            )
        except Exception as exc:  # Ray rejects what ray_options asked (a bad runtime_env...)
            raise WorkerStartupError(
                f"worker {worker_id!r}: Ray refused the actor with ray_options={options!r}: "
                f"{type(exc).__name__}: {exc}",
                worker_id=worker_id,
                exit_code=None,
                stderr_tail="",
            ) from exc
        self._actor_id = self._actor._actor_id.hex()
        owner.actors[self._actor_id] = self._actor
        self._where = f"Ray actor {self._actor_id[:12]} (pending placement)"
        try:
            info = await self._actor.start.remote(timeout)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise WorkerStartupError(
                f"worker {worker_id!r}: the {self._where} could not start it: {_ray_reason(exc)}",
                worker_id=worker_id,
                exit_code=None,
                stderr_tail="",
            ) from exc
        self._where = (
            f"Ray actor {self._actor_id[:12]} on node {info['node_ip']} "
            f"({str(info['node_id'])[:12]}), worker pid {info['pid']}"
        )
        return Endpoint(str(info["address"]), owner.token, None)

    async def wait_lost(self) -> str | None:
        if self._actor is None:
            return None
        try:
            code = await self._actor.wait.remote()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            return f"the Ray actor or its node died: {_ray_reason(exc)}"
        return f"its worker process exited (code {code})"

    async def stop(self, grace: float) -> None:
        if self._actor is None:
            return
        try:
            await asyncio.wait_for(self._actor.stop.remote(grace), grace + 5.0)
        except asyncio.CancelledError:
            self.kill()
            raise
        except Exception as exc:  # the actor is gone already, or stuck: it is killed below
            log.debug("stopping %s: %s", self._where, exc)
        self.kill()

    def kill(self) -> None:
        if self._actor is None:
            return
        import ray

        with contextlib.suppress(Exception):
            ray.kill(self._actor, no_restart=True)
        self._owner.actors.pop(self._actor_id, None)


def _ray_reason(exc: BaseException) -> str:
    """The first line of what Ray said (its messages run to pages)."""
    text = str(exc).strip().splitlines()
    first = next((line for line in text if line.strip()), type(exc).__name__)
    return f"{type(exc).__name__}: {first[:500]}"
