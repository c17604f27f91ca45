"""OpenTelemetry spans of real calls, exported in memory, and their context inside the worker."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import pytest

import snakepit
from snakepit.events import RequestDispatched
from snakepit.testing import isolated_pool, pool_mailbox

pytest.importorskip("opentelemetry.sdk")
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from opentelemetry.trace import StatusCode

from snakepit.tracing import instrument

if TYPE_CHECKING:
    from pathlib import Path

# The worker cannot share the host's exporter: its tools report the context their own
# span saw (its trace and its parent), and the test compares that with the host's spans.
_TOOLS = """
import asyncio
from opentelemetry.sdk.trace import TracerProvider
from snakepit.adapter import Adapter, tool

_tracer = TracerProvider().get_tracer("tools")


def _seen():
    with _tracer.start_as_current_span("in the tool") as span:
        parent = span.parent
        return {
            "trace_id": format(span.get_span_context().trace_id, "032x"),
            "parent_id": None if parent is None else format(parent.span_id, "016x"),
        }


class Traced(Adapter):
    @tool
    def sync_child(self):
        return _seen()

    @tool
    async def async_child(self):
        return _seen()

    @tool
    def gen_child(self, n: int):
        for _ in range(n):
            yield _seen()

    @tool
    async def agen_child(self, n: int):
        for _ in range(n):
            yield _seen()

    @tool
    def fail(self):
        raise ValueError("boom")

    @tool
    async def hang(self):
        await asyncio.Event().wait()
"""


def _ids(span: ReadableSpan) -> dict[str, Any]:
    ctx = span.get_span_context()
    assert ctx is not None
    return {"trace_id": format(ctx.trace_id, "032x"), "parent_id": format(ctx.span_id, "016x")}


@pytest.mark.usefixtures("both_transports")
async def test_one_span_per_call_and_the_tools_spans_are_its_children(tmp_path: Path) -> None:
    (tmp_path / "tracedtools.py").write_text(_TOOLS)
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    caller = provider.get_tracer("test")
    async with isolated_pool("tracedtools:Traced", cwd=str(tmp_path)) as pool:
        assert (await pool.execute("sync_child"))["parent_id"] is None  # not traced yet
        tracing = instrument(pool, tracer_provider=provider)
        with pytest.raises(ValueError, match="already traced"):
            instrument(pool, tracer_provider=provider)
        box = pool_mailbox(pool)
        with caller.start_as_current_span("caller") as outer:
            seen = {
                "sync_child": [await pool.execute("sync_child")],
                "async_child": [await pool.execute("async_child")],
                "gen_child": [c async for c in pool.stream("gen_child", {"n": 3})],
                "agen_child": [c async for c in pool.stream("agen_child", {"n": 3})],
            }
            with pytest.raises(snakepit.ToolError, match="boom"):
                await pool.execute("fail")
        hung = asyncio.create_task(pool.execute("hang", timeout=30))
        await box.assert_receive(
            lambda e: isinstance(e, RequestDispatched) and e.tool == "hang", 10
        )
        hung.cancel()
        with pytest.raises(asyncio.CancelledError):
            await hung
        tracing.close()
        assert (await pool.execute("sync_child"))["parent_id"] is None
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert sorted(spans) == sorted(
        ["caller"] + [f"snakepit {t}" for t in [*seen, "fail", "hang"]]
    ), "one span per call, and none after close()"
    for tool, chunks in seen.items():
        span = spans[f"snakepit {tool}"]
        attrs = dict(span.attributes or {})
        assert attrs["snakepit.tool"] == tool
        assert attrs["snakepit.outcome"] == "ok"
        assert attrs["snakepit.pool"] == pool.name
        assert attrs["snakepit.worker_id"]
        assert span.status.status_code is StatusCode.UNSET
        assert span.parent is not None and span.parent.span_id == outer.get_span_context().span_id
        # Every chunk, not only the first: a generator runs in the context for its whole run.
        assert chunks == [_ids(span)] * len(chunks), tool
    failed = spans["snakepit fail"]
    assert failed.status.status_code is StatusCode.ERROR
    assert dict(failed.attributes or {})["snakepit.outcome"] == "ToolError"
    assert dict(failed.attributes or {})["error.type"] == "ToolError"
    assert "boom" in (failed.status.description or "")
    assert dict(spans["snakepit hang"].attributes or {})["snakepit.outcome"] == "cancelled"
    assert spans["snakepit hang"].parent is None  # called outside any span: a root


def test_without_tracing_neither_side_imports_opentelemetry(tmp_path: Path) -> None:
    """A call through a pool, with opentelemetry installed but tracing off: no module of it
    is loaded in the host or in the worker."""
    code = (
        "import asyncio, sys, snakepit\n"
        "async def main():\n"
        "    async with snakepit.Pool(adapter='snakepit.testing.adapters:Probe', size=1,\n"
        f"                             heartbeat_interval=None, registry_dir={str(tmp_path)!r}) as pool:\n"
        "        print(await pool.execute('modules', {'prefix': 'opentelemetry'}))\n"
        "    print(sorted(m for m in sys.modules if m.split('.')[0] == 'opentelemetry'))\n"
        "asyncio.run(main())\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["[]", "[]"]
