"""How the host talks to one worker: the ``Transport`` interface and its gRPC implementation.

The pool and the worker handle reach a worker only through this interface,
so a faster local transport can be added later without touching either.
Transport errors (the channel broke, the call was cut) surface as
``TransportError``; the handle decides whether that means a crash.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from snakepit._proto.snakepit.v1 import worker_pb2 as pb
from snakepit._trace_context import trace_context_for
from snakepit._wire._constants import TOKEN_HEADER
from snakepit._wire._errors import exception_from_info
from snakepit.codec import Encoding, decode, encode
from snakepit.errors import ExecutionTimeoutError, RequestError, brief

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator, Sequence

    import grpc

__all__ = [
    "MAX_DEADLINE",
    "DescribeResult",
    "DescribedParam",
    "DescribedTool",
    "GrpcTransport",
    "PingResult",
    "Transport",
    "TransportError",
    "describe_result",
]


# The longest deadline, in seconds (about 31 years), a call is given: gRPC turns a deadline
# into an absolute time and one past ~2**63 ns overflows to "already expired", which would
# fail the call at once and get a healthy worker killed. Longer timeouts mean no deadline.
MAX_DEADLINE = 1e9


def grpc_timeout(timeout: float | None) -> float | None:
    """``timeout`` as gRPC can honour it: None (no deadline) beyond ``MAX_DEADLINE`` or if NaN."""
    if timeout is None or not timeout <= MAX_DEADLINE:
        return None
    return timeout


class TransportError(Exception):
    """Raised by a transport when the channel failed (not when the tool failed)."""

    def __init__(self, message: str, *, code: str = "") -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class DescribedParam:
    name: str
    type: str
    required: bool
    default_json: str


@dataclass(frozen=True)
class DescribedTool:
    """A tool as the worker described it."""

    name: str
    description: str
    params: tuple[DescribedParam, ...]
    streaming: bool
    uses_context: bool
    is_async: bool = False
    idempotent: bool = False

    @property
    def param_names(self) -> frozenset[str]:
        names: frozenset[str] | None = self.__dict__.get("_names")
        if names is None:
            names = frozenset(p.name for p in self.params)
            object.__setattr__(self, "_names", names)
        return names

    def check_args(self, args: dict[str, Any], worker: str) -> None:
        """Reject a missing or unknown argument before the request leaves the host.

        Raises:
            InvalidArgumentsError: naming the tool, the argument and the signature.
        """
        from snakepit.errors import InvalidArgumentsError

        for key in args:
            if key not in self.param_names:
                raise InvalidArgumentsError(
                    f"tool {self.name!r} got unknown argument {brief(key)}; it takes "
                    f"{self.signature()}",
                    tool=self.name,
                    argument=key,
                    worker_id=worker,
                )
        for p in self.params:
            if p.required and p.name not in args:
                raise InvalidArgumentsError(
                    f"tool {self.name!r} is missing required argument {p.name!r}; it takes "
                    f"{self.signature()}",
                    tool=self.name,
                    argument=p.name,
                    worker_id=worker,
                )

    def signature(self) -> str:
        parts = [
            p.name + (f": {p.type}" if p.type else "") + ("" if p.required else " = ...")
            for p in self.params
        ]
        return f"{self.name}({', '.join(parts)})"


@dataclass(frozen=True)
class DescribeResult:
    adapter: str
    pid: int
    language: str
    protocol_version: str
    tools: dict[str, DescribedTool]


@dataclass(frozen=True)
class PingResult:
    pid: int
    requests: int
    active: int
    uptime_seconds: float


class Transport(Protocol):
    """The calls the host makes on one worker."""

    async def describe(self, *, timeout: float | None) -> DescribeResult: ...

    async def execute(
        self,
        tool: str,
        args: dict[str, Any],
        *,
        timeout: float | None,
        session_id: str | None = None,
        request_id: int = 0,
    ) -> Any: ...

    def stream(
        self,
        tool: str,
        args: dict[str, Any],
        *,
        timeout: float | None,
        session_id: str | None = None,
        request_id: int = 0,
    ) -> AsyncIterator[Any]: ...

    async def ping(self, *, timeout: float | None) -> PingResult: ...

    async def settle(
        self, request_ids: Sequence[int], *, wait: float, timeout: float | None
    ) -> list[int]: ...

    async def close(self, grace: float | None = None) -> None: ...


def _error(info: pb.ErrorInfo, worker_id: str) -> Exception:
    return exception_from_info(info, worker_id=worker_id)


def describe_result(r: pb.DescribeResponse) -> DescribeResult:
    """The host's view of a ``DescribeResponse`` (whichever transport brought it)."""
    tools = {
        t.name: DescribedTool(
            name=t.name,
            description=t.description,
            params=tuple(
                DescribedParam(p.name, p.type, p.required, p.default_json) for p in t.params
            ),
            streaming=t.streaming,
            uses_context=t.uses_context,
            is_async=t.is_async,
            idempotent=t.idempotent,
        )
        for t in r.tools
    }
    return DescribeResult(r.adapter, r.pid, r.language, r.protocol_version, tools)


