"""Prometheus metrics from a real pool, served over HTTP and scraped as Prometheus would."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import urllib.request

import pytest

import snakepit
from snakepit.events import RequestDispatched, RequestQueued, WorkerReady, WorkerRestarting
from snakepit.testing import isolated_pool, pool_mailbox

prometheus_client = pytest.importorskip("prometheus_client")
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from snakepit.metrics import instrument  # noqa: E402


def _samples(page: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(page)
        for s in family.samples
    }


async def test_the_metrics_page_is_served_and_counts_what_the_pool_did() -> None:
    registry = prometheus_client.CollectorRegistry()
    server, thread = prometheus_client.start_http_server(0, addr="127.0.0.1", registry=registry)
    try:
        async with isolated_pool(size=1) as pool:
            metrics = instrument(pool, registry=registry)
            box = pool_mailbox(pool)
            assert await pool.execute("add", {"a": 1, "b": 2}) == 3
            await pool.execute("echo", {"value": "x"})
            with pytest.raises(snakepit.ToolError):
                await pool.execute("fail")
            with pytest.raises(snakepit.WorkerCrashedError):
                await pool.execute("crash")
            await box.assert_receive(WorkerRestarting, 10)
            await box.assert_receive(WorkerReady, 10)
            url = f"http://127.0.0.1:{server.server_port}/metrics"
            page = await asyncio.to_thread(
                lambda: urllib.request.urlopen(url, timeout=10).read().decode()
            )
            with pytest.raises(ValueError, match="already instrumented"):
                instrument(pool, registry=registry)
            metrics.close()
        p = ("pool", pool.name)
        got = _samples(page)
        assert (
            got[("snakepit_requests_total", frozenset({p, ("tool", "add"), ("outcome", "ok")}))]
            == 1
        )
        assert (
            got[
                (
                    "snakepit_requests_total",
                    frozenset({p, ("tool", "fail"), ("outcome", "ToolError")}),
                )
            ]
            == 1
        )
        assert (
            got[
                (
                    "snakepit_requests_total",
                    frozenset({p, ("tool", "crash"), ("outcome", "WorkerCrashedError")}),
                )
            ]
            == 1
        )
        assert (
            got[("snakepit_request_duration_seconds_count", frozenset({p, ("tool", "add")}))] == 1
        )
        assert got[("snakepit_queue_wait_seconds_count", frozenset({p}))] == 4
        assert got[("snakepit_worker_restarts_total", frozenset({p, ("reason", "crashed")}))] == 1
        assert got[("snakepit_queue_depth", frozenset({p}))] == 0
        assert got[("snakepit_workers", frozenset({p, ("state", "ready")}))] == 1
        [(rss_key, rss)] = [(k, v) for k, v in got.items() if k[0] == "snakepit_worker_rss_bytes"]
        assert rss > 1_000_000 and p in rss_key[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


async def test_a_busy_worker_and_the_queue_show_at_scrape_time() -> None:
    registry = prometheus_client.CollectorRegistry()
    async with isolated_pool(size=1) as pool:
        metrics = instrument(pool, registry=registry)
        box = pool_mailbox(pool)
        first = asyncio.create_task(pool.execute("hang", timeout=30))
        await box.assert_receive(RequestDispatched, 10)
        second = asyncio.create_task(pool.execute("ping"))
        await box.assert_receive(lambda e: isinstance(e, RequestQueued) and e.tool == "ping", 10)
        page = prometheus_client.generate_latest(registry).decode()
        got = _samples(page)
        p = ("pool", pool.name)
        assert got[("snakepit_workers", frozenset({p, ("state", "busy")}))] == 1
        assert got[("snakepit_queue_depth", frozenset({p}))] == 1
        first.cancel()
        second.cancel()
        await asyncio.gather(first, second, return_exceptions=True)
        metrics.close()


def test_snakepit_never_imports_prometheus_client_unless_asked() -> None:
    code = (
        "import sys, snakepit, snakepit.testing._pools\n"
        "print(sorted(m for m in sys.modules if m.startswith(('prometheus_client', 'opentelemetry'))))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
