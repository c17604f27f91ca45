"""Prometheus metrics for a pool, fed by its event bus (``pip install 'pysnakepit[metrics]'``).

Opt-in: nothing imports this module (or ``prometheus_client``) unless you do, and
a pool without it publishes its events to nobody more::

    from prometheus_client import start_http_server
    from snakepit.metrics import instrument

    async with snakepit.Pool(adapter="mytools:TextTools") as pool:
        instrument(pool)            # registers on prometheus_client's default registry
        start_http_server(9100)     # http://localhost:9100/metrics

Counters and histograms follow the events as they are published (a listener
on ``pool.events``); the gauges (workers by state, queue depth, worker RSS)
are read from the pool when the page is scraped. Every series carries a
``pool`` label, so several pools share one registry.

=======================================  =========  ===========================
name                                     type       labels
=======================================  =========  ===========================
snakepit_requests_total                  counter    pool, tool, outcome
snakepit_request_duration_seconds        histogram  pool, tool
snakepit_queue_wait_seconds              histogram  pool
snakepit_queue_depth                     gauge      pool
snakepit_workers                         gauge      pool, state
snakepit_worker_restarts_total           counter    pool, reason
snakepit_worker_recycles_total           counter    pool, reason
snakepit_worker_rss_bytes                gauge      pool, worker
=======================================  =========  ===========================

``outcome`` is ``ok`` or the error's class name (``ExecutionTimeoutError``,
``WorkerCrashedError``...); a restart's ``reason`` is ``crashed`` (the process
exited on its own) or ``unhealthy`` (the pool stopped it: a missed heartbeat, a
call past its deadline).
"""

from __future__ import annotations

import contextlib
import weakref
from typing import TYPE_CHECKING, Any

import psutil
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily

