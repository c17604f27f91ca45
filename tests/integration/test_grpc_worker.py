"""One real worker process over each transport: tools, errors, streaming, crashes, hangs, shutdown."""

from __future__ import annotations

import asyncio
import logging
import os

import grpc
import psutil
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from snakepit.errors import (
    ExecutionTimeoutError,
    InvalidArgumentsError,
    RequestError,
    SerializationError,
    ToolError,
    ToolNotFoundError,
    WorkerCrashedError,
    WorkerStartupError,
)
from snakepit.events import EventBus, WorkerExited, WorkerReady
from snakepit.testing import with_python_server
from snakepit.worker import WorkerHandle
from snakepit.worker._stderr import printable, whole_records

BOUND = 10.0  # seconds: an upper bound on waits, never a delay


async def wait_gone(pid: int) -> None:
    """Wait (bounded) until the process ``pid`` no longer exists."""
    proc = await asyncio.to_thread(_process_or_none, pid)
    if proc is not None:
        await asyncio.to_thread(proc.wait, BOUND)


def _process_or_none(pid: int) -> psutil.Process | None:
    try:
        return psutil.Process(pid)
    except psutil.NoSuchProcess:
        return None


class TestShowcaseTools:
    async def test_every_showcase_tool_answers(self) -> None:
        """A started worker answers each plain showcase tool with the documented value."""
        async with with_python_server() as w:
            assert await w.execute("ping", {}) == {"status": "pong"}
            value = {"text": "ü", "n": [1, 2.5, None, True], "raw": b"\x00\xff"}
            assert await w.execute("echo", {"value": value}) == value
            assert await w.execute("add", {"a": 1, "b": 2.5}) == 3.5
            assert await w.execute("pid", {}) == w.pid
            assert await w.execute("remember", {"key": "k", "value": [1, 2]}) is None
            assert await w.execute("recall", {"key": "k"}) == [1, 2]
            assert await w.execute("recall", {"key": "other"}) is None

    async def test_describe_reports_tool_specs(self) -> None:
        """Describe reports every tool with its parameters and whether it streams."""
        async with with_python_server() as w:
            assert {"ping", "echo", "add", "pid", "fail", "crash", "hang", "count"} <= set(w.tools)
            add = w.tools["add"]
            assert [(p.name, p.type, p.required) for p in add.params] == [
                ("a", "float", True),
                ("b", "float", True),
            ]
            assert w.tools["count"].streaming and not add.streaming
            assert w.tools["add"].description == "Return ``a + b``."


class TestErrors:
    async def test_tool_error_carries_remote_type_and_traceback(self) -> None:
        """A tool that raises comes back as ToolError with the remote type, message and traceback."""
        async with with_python_server() as w:
            with pytest.raises(ToolError) as info:
                await w.execute("fail", {"message": "boom"})
            err = info.value
            assert err.remote_type == "ValueError"
            assert "boom" in err.message and "'fail'" in err.message
            assert "raise ValueError(message)" in err.remote_traceback
            assert "Remote traceback" in str(err)
            assert err.worker_id == w.id

    async def test_unknown_tool_names_the_tool_and_the_alternatives(self) -> None:
        """An unknown tool is ToolNotFoundError naming it and the tools that exist."""
        async with with_python_server() as w:
            with pytest.raises(ToolNotFoundError, match="no tool 'nope'") as info:
                await w.execute("nope", {})
            assert "echo" in info.value.available

    @pytest.mark.parametrize(
        ("args", "pattern"),
        [
            ({"a": 1}, "missing required argument 'b'"),
            ({"a": 1, "b": 2, "c": 3}, "unknown argument"),
            ({"a": "x", "b": 2}, "argument 'a' expects float, got str"),
            ({"a": True, "b": 2}, "argument 'a' expects float, got bool"),
        ],
    )
    async def test_bad_arguments_are_rejected_clearly(
        self, args: dict[str, object], pattern: str
    ) -> None:
        """Missing, unknown and wrongly typed arguments are InvalidArgumentsError naming the tool."""
        async with with_python_server() as w:
            with pytest.raises(InvalidArgumentsError, match=pattern) as info:
                await w.execute("add", args)
            assert info.value.tool == "add"
            assert "add(a: float, b: float)" in info.value.message

    async def test_unencodable_argument_is_a_serialization_error_before_sending(self) -> None:
        """An argument the codec cannot carry fails on the host, naming where it sits and its type."""
        async with with_python_server() as w:
            with pytest.raises(SerializationError, match=r"args of tool 'echo'\['value'\]") as info:
                await w.execute("echo", {"value": {1, 2}})
            assert info.value.type_name == "set"
            assert await w.execute("ping", {}) == {"status": "pong"}

    async def test_streaming_tool_through_execute_is_a_request_error(self) -> None:
        """Calling a streaming tool with execute() says to use stream()."""
        async with with_python_server() as w:
            with pytest.raises(RequestError, match=r"use|call it with stream"):
                await w.execute("count", {"n": 3})

    async def test_deadline_is_an_execution_timeout(self) -> None:
        """A call past its deadline raises ExecutionTimeoutError naming the tool and the worker."""
        async with with_python_server(shutdown_grace=0.2) as w:  # its tool thread stays stuck
            with pytest.raises(ExecutionTimeoutError, match="'hang'") as info:
                await w.execute("hang", {}, timeout=0.2)
            assert info.value.worker_id == w.id


