"""Workers served by ``snakepit worker`` in a subprocess, and TLS material made on the spot."""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

SHOWCASE = "snakepit.examples.showcase:Showcase"


@dataclass(frozen=True)
class Tls:
    ca: Path
    cert: Path
    key: Path


def make_tls(directory: Path, name: str = "test") -> Tls:
    """A fresh CA and a certificate it signed for 127.0.0.1 and localhost, as PEM files."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    later = now + datetime.timedelta(days=1)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name} CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(later)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(later)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    out = Tls(directory / f"{name}-ca.pem", directory / f"{name}.pem", directory / f"{name}.key")
    out.ca.write_bytes(ca.public_bytes(pem))
    out.cert.write_bytes(cert.public_bytes(pem))
    out.key.write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return out


class ServedWorker:
    """``snakepit worker`` in a subprocess; ``address`` is where it listens."""

    def __init__(self, proc: subprocess.Popen[bytes], address: str) -> None:
        self.proc = proc
        self.address = address

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def serve(token_file: Path, *, listen: str = "127.0.0.1:0", tls: Tls | None = None) -> ServedWorker:
    """Start ``snakepit worker`` and wait for its ready line (bounded by the test timeout)."""
    argv = [
        sys.executable,
        "-m",
        "snakepit.cli",
        "worker",
        "--adapter",
        SHOWCASE,
        "--listen",
        listen,
        "--token-file",
        str(token_file),
        "--threads",
        "2",
        "--log-level",
        "WARNING",
    ]
    if tls is not None:
        argv += ["--tls-cert", str(tls.cert), "--tls-key", str(tls.key)]
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()
    if not line.startswith("SNAKEPIT_READY "):
        proc.kill()
        proc.wait()
        raise RuntimeError(f"snakepit worker did not start: {line!r}")
    return ServedWorker(proc, json.loads(line.split(" ", 1)[1])["address"])


@contextlib.contextmanager
def served(
    token_file: Path, *, listen: str = "127.0.0.1:0", tls: Tls | None = None
) -> Iterator[ServedWorker]:
    worker = serve(token_file, listen=listen, tls=tls)
    try:
        yield worker
    finally:
        worker.kill()
