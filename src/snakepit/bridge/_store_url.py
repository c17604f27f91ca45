"""Parsing a session store URL (``redis://host:port/db?prefix=app``) without importing redis.

``PoolConfig`` validates ``session_store`` with this, so a malformed URL is a
``ValueError`` when the pool is built, and the URL shown in errors and logs
never carries the password.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = ["DEFAULT_PREFIX", "SCHEMES", "StoreURL", "check_prefix", "parse_store_url"]

SCHEMES = ("redis", "rediss", "unix")
DEFAULT_PREFIX = "snakepit"
_PREFIX = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


def check_prefix(prefix: Any) -> str:
    """Return ``prefix`` when it can start every key of a store: ``[A-Za-z0-9_.:-]{1,64}``.

    Raises:
        ValueError: it is not a string of that shape.
    """
    if not isinstance(prefix, str) or _PREFIX.fullmatch(prefix) is None:
        raise ValueError(
            f"invalid session store prefix {prefix!r}: use 1-64 characters [A-Za-z0-9_.:-]"
        )
    return prefix


@dataclass(frozen=True)
class StoreURL:
    """A parsed store URL.

    Attributes:
        client_url: what the Redis client connects to (``prefix`` removed).
        shown: the URL with any password replaced by ``***``, for messages.
        prefix: the namespace every key and channel of the store starts with.
    """

    client_url: str
    shown: str
    prefix: str


def parse_store_url(url: Any) -> StoreURL:
    """Parse ``redis://[:password@]host[:port][/db][?prefix=name]`` (or ``rediss://``, ``unix://``).

    Raises:
        ValueError: not such a URL (a bad scheme, host, port, database or query), named.
    """
    if not isinstance(url, str) or not url:
        raise ValueError(f"session store URL must be a non-empty string, got {url!r}")
    parts = urlsplit(url)
    shown = _hide_password(parts)
    if parts.scheme not in SCHEMES:
        raise ValueError(
            f"session store URL {shown!r} must start with " + ", ".join(f"{s}://" for s in SCHEMES)
        )
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"session store URL {shown!r} has an invalid port") from None
    if parts.scheme == "unix":
        if not parts.path:
            raise ValueError(f"session store URL {shown!r} needs a socket path: unix:///path")
    else:
        if not parts.hostname:
            raise ValueError(f"session store URL {shown!r} needs a host: redis://host:6379/0")
        db = parts.path.lstrip("/")
        if db and not db.isdigit():
            raise ValueError(
                f"session store URL {shown!r}: the database must be a number (/0), got {db!r}"
            )
        del port
    query = parse_qsl(parts.query, keep_blank_values=True)
    allowed = {"prefix", "db"} if parts.scheme == "unix" else {"prefix"}
    unknown = sorted({k for k, _ in query} - allowed)
    if unknown:
        raise ValueError(
            f"session store URL {shown!r}: unknown parameter(s) {', '.join(unknown)} "
            f"(allowed: {', '.join(sorted(allowed))})"
        )
    prefix = DEFAULT_PREFIX
    rest = []
    for key, value in query:
        if key == "prefix":
            prefix = check_prefix(value)
        else:
            rest.append((key, value))
    client = _unsplit(parts._replace(query=urlencode(rest), fragment=""))
    return StoreURL(client_url=client, shown=shown, prefix=prefix)


def _unsplit(parts: Any) -> str:
    text = str(urlunsplit(parts))
    if parts.scheme == "unix" and not parts.netloc:
        text = "unix://" + text[len("unix:") :]  # urlunsplit drops the empty authority
    return text


def _hide_password(parts: Any) -> str:
    if parts.password is None:
        return _unsplit(parts)
    user = parts.username or ""
    host = parts.netloc.rsplit("@", 1)[1]
    return _unsplit(parts._replace(netloc=f"{user}:***@{host}"))
