"""Where a pool's workers run when they are not its own child processes.

``placements_for(config)`` is None for local workers; otherwise it gives the pool an
object that prepares what every worker start needs (the token, TLS credentials, a Ray
connection) when the pool starts, makes a :class:`~snakepit.worker._attached.Placement`
for each start of a slot's worker, and cleans up when the pool closes.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from snakepit.errors import InvalidValueError
from snakepit.worker._remote import RemotePlacement, load_tls_ca

if TYPE_CHECKING:
    from collections.abc import Callable

    import grpc

    from snakepit.config import PoolConfig
    from snakepit.worker._attached import Placement

__all__ = ["Placements", "placements_for"]


class Placements(Protocol):
    async def open(self) -> None:
        """Prepare (read files, connect); raises ``InvalidValueError`` or ``WorkerStartupError``."""
        ...

    def factory(self, slot: int) -> Callable[[], Placement]: ...

    def bridge_host(self) -> str | None:
        """Where the host bridge must listen (TCP) for these workers; None: they get none."""
        ...

    def attach_bridge(self, env: dict[str, str], token: str | None) -> None:
        """The environment that tells a worker where the bridge is, and the bridge's token
        (handed to each worker with its own, never in its environment)."""
        ...

    async def close(self) -> None: ...


def placements_for(config: PoolConfig, pool: str) -> Placements | None:
    if config.remote_workers:
        return RemotePlacements(config)
    if config.launcher == "ray":
        from snakepit.pool._ray import RayPlacements

        return RayPlacements(config, pool)
    return None


class RemotePlacements:
    """``remote_workers``: slot ``i`` is the ``i``-th address."""

    def __init__(self, config: PoolConfig) -> None:
        self._config = config
        self._token = config.token or ""
        self._credentials: grpc.ChannelCredentials | None = None

    async def open(self) -> None:
        c = self._config
        if c.token_file is not None:
            try:
                text = await asyncio.to_thread(Path(c.token_file).read_text, encoding="utf-8")
                self._token = text.strip()
            except (OSError, UnicodeDecodeError) as exc:
                raise InvalidValueError(
                    f"cannot read the Pool's token_file {c.token_file!r}: {exc}",
                    option="token_file",
                ) from None
            if not self._token or any(ch.isspace() for ch in self._token):
                raise InvalidValueError(
                    f"the Pool's token_file {c.token_file!r} must hold one token "
                    "(printable, no spaces), the same as the workers' --token-file",
                    option="token_file",
                )
        if c.tls_ca is not None:
            try:
                self._credentials = await asyncio.to_thread(load_tls_ca, c.tls_ca)
            except (OSError, ValueError) as exc:
                raise InvalidValueError(
                    f"cannot use the Pool's tls_ca {c.tls_ca!r}: {exc}", option="tls_ca"
                ) from None

    def factory(self, slot: int) -> Callable[[], Placement]:
        assert self._config.remote_workers is not None
        address = self._config.remote_workers[slot - 1]
        token, credentials = self._token, self._credentials
        return lambda: RemotePlacement(address, token=token, credentials=credentials)

    def bridge_host(self) -> str | None:
        return None  # workers started by hand get no host bridge (docs/scaling.md)

    def attach_bridge(self, env: dict[str, str], token: str | None) -> None:
        return None

    async def close(self) -> None:
        return None