class TestStreaming:
    async def test_stream_yields_chunks_in_order(self) -> None:
        """A generator tool's chunks arrive in order, then the stream ends."""
        async with with_python_server() as w:
            chunks = [c async for c in w.stream("count", {"n": 200})]
            assert chunks == [{"i": i} for i in range(200)]

    async def test_plain_tool_streams_as_one_chunk(self) -> None:
        """A non-streaming tool called as a stream yields its result as a single chunk."""
        async with with_python_server() as w:
            assert [c async for c in w.stream("add", {"a": 1, "b": 1})] == [2]

    async def test_error_mid_stream_is_raised_after_earlier_chunks(self) -> None:
        """Arguments rejected by a streaming tool raise instead of yielding."""
        async with with_python_server() as w:
            with pytest.raises(InvalidArgumentsError):
                [c async for c in w.stream("count", {})]


@pytest.mark.usefixtures("both_transports")
class TestCrashAndHang:
    async def test_crash_is_an_exit_event_with_the_code(self) -> None:
        """crash(code) fails the call with WorkerCrashedError and publishes WorkerExited with the code."""
        bus = EventBus("t")
        with bus.subscribe(WorkerExited) as exits:
            async with with_python_server(events=bus) as w:
                with pytest.raises(WorkerCrashedError, match="exit code 7") as info:
                    await w.execute("crash", {"code": 7})
                assert info.value.exit_code == 7
                event = await asyncio.wait_for(exits.get(), BOUND)
                assert isinstance(event, WorkerExited)
                assert (event.worker_id, event.pid, event.exit_code, event.expected) == (
                    w.id,
                    w.pid,
                    7,
                    False,
                )

    async def test_hang_does_not_stop_ping(self) -> None:
        """While a sync tool hangs, Ping still answers and reports one active request."""
        async with with_python_server() as w:
            hung = asyncio.create_task(w.execute("hang", {}))
            try:
                for _ in range(3):
                    pong = await w.ping(timeout=BOUND)
                    if pong.active == 1:
                        break
                assert pong.pid == w.pid
                assert not hung.done()
            finally:
                w.kill()
                with pytest.raises(WorkerCrashedError):
                    await hung

    async def test_killed_worker_reports_the_signal(self) -> None:
        """A worker killed by SIGKILL mid-call fails that call with the signal named."""
        async with with_python_server() as w:
            hung = asyncio.create_task(w.execute("hang", {}))
            await w.ping(timeout=BOUND)
            os.kill(w.pid or 0, 9)
            with pytest.raises(WorkerCrashedError, match="SIGKILL") as info:
                await hung
            assert info.value.exit_code == -9


