"""``SessionContext``: what a tool sees of the call that runs it.

A tool asks for it by annotating a parameter with ``SessionContext``; the
worker passes one per call. It names the session (``None`` outside a
session), the request and the worker.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SessionContext"]


@dataclass(frozen=True)
class SessionContext:
    """The context of one tool call inside a worker."""

    session_id: str | None
    request_id: int
    worker_id: str
