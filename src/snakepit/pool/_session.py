"""``Session``: calls that belong together, pinned to one worker when possible."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from snakepit.pool._pool import Pool

__all__ = ["Session"]


class Session:
    """Runs calls within one session of a pool (see ``Pool.session``).

    Calls prefer the worker the session used last (``affinity="hint"``) or
    insist on it (the strict modes), so worker-local state such as a loaded
    model or ``remember``/``recall`` stays reachable.
    """

    def __init__(self, pool: Pool, session_id: str) -> None:
        self.pool = pool
        self.id = session_id

    async def __aenter__(self) -> Session:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    @property
    def worker_id(self) -> str | None:
        """The worker this session last ran on (None before its first call)."""
        return self.pool.affinity_worker(self.id)

    async def execute(
        self, tool: str, args: dict[str, Any] | None = None, *, timeout: Any = None, **kw: Any
    ) -> Any:
        """``Pool.execute`` within this session (same arguments and errors)."""
        if timeout is not None:
            kw["timeout"] = timeout
        return await self.pool.execute(tool, args, session_id=self.id, **kw)

    def stream(
        self, tool: str, args: dict[str, Any] | None = None, **kw: Any
    ) -> AsyncIterator[Any]:
        """``Pool.stream`` within this session."""
        return self.pool.stream(tool, args, session_id=self.id, **kw)

    def __repr__(self) -> str:
        return f"<Session {self.id} worker={self.worker_id}>"
