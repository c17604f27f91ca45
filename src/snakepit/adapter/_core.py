"""What a worker does with a request, whatever the transport that carried it.

The gRPC servicer (:mod:`snakepit.adapter._service`) and the local transport's
loop (:mod:`snakepit.adapter._local_worker`) both describe the adapter, look tools up,
decode and bind arguments, and encode results through this module.
"""

from __future__ import annotations

import functools
import os
import sys
from typing import TYPE_CHECKING, Any

from snakepit._proto.snakepit.v1 import worker_pb2 as pb
from snakepit._wire._constants import PROTOCOL_VERSION
from snakepit._wire._payload import from_payload
from snakepit.adapter._context import SessionContext
from snakepit.codec import Encoding
from snakepit.errors import ToolNotFoundError, brief

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from snakepit.adapter._base import Adapter
    from snakepit.adapter._host_client import HostClient
    from snakepit.adapter._tools import ToolInfo

__all__ = ["describe_response", "lookup", "prepare", "result_encoding"]


def describe_response(
    tools: dict[str, ToolInfo], *, adapter_path: str, worker_id: str
) -> pb.DescribeResponse:
    """The worker's identity and tool specs."""
    return pb.DescribeResponse(
        adapter=adapter_path,
        pid=os.getpid(),
        language=f"python {sys.version.split()[0]}",
        protocol_version=PROTOCOL_VERSION,
        tools=[
            pb.ToolSpec(
                name=info.name,
                description=info.description,
                streaming=info.streaming,
                uses_context=info.context_param is not None,
                is_async=info.is_async,
                idempotent=info.idempotent,
                params=[
                    pb.ParamSpec(
                        name=p.name,
                        type=p.annotation,
                        required=p.required,
                        default_json=p.default_json,
                        kind=p.kind,
                    )
                    for p in info.params
                ],
            )
            for info in tools.values()
        ],
        worker_id=worker_id,
    )


def lookup(tools: dict[str, ToolInfo], name: str, *, adapter_path: str, worker_id: str) -> ToolInfo:
    """The tool called ``name``.

    Raises:
        ToolNotFoundError: naming the tools the worker has.
    """
    info = tools.get(name)
    if info is None:
        available = sorted(tools)
        raise ToolNotFoundError(
            f"worker {worker_id!r} ({adapter_path}) has no tool {brief(name)}; available: "
            f"{', '.join(available) or 'none'}",
            tool=name,
            available=available,
            worker_id=worker_id,
        )
    return info


def prepare(
    adapter: Adapter,
    info: ToolInfo,
    request: pb.ExecuteRequest,
    *,
    worker_id: str,
    allow_pickle: bool,
    blobs: Sequence[bytes] | None = None,
    host: HostClient | None = None,
) -> Callable[[], Any]:
    """Decode and bind the arguments: the call, ready to run; a context reaches the host
    through ``host`` (None: this process's client).

    Raises:
        SerializationError: the arguments cannot be decoded.
        InvalidArgumentsError: they do not fit the tool's signature.
    """
    args = from_payload(
        request.args,
        f"arguments of tool {info.name!r}",
        allow_pickle=allow_pickle,
        blobs=blobs,
    )
    kwargs = dict(info.bind(args))
    if info.context_param is not None:
        kwargs[info.context_param] = SessionContext(
            session_id=request.session_id or None,
            request_id=request.request_id,
            worker_id=worker_id,
            tool=info.name,
            host=host,
        )
    call = functools.partial(getattr(adapter, info.method_name), **kwargs)
    if request.trace_context:  # the host traces its calls (snakepit.tracing)
        from snakepit.adapter._tracing import in_trace_context

        return in_trace_context(call, info.kind, request.trace_context)
    return call


def result_encoding(requested: int, allow_pickle: bool) -> Encoding:
    """Answer in pickle only when the request was pickled and the worker allows it."""
    return Encoding.PICKLE if requested == Encoding.PICKLE and allow_pickle else Encoding.JSON
