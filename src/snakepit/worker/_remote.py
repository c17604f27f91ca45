"""Workers on other machines, started by hand: ``Pool(remote_workers=["host:port", ...])``.

Each address is one slot, served by ``snakepit worker --adapter ... --listen
HOST:PORT --token-file F [--tls-cert C --tls-key K]`` there. The pool connects
with the token (and, with ``tls_ca=``, over TLS that checks the worker's
certificate), watches it by heartbeat, and on a loss fails the calls in flight
with ``WorkerCrashedError`` and publishes ``WorkerLost``. It cannot restart a
process on another machine: the slot is retried with backoff until the worker
answers again (someone restarts it there), within the pool's restart intensity.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from snakepit.worker._attached import Endpoint

if TYPE_CHECKING:
    import grpc

__all__ = ["RemotePlacement", "load_tls_ca"]


class RemotePlacement:
    """A worker someone else started at ``address``; the pool only connects and detaches."""

    restartable = False
    loss_grace = 0.0

    def __init__(
        self, address: str, *, token: str, credentials: grpc.ChannelCredentials | None
    ) -> None:
        self.address = address
        self._endpoint = Endpoint(address, token, credentials)

    def describe(self) -> str:
        tls = "TLS" if self._endpoint.credentials is not None else "no TLS"
        return f"remote worker at {self.address} ({tls})"

    async def start(self, worker_id: str, timeout: float) -> Endpoint:
        return self._endpoint

    async def wait_lost(self) -> str | None:
        return None  # nothing tells us but a broken call or a missed heartbeat

    async def stop(self, grace: float) -> None:
        return None  # the process belongs to whoever started it: the pool only detaches

    def kill(self) -> None:
        return None


def load_tls_ca(path: str) -> grpc.ChannelCredentials:
    """TLS channel credentials that trust the PEM CA bundle at ``path``.

    Raises:
        OSError: the file cannot be read.
        ValueError: it holds no PEM certificate.
    """
    import grpc

    with open(path, "rb") as f:
        pem = f.read()
    if b"-----BEGIN CERTIFICATE-----" not in pem:
        raise ValueError(f"{path!r} holds no PEM certificate (-----BEGIN CERTIFICATE-----)")
    return grpc.ssl_channel_credentials(root_certificates=pem)