class TestLifecycle:
    async def test_ready_event_names_pid_and_address(self) -> None:
        """Start publishes WorkerReady with the pid and a Unix socket address (gRPC)."""
        bus = EventBus("t")
        with bus.subscribe(WorkerReady) as ready:
            async with with_python_server(events=bus, transport="grpc") as w:
                event = ready.get_nowait()
                assert isinstance(event, WorkerReady)
                assert (event.pid, event.address) == (w.pid, w.address)
                assert event.address.startswith("unix:") and event.startup_seconds > 0

    async def test_closing_stdin_makes_the_worker_exit(self) -> None:
        """When the host's end of the worker's stdin closes (host died), the worker exits."""
        async with with_python_server(transport="grpc") as w:
            assert w._stdin is not None
            w._close_stdin()
            code = await asyncio.wait_for(w.wait_exited(), BOUND)
            assert code == 0

    async def test_shutdown_leaves_no_process_behind(self) -> None:
        """stop() ends the worker and every process in its group; a second stop() is a no-op."""
        async with with_python_server() as w:
            pid = w.pid
            assert pid is not None and psutil.pid_exists(pid)
            assert await w.stop() in (0, -15)
            assert await w.stop() == w.exit_code
        await wait_gone(pid)
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE

    async def test_health_service_reports_serving(self) -> None:
        """A standard gRPC health client sees SERVING for the server and for WorkerService."""
        async with with_python_server(transport="grpc") as w:
            assert w.address is not None
            async with grpc.aio.insecure_channel(w.address) as channel:
                stub = health_pb2_grpc.HealthStub(channel)
                for service in ("", "snakepit.v1.WorkerService"):
                    reply = await stub.Check(
                        health_pb2.HealthCheckRequest(service=service), timeout=BOUND
                    )
                    assert reply.status == health_pb2.HealthCheckResponse.SERVING

    async def test_tcp_transport_with_token(self) -> None:
        """Over TCP the worker binds loopback and answers only calls carrying the pool's token."""
        async with with_python_server(transport="tcp") as w:
            assert w.address is not None and w.address.startswith("127.0.0.1:")
            assert await w.execute("add", {"a": 2, "b": 3}) == 5
            async with grpc.aio.insecure_channel(w.address) as channel:
                from snakepit._proto.snakepit.v1 import worker_pb2, worker_pb2_grpc

                stub = worker_pb2_grpc.WorkerServiceStub(channel)
                with pytest.raises(grpc.aio.AioRpcError) as info:
                    await stub.Ping(worker_pb2.PingRequest(), timeout=BOUND)
                assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.usefixtures("both_transports")
class TestStartupFailures:
    async def test_setup_failure_is_a_startup_error_with_stderr(self) -> None:
        """An adapter whose setup() raises fails start with its exit code and stderr tail."""
        with pytest.raises(WorkerStartupError) as info:
            async with with_python_server("snakepit.testing.adapters:FailingSetup"):
                pass
        err = info.value
        assert err.exit_code == 4
        assert "refuses to start" in err.stderr_tail

    async def test_unimportable_adapter_is_a_startup_error(self) -> None:
        """An adapter path that does not import fails start with exit code 3 and the reason."""
        with pytest.raises(WorkerStartupError, match="exit code 3") as info:
            async with with_python_server("no_such_module_xyz:Nope"):
                pass
        assert "No module named 'no_such_module_xyz'" in info.value.stderr_tail

    async def test_startup_timeout_kills_the_worker(self) -> None:
        """A worker that never becomes ready is killed after startup_timeout and reported."""
        with pytest.raises(
            WorkerStartupError, match="no ready line within startup_timeout"
        ) as info:
            async with with_python_server(
                "snakepit.testing.adapters:HangingSetup", startup_timeout=0.3
            ):
                pass
        assert info.value.exit_code == -9

    async def test_missing_interpreter_is_a_startup_error(self) -> None:
        """A python option that does not exist fails start naming the interpreter."""
        with pytest.raises(WorkerStartupError, match="cannot run '/no/such/python'"):
            async with with_python_server(python="/no/such/python"):
                pass


def test_handle_repr_names_state() -> None:
    """repr(handle) shows the id, pid and state."""
    from pathlib import Path

    from snakepit.worker import WorkerOptions

    h = WorkerHandle("w9", WorkerOptions(adapter="x:Y", runtime_dir=Path("/tmp")))
    assert repr(h) == "<WorkerHandle w9 pid=None starting>"


