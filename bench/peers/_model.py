"""The shapes of a benchmark run: its settings, its metrics, the cells of its table."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Literal

Better = Literal["lower", "higher", ""]

#: The peer every ratio is taken against.
BASELINE = "ProcessPoolExecutor"

#: Column order of the table.
SUBJECTS = (
    "snakepit-local",
    "snakepit-grpc",
    "ProcessPoolExecutor",
    "multiprocessing.Pool",
    "pebble.ProcessPool",
    "loky",
)

#: calls outstanding at the kill in the crash scenario (see ``_subject``)
IN_FLIGHT = 8

KiB = 1024
MiB = 1024 * 1024


@dataclass(frozen=True)
class Config:
    """How much of each scenario to run; ``quick()`` fits in a minute, ``full()`` in ten."""

    mode: str
    #: passes over all subjects; each pass runs ``reps`` of every steady figure
    rounds: int
    reps: int
    workers: int
    latency_calls: int
    throughput_calls: int
    concurrency: tuple[int, ...]
    payload_sizes: tuple[int, ...]
    payload_calls: tuple[int, ...]
    start_reps: int
    crash_reps: int
    stream_chunks: int
    stream_reps: int
    memory_reps: int
    #: below the pool (``_floor``): round trips per transport, cold starts of one worker
    floor_calls: int
    floor_starts: int
    #: the "many workers" start: pools of this size until every worker is ready
    many_workers: int = 100
    many_reps: int = 1

    @classmethod
    def full(cls) -> Config:
        return cls(
            mode="full",
            rounds=2,
            reps=5,
            workers=4,
            many_workers=100,
            latency_calls=2000,
            throughput_calls=2000,
            concurrency=(1, 8, 64),
            payload_sizes=(KiB, MiB, 16 * MiB),
            payload_calls=(500, 40, 5),
            start_reps=3,
            crash_reps=2,
            stream_chunks=10_000,
            stream_reps=3,
            memory_reps=3,
            floor_calls=1000,
            floor_starts=20,
        )

    @classmethod
    def quick(cls) -> Config:
        return cls(
            mode="quick",
            rounds=1,
            reps=3,
            workers=4,
            many_workers=100,
            latency_calls=300,
            throughput_calls=300,
            concurrency=(1, 8, 64),
            payload_sizes=(KiB, MiB, 16 * MiB),
            payload_calls=(100, 8, 2),
            start_reps=3,
            crash_reps=2,
            stream_chunks=10_000,
            stream_reps=2,
            memory_reps=1,
            floor_calls=300,
            floor_starts=5,
        )


@dataclass(frozen=True)
class Metric:
    """One row of the table. Values are kept in SI units (s, B, B/s, 1/s); ``unit`` is shown."""

    key: str
    label: str
    unit: str
    better: Better


@dataclass
class Cell:
    """One subject's figure for one metric: a median of ``samples``, or a ``text`` instead."""

    samples: list[float] = field(default_factory=list)
    text: str | None = None
    note: str | None = None

    @property
    def value(self) -> float | None:
        return statistics.median(self.samples) if self.samples else None

    def to_json(self) -> dict[str, object]:
        return {"value": self.value, "samples": self.samples, "text": self.text, "note": self.note}


def size_label(size: int) -> str:
    if size >= MiB and size % MiB == 0:
        return f"{size // MiB} MiB"
    if size >= KiB and size % KiB == 0:
        return f"{size // KiB} KiB"
    return f"{size} B"


def metrics(config: Config) -> list[Metric]:
    """Every row, in table order."""
    rows = [
        Metric("latency.p50", "round trip, one caller: p50", "µs", "lower"),
        Metric("latency.p99", "round trip, one caller: p99", "µs", "lower"),
    ]
    rows += [
        Metric(f"throughput.c{c}", f"throughput, concurrency {c}", "calls/s", "higher")
        for c in config.concurrency
    ]
    rows += [
        Metric(f"payload.{s}", f"payload round trip, {size_label(s)}", "MB/s", "higher")
        for s in config.payload_sizes
    ]
    rows += [
        Metric("start.default", f"pool start, {config.workers} workers answered", "ms", "lower"),
        Metric("start.spawn", "pool start, `spawn` start method", "ms", "lower"),
        Metric("start.many", f"pool start, {config.many_workers} workers ready", "ms", "lower"),
        Metric("crash.recovery", "crash: back to full size by itself", "ms", "lower"),
        Metric("crash.recreate", "crash: recreated by hand, full size", "ms", "lower"),
        Metric(
            "crash.failed",
            f"crash: calls failed or lost, of 1 running + {IN_FLIGHT} outstanding",
            "calls",
            "lower",
        ),
        Metric("stream.rate", f"stream of {config.stream_chunks:,} chunks", "chunks/s", "higher"),
        Metric("memory.worker_rss", "memory: idle worker RSS", "MiB", "lower"),
        Metric("memory.worker_uss", "memory: idle worker USS (unshared)", "MiB", "lower"),
        Metric("memory.spawn_worker_rss", "memory: idle worker RSS, `spawn`", "MiB", "lower"),
        Metric("memory.spawn_worker_uss", "memory: idle worker USS, `spawn`", "MiB", "lower"),
        Metric("memory.host_rss", "memory: host process RSS", "MiB", "lower"),
        Metric(
            "memory.total_rss",
            f"memory: host + {config.workers} workers + helpers RSS",
            "MiB",
            "lower",
        ),
    ]
    return rows
