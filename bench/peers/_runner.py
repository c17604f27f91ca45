"""The scenarios of one subject, run in the subject's own process (see ``_child``).

The steady scenarios (latency, throughput, payload, stream) share one warm
pool; then pool start and crash recovery, each on fresh pools. Every figure
is the median of repeated runs; a failure becomes the cells' text.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from bench.peers._format import quantity
from bench.peers._model import Cell, Config, size_label
from bench.peers._subject import NotSupported, Subject, Unavailable

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from bench.peers._progress import Progress

Table = dict[str, dict[str, Cell]]  # metric key -> subject name -> cell


def percentile(samples: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) by the nearest-rank method."""
    ordered = sorted(samples)
    rank = max(1, round(q * len(ordered) + 0.5))
    return ordered[min(rank, len(ordered)) - 1]


def error_text(exc: BaseException) -> str:
    message = str(exc).splitlines()[0] if str(exc) else ""
    text = f"error: {type(exc).__name__}" + (f": {message}" if message else "")
    return text if len(text) <= 90 else text[:87] + "..."


class Runner:
    """The steady, start and crash scenarios of one subject, in this process."""

    def __init__(self, config: Config, progress: Progress) -> None:
        self.config = config
        self.progress = progress
        self.table: Table = {}
        self.unavailable: dict[str, str] = {}

    # -- bookkeeping ----------------------------------------------------------------------------

    def _cell(self, key: str, subject: Subject) -> Cell:
        return self.table.setdefault(key, {}).setdefault(subject.name, Cell())

    def _fail(self, keys: Iterable[str], subject: Subject, text: str) -> None:
        for key in keys:
            cell = self._cell(key, subject)
            cell.samples.clear()
            cell.text = text

    def _available(self, subject: Subject, scenario: str, keys: list[str]) -> bool:
        if subject.name in self.unavailable:
            self.progress.begin(scenario, subject.name)
            self.progress.end(self.unavailable[subject.name])
            self._fail(keys, subject, self.unavailable[subject.name])
            return False
        return True

    def _guard(
        self, scenario: str, subject: Subject, keys: list[str], body: Callable[[], str]
    ) -> None:
        """Run one scenario for one subject; a failure becomes the cells' text, not a crash."""
        if not self._available(subject, scenario, keys):
            return
        self.progress.begin(scenario, subject.name)
        try:
            shown = body()
        except NotSupported as exc:
            self._fail(keys, subject, str(exc))
            shown = str(exc)
        except Unavailable as exc:
            self.unavailable[subject.name] = str(exc)
            self._fail(keys, subject, str(exc))
            shown = str(exc)
        except Exception as exc:
            self._fail(keys, subject, error_text(exc))
            shown = error_text(exc)
        self.progress.end(shown)

    # -- the run --------------------------------------------------------------------------------

    def run(self, subject: Subject) -> Table:
        try:
            subject.check()
        except Unavailable as exc:
            self.unavailable[subject.name] = str(exc)
        self.steady(subject)
        self.start(subject)
        self.crash(subject)
        return self.table

    def steady(self, subject: Subject) -> None:
        cfg = self.config
        keys_latency = ["latency.p50", "latency.p99"]
        keys_tp = [f"throughput.c{c}" for c in cfg.concurrency]
        keys_payload = [f"payload.{s}" for s in cfg.payload_sizes]
        keys_stream = ["stream.rate"]
        every = keys_latency + keys_tp + keys_payload + keys_stream
        if not self._available(subject, "steady", every):
            return
        self.progress.begin("open", subject.name)
        try:
            session = subject.session(cfg.workers)
        except Unavailable as exc:
            self.unavailable[subject.name] = str(exc)
            self.progress.end(str(exc))
            self._fail(every, subject, str(exc))
            return
        except Exception as exc:
            self.progress.end(error_text(exc))
            self._fail(every, subject, error_text(exc))
            return
        self.progress.end(f"{cfg.workers} workers warm")
        try:

            def latency() -> str:
                p50, p99 = self._cell("latency.p50", subject), self._cell("latency.p99", subject)
                for _ in range(cfg.reps):
                    samples = session.latency(cfg.latency_calls)
                    p50.samples.append(percentile(samples, 0.50))
                    p99.samples.append(percentile(samples, 0.99))
                return summary(("p50", p50, "µs"), ("p99", p99, "µs"))

            def throughput() -> str:
                parts = []
                for c in cfg.concurrency:
                    cell = self._cell(f"throughput.c{c}", subject)
                    for _ in range(cfg.reps):
                        cell.samples.append(session.throughput(cfg.throughput_calls, c))
                    parts.append((f"c={c}", cell, "calls/s"))
                return summary(*parts)

            def payload() -> str:
                parts = []
                for size, calls in zip(cfg.payload_sizes, cfg.payload_calls, strict=True):
                    data = os.urandom(size)
                    cell = self._cell(f"payload.{size}", subject)
                    for rep in range(cfg.reps):
                        cell.samples.append(session.payload(data, calls, verify=rep == 0))
                    parts.append((size_label(size), cell, "MB/s"))
                return summary(*parts) + "  (bytes verified)"

            def stream() -> str:
                cell = self._cell("stream.rate", subject)
                for _ in range(cfg.stream_reps):
                    cell.samples.append(session.stream(cfg.stream_chunks))
                return summary(("", cell, "chunks/s"))

            self._guard("latency", subject, keys_latency, latency)
            self._guard("throughput", subject, keys_tp, throughput)
            self._guard("payload", subject, keys_payload, payload)
            self._guard("stream", subject, keys_stream, stream)
        finally:
            try:
                session.close()
            except Exception as exc:
                self.progress.note(f"closing {subject.name}: {error_text(exc)}")

    def start(self, subject: Subject) -> None:
        cfg = self.config
        for key, spawn in (("start.default", False), ("start.spawn", True)):

            def body(key: str = key, spawn: bool = spawn) -> str:
                cell = self._cell(key, subject)
                for _ in range(cfg.start_reps):
                    cell.samples.append(subject.start(cfg.workers, spawn))
                return summary(("", cell, "ms"))

            self._guard("start" if not spawn else "start/spn", subject, [key], body)

        def many() -> str:
            cell = self._cell("start.many", subject)
            for _ in range(cfg.many_reps):
                cell.samples.append(subject.start_many(cfg.many_workers))
            return summary(("", cell, "ms"))

        self._guard("start/many", subject, ["start.many"], many)

    def crash(self, subject: Subject) -> None:
        cfg = self.config
        keys = ["crash.recovery", "crash.recreate", "crash.failed"]

        def body() -> str:
            recovery = self._cell("crash.recovery", subject)
            recreate = self._cell("crash.recreate", subject)
            failed = self._cell("crash.failed", subject)
            notes: list[str] = []
            lost = 0
            for _ in range(cfg.crash_reps):
                outcome = subject.crash(cfg.workers)
                if outcome.recovery_s is not None:
                    recovery.samples.append(outcome.recovery_s)
                if outcome.recreate_s is not None:
                    recreate.samples.append(outcome.recreate_s)
                failed.samples.append(float(outcome.failed + outcome.lost))
                lost = max(lost, outcome.lost)
                notes.append(outcome.note)
            if not recovery.samples:
                recovery.text = "broken: must be recreated"
            if not recreate.samples:
                recreate.text = "n/a: recovers by itself"
            failed.note = "; ".join(dict.fromkeys(notes))
            if lost and failed.value is not None:
                failed.text = f"{failed.value:g}, never returns"
            shown = recovery if recovery.samples else recreate
            label = "recovered" if recovery.samples else "broken, recreated"
            return summary((label, shown, "ms"), ("failed", failed, "calls")) + (
                f"  [{failed.note}]"
            )

        self._guard("crash", subject, keys, body)


def summary(*parts: tuple[str, Cell, str]) -> str:
    shown = []
    for label, cell, unit in parts:
        value = cell.value
        text = quantity(value, unit) if value is not None else (cell.text or "-")
        spread = ""
        if len(cell.samples) > 1 and value:
            lo, hi = min(cell.samples), max(cell.samples)
            spread = f" ±{(hi - lo) / 2 / value * 100:.0f}%" if unit != "calls" else ""
        shown.append(f"{label} {text}{spread}".strip())
    return "  ".join(shown)
