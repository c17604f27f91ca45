"""The calls every worker handle makes through its transport, one way for all of them.

A handle (a spawned or forked worker, or one attached over the network) supplies its
``transport``, a ``requests`` counter and ``_crash_error``, which turns a broken channel
into the ``WorkerCrashedError`` that fits it (an exit code, or a lost remote worker).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from snakepit.worker._transport import TransportError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from snakepit.errors import WorkerCrashedError
    from snakepit.worker._transport import Transport

__all__ = ["TransportCalls"]


class TransportCalls:
    """``execute``, ``stream`` and ``settle`` through ``self.transport``."""

    requests: int

    @property
    def transport(self) -> Transport:
        raise NotImplementedError

    async def _crash_error(self, exc: TransportError, tool: str) -> WorkerCrashedError:
        raise NotImplementedError

    async def execute(
        self,
        tool: str,
        args: dict[str, Any],
        *,
        timeout: float | None = None,
        session_id: str | None = None,
        request_id: int = 0,
    ) -> Any:
        """Run ``tool`` on the worker.

        Raises:
            ToolError: the tool raised (remote type and traceback attached).
            ToolNotFoundError, InvalidArgumentsError, SerializationError: a bad request.
            ExecutionTimeoutError: past ``timeout``.
            WorkerCrashedError: the worker died, or was lost, or its channel broke mid-call.
        """
        self.requests += 1
        try:
            return await self.transport.execute(
                tool, args, timeout=timeout, session_id=session_id, request_id=request_id
            )
        except TransportError as exc:
            raise await self._crash_error(exc, tool) from exc

    async def stream(
        self,
        tool: str,
        args: dict[str, Any],
        *,
        timeout: float | None = None,
        session_id: str | None = None,
        request_id: int = 0,
    ) -> AsyncIterator[Any]:
        """Run a streaming tool, yielding its chunks in order (errors as ``execute``)."""
        self.requests += 1
        agen = self.transport.stream(
            tool, args, timeout=timeout, session_id=session_id, request_id=request_id
        )
        try:
            async for chunk in agen:
                yield chunk
        except TransportError as exc:
            raise await self._crash_error(exc, tool) from exc
        finally:
            await agen.aclose()  # type: ignore[attr-defined]

    async def settle(
        self, request_ids: list[int], *, wait: float, timeout: float | None
    ) -> list[int]:
        """Of ``request_ids`` (calls the host abandoned), those whose tool code still runs
        after up to ``wait`` seconds; threads of sync tools and generators included.

        Raises:
            ExecutionTimeoutError: no answer within ``timeout``.
            WorkerCrashedError: the worker died or was lost, the channel broke, or the worker
                does not implement ``Settle``.
        """
        try:
            return await self.transport.settle(request_ids, wait=wait, timeout=timeout)
        except TransportError as exc:
            raise await self._crash_error(exc, "Settle") from exc
