"""Answers a local worker's calls to the host (``HOST_CALL`` frames) with the pool's ``HostOps``.

The same :class:`~snakepit.bridge._ops.HostOps` serves gRPC workers: sessions,
variables, watches and host tools answer alike whatever the transport.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from snakepit._proto.snakepit.v1 import host_pb2 as hpb
from snakepit._tasks import TaskOwner
from snakepit._wire._errors import error_info
from snakepit._wire._framing import HOST_METHODS, Flag, Frame, Kind, pack
from snakepit.errors import SnakepitError

if TYPE_CHECKING:
    from collections.abc import Callable

    from snakepit.bridge._ops import HostOps

__all__ = ["HostCalls"]

log = logging.getLogger("snakepit.worker")
_SERVICE = hpb.DESCRIPTOR.services_by_name["HostService"]
_RESPONSES: dict[str, Any] = {
    name: getattr(hpb, _SERVICE.methods_by_name[name].output_type.name) for name in HOST_METHODS
}


# How long closing the channel waits for host calls after cancelling them.
_CLOSE_GRACE = 1.0


class HostCalls:
    """The worker's calls to the host in flight, each a task answering on the channel.

    Args:
        host: answers the calls (None: each fails with a ``SnakepitError`` saying so).
        write: sends a frame to the worker.
        worker_id: for logs and task names.
    """

    def __init__(
        self, host: HostOps | None, write: Callable[[bytes], None], *, worker_id: str
    ) -> None:
        self._host = host
        self._write = write
        self._worker_id = worker_id
        self._tasks = TaskOwner("worker", worker_id, log)
        self._calls: dict[int, asyncio.Task[Any]] = {}  # by call id, for HOST_CANCEL

    def start(self, frame: Frame) -> None:
        """Answer the ``HOST_CALL`` ``frame`` (on a task of its own)."""
        index = frame.kind - Kind.HOST_CALL
        call_id = frame.call_id
        if index >= len(HOST_METHODS):
            log.warning("worker %s called an unknown host method %d", self._worker_id, index)
            self._write(pack(Kind.HOST_REPLY, call_id, b"", Flag.END))
            return
        method = HOST_METHODS[index]
        if self._host is None:
            self._write(pack(Kind.HOST_REPLY, call_id, self._no_host(method), Flag.END))
            return
        coro = (
            self._watch(call_id, frame.body)
            if method == "WatchVariables"
            else self._unary(call_id, method, frame.body)
        )
        task = self._calls[call_id] = self._tasks.spawn(coro, f"host:{method}")
        task.add_done_callback(lambda _t: self._calls.pop(call_id, None))

    def _no_host(self, method: str) -> bytes:
        """The answer to ``method`` of a worker that has no host: an error saying so (the
        host tools of nobody are none)."""
        response = _RESPONSES[method]()
        if "error" in response.DESCRIPTOR.fields_by_name:
            error = SnakepitError(
                f"worker {self._worker_id!r} has no host to answer {method}: it runs outside a "
                "pool; start it from a Pool to use sessions, variables and host tools",
                worker_id=self._worker_id,
            )
            response.error.CopyFrom(error_info(error))
        data: bytes = response.SerializeToString()
        return data

    def cancel(self, call_id: int) -> None:
        """The worker gave the call up (``HOST_CANCEL``)."""
        task = self._calls.pop(call_id, None)
        if task is not None:
            task.cancel()

    def cancel_all(self) -> None:
        """The channel is gone: nobody waits for an answer."""
        self._calls.clear()
        self._tasks.cancel()

    async def aclose(self) -> None:
        """Cancel the calls still answered and wait, up to a second, until their tasks
        have ended (a host tool that ignores its cancellation must not hold a worker's
        exit up).

        Raises:
            asyncio.CancelledError: the caller was cancelled.
        """
        self._calls.clear()
        await self._tasks.aclose(timeout=_CLOSE_GRACE)

    async def _unary(self, call_id: int, method: str, body: bytes) -> None:
        assert self._host is not None
        try:
            answer = await self._host.call(method, body)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("worker %s: host call %s failed", self._worker_id, method)
            answer = b""
        self._write(pack(Kind.HOST_REPLY, call_id, answer, Flag.END))

    async def _watch(self, call_id: int, body: bytes) -> None:
        assert self._host is not None
        try:
            items = self._host.watch(body)
            async for item in items:
                self._write(pack(Kind.HOST_REPLY, call_id, item.SerializeToString()))
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("worker %s: a watch failed", self._worker_id)
        self._write(pack(Kind.HOST_REPLY, call_id, b"", Flag.END))
