"""Serving a worker on a chosen TCP address, for a pool on another machine.

``snakepit worker --listen HOST:PORT`` (and ``python -m snakepit.adapter --listen``)
binds here. TLS (``grpc.ssl_server_credentials``) is required for any address
that is not loopback, unless the operator says ``--insecure``: the pool's token
travels in every request's metadata, and without TLS anyone on the path reads it.

Worker side: imports nothing of the host.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

__all__ = ["ListenError", "bind", "is_loopback", "parse_listen"]


class ListenError(ValueError):
    """Raised when a listen address or its TLS files cannot be used; the message says why."""


def parse_listen(value: str) -> tuple[str, int]:
    """``"HOST:PORT"`` (``"[::1]:PORT"`` for IPv6) as ``(host, port)``; port 0 picks a free one.

    Raises:
        ListenError: not HOST:PORT, or the port is not 0..65535.
    """
    host, sep, port_text = value.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port_text.isdigit() or int(port_text) > 65535:
        raise ListenError(
            f"--listen must be HOST:PORT (e.g. 127.0.0.1:7000, 0.0.0.0:7000, [::1]:7000), "
            f"got {value!r}"
        )
    return host, int(port_text)


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only (``localhost``, 127.0.0.0/8, ``::1``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _read(path: str, what: str) -> bytes:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ListenError(f"cannot read the {what} {path!r}: {exc.strerror or exc}") from None
    if not data.strip():
        raise ListenError(f"the {what} {path!r} is empty")
    return data


def bind(server: Any, listen: str, *, tls_cert: str | None, tls_key: str | None) -> str:
    """Add ``listen`` to a ``grpc.aio`` server (TLS when a certificate is given); the address
    the server will be reachable at, with the port it got.

    Raises:
        ListenError: a bad address or unreadable TLS files.
        RuntimeError: gRPC could not bind the port (in use, not an address of this machine).
    """
    import grpc

    host, port = parse_listen(listen)
    target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if tls_cert or tls_key:
        if not (tls_cert and tls_key):
            raise ListenError("--tls-cert and --tls-key go together: give both or neither")
        credentials = grpc.ssl_server_credentials(
            [(_read(tls_key, "TLS key"), _read(tls_cert, "TLS certificate"))]
        )
        bound = server.add_secure_port(target, credentials)
    else:
        bound = server.add_insecure_port(target)
    shown = f"[{host}]" if ":" in host else host
    return f"{shown}:{bound}"