class TestStderr:
    def test_a_record_and_its_traceback_stay_one_record(self) -> None:
        """Lines that belong together (an indented frame, a traceback and its exception
        line) join the record before them; anything else starts a record of its own."""
        lines = [
            "ERROR [w1] snakepit.adapter: setup() of x failed:",
            "Traceback (most recent call last):",
            '  File "a.py", line 1, in <module>',
            "    raise ValueError('boom')",
            "ValueError: boom",
            "printed by a tool",
            "CRITICAL forged",
        ]
        assert whole_records(lines) == [lines[:5], [lines[5]], [lines[6]]]
        assert whole_records([]) == []
        assert whole_records(["  indented first"]) == [["  indented first"]]

    async def test_a_failing_setup_logs_its_traceback_as_one_record(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """The worker's "setup() failed:" line and its traceback reach the host's log as one
        record, not as a line ending in a colon followed by loose lines."""
        caplog.set_level(logging.DEBUG, logger="snakepit")
        with pytest.raises(WorkerStartupError):
            async with with_python_server("snakepit.testing.adapters:FailingSetup"):
                pass
        records = [r.getMessage() for r in caplog.records if r.name.startswith("snakepit.worker.")]
        (failed,) = [m for m in records if "failed" in m and "Traceback" in m]
        assert failed.splitlines()[-1].startswith("RuntimeError: FailingSetup.setup refuses")

    async def test_a_huge_line_on_stderr_does_not_wedge_the_worker(self) -> None:
        """A tool that writes a 1 MB line with no newline to stderr keeps working, and so
        does its worker; the line reaches the log truncated."""
        async with with_python_server("snakepit.testing.adapters:Noisy") as w:
            for _ in range(3):
                assert await w.execute("shout", {"size": 1_000_000}) == 1_000_000
            assert await w.execute("ping", {}) == {"status": "pong"}
        assert w.exit_code is not None
        assert "[line continues]" in w.stderr_tail or "more chars" in w.stderr_tail

    async def test_worker_output_cannot_forge_log_records(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """What a worker prints is logged at INFO under snakepit.worker.<id> with control
        characters escaped: a line starting with CRITICAL, ANSI escapes, carriage returns,
        NUL and Unicode line separators arrive as visible text, never as a record of the
        host's or a redrawn terminal."""
        forged = (
            "CRITICAL snakepit.pool: degraded\x1b[2J\x1b[31m\rINFO fake\u2028ERROR x\x00 \u00fc\n"
        )
        caplog.set_level(logging.DEBUG, logger="snakepit")
        async with with_python_server("snakepit.testing.adapters:Noisy") as w:
            await w.execute("say", {"text": forged})
        # Stopped, so its stderr has been read to the end.
        records = [r for r in caplog.records if r.name == f"snakepit.worker.{w.id}"]
        (said,) = [r for r in records if "degraded" in r.getMessage()]
        assert said.levelno == logging.INFO
        assert said.getMessage() == (
            "CRITICAL snakepit.pool: degraded\\x1b[2J\\x1b[31m\\rINFO fake\\u2028ERROR x\\x00 \u00fc"
        )
        assert all(r.levelno == logging.INFO and r.getMessage().isprintable() for r in records)
        assert "\x1b" not in w.stderr_tail and "\\x1b[2J" in w.stderr_tail

    async def test_a_startup_error_shows_the_workers_output_escaped(self) -> None:
        """The stderr tail in a WorkerStartupError is escaped too."""
        with pytest.raises(WorkerStartupError) as info:
            async with with_python_server("no_such\x1b[2Jmodule:X"):
                pass
        assert "\x1b" not in str(info.value) and "\\x1b[2Jmodule" in info.value.stderr_tail


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("plain text, ünïcödé, 日本", "plain text, ünïcödé, 日本"),
        ("\x1b[31mred\x1b[0m", "\\x1b[31mred\\x1b[0m"),
        ("a\rb\nc\td\x00e\x7f", "a\\rb\\nc\\td\\x00e\\x7f"),
        ("line\u2028sep\u2029para\x85nel", "line\\u2028sep\\u2029para\\x85nel"),
        ("rtl\u202eoverride", "rtl\\u202eoverride"),
    ],
)
def test_printable_escapes_control_characters(text: str, shown: str) -> None:
    """printable() keeps printable text (any script) and escapes everything else."""
    assert printable(text) == shown