class GrpcTransport:
    """``Transport`` over a gRPC channel (Unix socket by default, or loopback TCP with a token)."""

    def __init__(
        self,
        address: str,
        *,
        worker_id: str,
        max_message_bytes: int = 256 * 1024 * 1024,
        token: str | None = None,
        encoding: Encoding = Encoding.JSON,
        credentials: grpc.ChannelCredentials | None = None,
    ) -> None:
        self.address = address
        self.worker_id = worker_id
        self._encoding = encoding
        self._limit = max_message_bytes
        options: Sequence[tuple[str, Any]] = [
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.enable_retries", 0),
            ("grpc.use_local_subchannel_pool", 1),
        ]
        # gRPC is imported only by pools that use it (a local pool's host never loads it).
        import grpc

        from snakepit._proto.snakepit.v1 import worker_pb2_grpc as pb_grpc

        self._grpc = grpc
        if credentials is not None:  # TLS, for a worker on another machine
            self._channel = grpc.aio.secure_channel(address, credentials, options=options)
        else:
            self._channel = grpc.aio.insecure_channel(address, options=options)
        self._stub = pb_grpc.WorkerServiceStub(self._channel)  # type: ignore[no-untyped-call]
        self._metadata = ((TOKEN_HEADER, token),) if token else None
        self._closed = False

    def _payload(self, args: dict[str, Any], tool: str) -> pb.Payload:
        document, blobs = encode(args, what=f"args of tool {tool!r}", encoding=self._encoding)
        size = len(document) + sum(len(b) for b in blobs)
        if size > self._limit - 4096:
            raise RequestError(
                f"arguments of tool {tool!r} are {size / 2**20:.1f} MiB, more than the pool's "
                f"max_message_mb={self._limit // 2**20}; raise max_message_mb or send less",
                tool=tool,
                size=size,
            )
        return pb.Payload(document=document, blobs=blobs, encoding=self._encoding.value)  # type: ignore[arg-type]

    def _value(self, payload: pb.Payload, what: str) -> Any:
        return decode(
            payload.document,
            list(payload.blobs),
            encoding=Encoding(payload.encoding),
            allow_pickle=self._encoding is Encoding.PICKLE,
            what=what,
        )

    def _translate(self, exc: grpc.aio.AioRpcError, tool: str, timeout: float | None) -> Exception:
        grpc = self._grpc
        if exc.code() is grpc.StatusCode.RESOURCE_EXHAUSTED:
            return RequestError(
                f"a message of tool {tool!r} on worker {self.worker_id!r} exceeded the pool's "
                f"max_message_mb={self._limit // 2**20} ({exc.details()}); raise max_message_mb "
                "or return less",
                tool=tool,
                worker_id=self.worker_id,
            )
        if exc.code() is grpc.StatusCode.DEADLINE_EXCEEDED:
            return ExecutionTimeoutError(
                f"tool {tool!r} on worker {self.worker_id!r} ran past its deadline of "
                f"{timeout}s; the worker will be replaced",
                tool=tool,
                worker_id=self.worker_id,
                timeout=timeout,
            )
        return TransportError(
            f"channel to worker {self.worker_id!r} failed during {tool!r}: "
            f"{exc.code().name} {exc.details()}",
            code=exc.code().name,
        )

    @contextlib.contextmanager
    def _rpc(self, what: str, timeout: float | None) -> Iterator[None]:
        """Translate what can go wrong with one RPC: a closed channel, a gRPC status, or a
        cancellation nobody asked for (grpc cancels calls when their channel closes)."""
        if self._closed:
            raise TransportError(
                f"channel to worker {self.worker_id!r} is closed ({what})", code="CLOSED"
            )
        try:
            yield
        except self._grpc.aio.AioRpcError as exc:
            raise self._translate(exc, what, timeout) from exc
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise
            raise TransportError(
                f"channel to worker {self.worker_id!r} was closed during {what}", code="CLOSED"
            ) from None

    def _request(
        self, tool: str, args: dict[str, Any], session_id: str | None, request_id: int
    ) -> pb.ExecuteRequest:
        request = pb.ExecuteRequest(
            tool=tool,
            args=self._payload(args, tool),
            session_id=session_id or "",
            request_id=request_id,
        )
        carrier = trace_context_for(self.worker_id, request_id)  # None: not traced
        if carrier is not None:
            request.trace_context.update(carrier)
        return request

    async def describe(self, *, timeout: float | None) -> DescribeResult:
        with self._rpc("Describe", timeout):
            r = await self._stub.Describe(
                pb.DescribeRequest(), timeout=grpc_timeout(timeout), metadata=self._metadata
            )
        return describe_result(r)

    async def execute(
        self,
        tool: str,
        args: dict[str, Any],
        *,
        timeout: float | None,
        session_id: str | None = None,
        request_id: int = 0,
    ) -> Any:
        request = self._request(tool, args, session_id, request_id)
        with self._rpc(tool, timeout):
            response = await self._stub.Execute(
                request, timeout=grpc_timeout(timeout), metadata=self._metadata
            )
        if response.HasField("error"):
            raise _error(response.error, self.worker_id)
        return self._value(response.result, f"result of tool {tool!r}")

    async def stream(
        self,
        tool: str,
        args: dict[str, Any],
        *,
        timeout: float | None,
        session_id: str | None = None,
        request_id: int = 0,
    ) -> AsyncIterator[Any]:
        request = self._request(tool, args, session_id, request_id)
        what = f"chunk of tool {tool!r}"
        with self._rpc(tool, timeout):
            call = self._stub.ExecuteStream(
                request, timeout=grpc_timeout(timeout), metadata=self._metadata
            )
            try:
                async for item in call:
                    for chunk in item.chunks:
                        yield self._value(chunk, what)
                    if item.HasField("error"):
                        raise _error(item.error, self.worker_id)
            finally:
                call.cancel()

    async def ping(self, *, timeout: float | None) -> PingResult:
        with self._rpc("Ping", timeout):
            r = await self._stub.Ping(
                pb.PingRequest(), timeout=grpc_timeout(timeout), metadata=self._metadata
            )
        return PingResult(r.pid, r.requests, r.active, r.uptime_seconds)

    async def settle(
        self, request_ids: Sequence[int], *, wait: float, timeout: float | None
    ) -> list[int]:
        """Of ``request_ids``, those whose tool code still runs in the worker after up to
        ``wait`` seconds (see ``Settle`` in worker.proto)."""
        with self._rpc("Settle", timeout):
            r = await self._stub.Settle(
                pb.SettleRequest(request_ids=list(request_ids), wait_seconds=wait),
                timeout=grpc_timeout(timeout),
                metadata=self._metadata,
            )
        return list(r.running)

    async def close(self, grace: float | None = None) -> None:
        """Close the channel; with ``grace``, calls in flight get that long to end by themselves."""
        if not self._closed:
            self._closed = True
            await self._channel.close(grace=grace)
