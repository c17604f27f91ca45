"""The host's side of the wire, without a worker: gRPC statuses and cut channels become the
errors the handle acts on, a worker's description becomes the host's view of its tools."""

from __future__ import annotations

import asyncio
import math
from typing import TYPE_CHECKING

import grpc
import pytest

from snakepit._proto.snakepit.v1 import worker_pb2 as pb
from snakepit._wire import error_info
from snakepit.errors import (
    ExecutionTimeoutError,
    InvalidArgumentsError,
    RequestError,
    ToolNotFoundError,
    WorkerCrashedError,
)
from snakepit.worker import DescribedTool, GrpcTransport, TransportError
from snakepit.worker._transport import MAX_DEADLINE, _error, describe_result, grpc_timeout

if TYPE_CHECKING:
    from collections.abc import AsyncIterator


@pytest.fixture
async def transport() -> AsyncIterator[GrpcTransport]:
    # A channel to nowhere: nothing here ever connects, the tests only feed it failures.
    t = GrpcTransport("unix:/nonexistent/sp.sock", worker_id="w3", max_message_bytes=8 * 2**20)
    yield t
    await t.close()


def _status(code: grpc.StatusCode, details: str = "details") -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details=details)


class TestStatuses:
    async def test_a_message_too_big_is_a_request_error_naming_the_limit(
        self, transport: GrpcTransport
    ) -> None:
        with pytest.raises(RequestError) as caught, transport._rpc("big", 5.0):
            raise _status(grpc.StatusCode.RESOURCE_EXHAUSTED, "received 9 MiB")
        assert "tool 'big' on worker 'w3' exceeded the pool's max_message_mb=8" in str(caught.value)
        assert "received 9 MiB" in str(caught.value)

    async def test_a_deadline_is_an_execution_timeout_naming_it(
        self, transport: GrpcTransport
    ) -> None:
        with pytest.raises(ExecutionTimeoutError) as caught, transport._rpc("slow", 2.5):
            raise _status(grpc.StatusCode.DEADLINE_EXCEEDED)
        assert "ran past its deadline of 2.5s; the worker will be replaced" in str(caught.value)
        assert caught.value.details["timeout"] == 2.5
        assert caught.value.details["worker_id"] == "w3"

    @pytest.mark.parametrize(
        "code", [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL, grpc.StatusCode.CANCELLED]
    )
    async def test_any_other_status_is_the_channel_failing(
        self, transport: GrpcTransport, code: grpc.StatusCode
    ) -> None:
        with pytest.raises(TransportError) as caught, transport._rpc("f", None):
            raise _status(code, "socket closed")
        assert caught.value.code == code.name
        assert f"channel to worker 'w3' failed during 'f': {code.name} socket closed" in str(
            caught.value
        )
        assert not isinstance(caught.value, WorkerCrashedError)  # the handle decides that

    async def test_a_closed_channel_refuses_at_once(self, transport: GrpcTransport) -> None:
        await transport.close()
        with pytest.raises(TransportError, match="is closed \\(Ping\\)") as caught:
            await transport.ping(timeout=1.0)
        assert caught.value.code == "CLOSED"

    async def test_a_cancellation_nobody_asked_for_is_the_channel_closing(
        self, transport: GrpcTransport
    ) -> None:
        with (
            pytest.raises(TransportError, match="was closed during f") as caught,
            transport._rpc("f", None),
        ):
            raise asyncio.CancelledError
        assert caught.value.code == "CLOSED"

    async def test_a_cancellation_of_the_caller_stays_a_cancellation(
        self, transport: GrpcTransport
    ) -> None:
        started = asyncio.Event()

        async def call() -> None:
            with transport._rpc("f", None):
                started.set()
                await asyncio.Event().wait()

        task = asyncio.create_task(call())
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


class TestDeadlines:
    @pytest.mark.parametrize(
        ("timeout", "sent"),
        [(None, None), (1.5, 1.5), (MAX_DEADLINE, MAX_DEADLINE), (MAX_DEADLINE * 2, None)],
    )
    def test_what_grpc_is_given(self, timeout: float | None, sent: float | None) -> None:
        assert grpc_timeout(timeout) == sent

    def test_nan_and_infinity_mean_no_deadline(self) -> None:
        assert grpc_timeout(math.nan) is None and grpc_timeout(math.inf) is None


def _described() -> dict[str, DescribedTool]:
    response = pb.DescribeResponse(
        adapter="m:Tools",
        pid=123,
        language="python 3.11",
        protocol_version="1",
        tools=[
            pb.ToolSpec(
                name="add",
                description="Add.",
                idempotent=True,
                params=[
                    pb.ParamSpec(name="a", type="int", required=True),
                    pb.ParamSpec(name="b", type="int", required=False, default_json="2"),
                ],
            ),
            pb.ToolSpec(name="tokens", streaming=True, uses_context=True, is_async=True),
        ],
    )
    result = describe_result(response)
    assert (result.adapter, result.pid, result.protocol_version) == ("m:Tools", 123, "1")
    return result.tools


class TestDescription:
    def test_the_wire_spec_becomes_the_host_s_view_of_each_tool(self) -> None:
        tools = _described()
        add, tokens = tools["add"], tools["tokens"]
        assert add.param_names == {"a", "b"} and add.idempotent and not add.streaming
        assert add.signature() == "add(a: int, b: int = ...)"
        assert tokens.streaming and tokens.uses_context and tokens.is_async

    def test_arguments_are_checked_on_the_host_naming_tool_and_signature(self) -> None:
        add = _described()["add"]
        add.check_args({"a": 1}, "w3")
        with pytest.raises(InvalidArgumentsError) as caught:
            add.check_args({"a": 1, "c": 2}, "w3")
        assert "tool 'add' got unknown argument 'c'; it takes add(a: int, b: int = ...)" in str(
            caught.value
        )
        assert caught.value.details["worker_id"] == "w3"
        with pytest.raises(InvalidArgumentsError, match="missing required argument 'a'"):
            add.check_args({"b": 1}, "w3")


class TestToolErrors:
    async def test_an_error_in_the_response_is_rebuilt_with_its_class(self) -> None:
        info = error_info(ToolNotFoundError("no tool 'x'", tool="x", available=["a"]))
        rebuilt = _error(info, "w3")
        assert isinstance(rebuilt, ToolNotFoundError)
        assert rebuilt.details["worker_id"] == "w3" and rebuilt.details["available"] == ["a"]