from snakepit.events import (
    Event,
    RequestCompleted,
    RequestDispatched,
    RequestFailed,
    WorkerExited,
    WorkerRecycled,
    WorkerRestarting,
    WorkerUnhealthy,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

    from snakepit.pool import Pool
    from snakepit.pool._types import PoolStats, WorkerInfo

__all__ = ["PoolMetrics", "instrument"]

_STATES = ("starting", "ready", "busy", "stopping", "exited")
# The counters and histograms of each registry, shared by every pool instrumented on it
# (a registry refuses a second collector of the same name).
_FAMILIES: weakref.WeakKeyDictionary[CollectorRegistry, dict[str, Any]] = (
    weakref.WeakKeyDictionary()
)
_INSTRUMENTED: weakref.WeakKeyDictionary[CollectorRegistry, set[str]] = weakref.WeakKeyDictionary()


class PoolMetrics:
    """The metrics of one pool on one registry; see :func:`instrument`."""

    def __init__(self, pool: Pool, registry: CollectorRegistry) -> None:
        self.pool = pool
        self.registry = registry
        name = pool.name
        self._requests = _shared(
            registry,
            "snakepit_requests",
            lambda: Counter(
                "snakepit_requests",
                "Calls that ended, by tool and outcome (ok or the error class)",
                ["pool", "tool", "outcome"],
                registry=registry,
            ),
        )
        self._duration = _shared(
            registry,
            "snakepit_request_duration_seconds",
            lambda: Histogram(
                "snakepit_request_duration_seconds",
                "Seconds a completed call ran on its worker",
                ["pool", "tool"],
                registry=registry,
            ),
        )
        self._queue_wait = _shared(
            registry,
            "snakepit_queue_wait_seconds",
            lambda: Histogram(
                "snakepit_queue_wait_seconds",
                "Seconds a call waited in the queue before a worker took it",
                ["pool"],
                registry=registry,
            ),
        )
        self._restarts = _shared(
            registry,
            "snakepit_worker_restarts",
            lambda: Counter(
                "snakepit_worker_restarts",
                "Workers restarted, by reason (crashed or unhealthy)",
                ["pool", "reason"],
                registry=registry,
            ),
        )
        self._recycles = _shared(
            registry,
            "snakepit_worker_recycles",
            lambda: Counter(
                "snakepit_worker_recycles",
                "Workers replaced on purpose (TTL, max requests, memory), by reason",
                ["pool", "reason"],
                registry=registry,
            ),
        )
        self._queue_wait_child = self._queue_wait.labels(name)
        self._why: dict[str, str] = {}  # worker id -> why it went, until it restarts
        self._gauges = _Gauges(pool)
        registry.register(self._gauges)
        self._remove = pool.events.add_listener(self._on_event)

    def _on_event(self, event: Event) -> None:
        name = self.pool.name
        if isinstance(event, RequestCompleted):
            self._requests.labels(name, event.tool, "ok").inc()
            self._duration.labels(name, event.tool).observe(event.seconds)
        elif isinstance(event, RequestFailed):
            self._requests.labels(name, event.tool, event.error).inc()
        elif isinstance(event, RequestDispatched):
            self._queue_wait_child.observe(event.queued_seconds)
        elif isinstance(event, WorkerUnhealthy):
            self._why[event.worker_id] = "unhealthy"
        elif isinstance(event, WorkerExited):
            if not event.expected:
                self._why.setdefault(event.worker_id, "crashed")
        elif isinstance(event, WorkerRestarting):
            self._restarts.labels(name, self._why.pop(event.worker_id, "crashed")).inc()
        elif isinstance(event, WorkerRecycled):
            self._recycles.labels(name, event.reason).inc()

    def close(self) -> None:
        """Stop following the pool and take its gauges off the registry (counters stay)."""
        self._remove()
        with contextlib.suppress(KeyError):
            self.registry.unregister(self._gauges)
        _INSTRUMENTED.get(self.registry, set()).discard(self.pool.name)

    def __repr__(self) -> str:
        return f"<PoolMetrics of pool {self.pool.name!r}>"


class _Gauges:
    """Gauges read from the pool at scrape time (in the scraping thread)."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    def describe(self) -> list[Any]:
        return []  # read at scrape; nothing to check for name clashes up front

    def collect(self) -> Iterator[GaugeMetricFamily]:
        name = self._pool.name
        stats, workers = self._snapshot()
        depth = GaugeMetricFamily(
            "snakepit_queue_depth", "Calls waiting for a worker", labels=["pool"]
        )
        by_state = GaugeMetricFamily(
            "snakepit_workers", "Worker processes by state", labels=["pool", "state"]
        )
        rss = GaugeMetricFamily(
            "snakepit_worker_rss_bytes",
            "Resident memory of each worker process",
            labels=["pool", "worker"],
        )
        if stats is not None:
            depth.add_metric([name], stats.queued)
        counts = dict.fromkeys(_STATES, 0)
        for w in workers:
            state = "busy" if w.state == "ready" and w.in_flight else w.state
            counts[state] = counts.get(state, 0) + 1
            if w.pid:
                with contextlib.suppress(psutil.Error):
                    rss.add_metric([name, w.id], psutil.Process(w.pid).memory_info().rss)
        for state, count in counts.items():
            by_state.add_metric([name, state], count)
        yield depth
        yield by_state
        yield rss

    def _snapshot(self) -> tuple[PoolStats | None, list[WorkerInfo]]:
        # The pool's loop may change its tables while this thread reads them: retry a few times.
        for _ in range(5):
            with contextlib.suppress(RuntimeError):
                return self._pool.stats(), self._pool.workers()
        return None, []


def _shared(registry: CollectorRegistry, name: str, make: Any) -> Any:
    """The collector ``name`` already on ``registry`` (another pool made it), or a new one."""
    families = _FAMILIES.setdefault(registry, {})
    if name not in families:
        families[name] = make()
    return families[name]


def instrument(pool: Pool, *, registry: CollectorRegistry | None = None) -> PoolMetrics:
    """Publish ``pool``'s metrics on ``registry`` (default: prometheus_client's global one).

    Serve them with ``prometheus_client.start_http_server(port)`` or its WSGI/ASGI
    app; call :meth:`PoolMetrics.close` to stop.

    Raises:
        ValueError: this pool (by name) is already instrumented on that registry.
    """
    registry = REGISTRY if registry is None else registry
    names = _INSTRUMENTED.setdefault(registry, set())
    if pool.name in names:
        raise ValueError(
            f"pool {pool.name!r} is already instrumented on this registry; close its "
            "PoolMetrics first or give the pool another name"
        )
    names.add(pool.name)
    return PoolMetrics(pool, registry)
