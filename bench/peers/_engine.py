"""Runs every subject, each in its own fresh process, and gathers the table.

A subject's steady, start and crash scenarios run in one child process
(``_child``); each memory reading in another, fresh one, so that the host's
figure is that of a program that started only that pool. Every child runs
``python -m bench.peers...`` with the repository's root on ``PYTHONPATH``; an
executor peer's child never imports ``snakepit`` (and so gRPC), nor do its workers.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.peers._model import Cell, Config, metrics
from bench.peers._runner import Table, error_text, summary

if TYPE_CHECKING:
    from collections.abc import Iterable

    from bench.peers._progress import Progress

_REPO = Path(__file__).resolve().parents[2]
_MEMORY = ("worker_rss", "worker_uss", "host_rss", "total_rss")


def _env() -> dict[str, str]:
    """This environment, with the repository's root first on ``PYTHONPATH``: a child (and a
    peer's spawned worker unpickling a task) imports ``bench.peers`` from there."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_REPO), env.get("PYTHONPATH")]))
    return env


def _child(name: str, phase: str, settings: dict[str, Any], timeout: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="snakepit-bench-") as tmp:
        out = Path(tmp) / "result.json"
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "bench.peers._child",
                name,
                phase,
                json.dumps(settings),
                str(out),
            ],
            env=_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=None if phase == "main" else subprocess.PIPE,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0 or not out.exists():
            lines = (done.stderr or "").strip().splitlines()
            raise RuntimeError(lines[-1] if lines else f"child exited {done.returncode}")
        result: dict[str, Any] = json.loads(out.read_text())
        return result


def _cell(data: dict[str, Any]) -> Cell:
    return Cell(samples=list(data["samples"]), text=data["text"], note=data["note"])


class Engine:
    def __init__(self, config: Config, progress: Progress, names: Iterable[str]) -> None:
        self.config = config
        self.progress = progress
        self.names = list(names)
        self.table: Table = {}
        self.unavailable: dict[str, str] = {}
        self.floor: dict[str, Any] | None = None

    def _settings(self) -> dict[str, Any]:
        return {
            "config": dataclasses.asdict(self.config),
            "started_at": self.progress.started_at,
            "progress": self.progress.enabled,
        }

    def run(self) -> Table:
        # Rounds spread each subject's runs over the whole run, so that a busy spell
        # of the machine does not land on one subject only.
        for round_ in range(self.config.rounds):
            for name in self.names:
                if round_ and name in self.unavailable:
                    continue
                self.main(name)
        for name in self.names:
            self.memory(name)
        if any(name.startswith("snakepit") for name in self.names):
            self.below_the_pool()
        return self.table

    def below_the_pool(self) -> None:
        """The transports' own round trip and one bare worker (see ``_floor``)."""
        self.progress.begin("floor", "transports, 1 worker")
        with tempfile.TemporaryDirectory(prefix="snakepit-bench-") as tmp:
            out = Path(tmp) / "floor.json"
            command = [sys.executable, "-m", "bench.peers._floor", str(out)]
            command += ["--calls", str(self.config.floor_calls)]
            command += ["--starts", str(self.config.floor_starts)]
            try:
                done = subprocess.run(
                    command,
                    stdin=subprocess.DEVNULL,
                    capture_output=True,
                    text=True,
                    timeout=600,
                    check=False,
                    env=_env(),
                )
                if done.returncode != 0 or not out.exists():
                    lines = done.stderr.strip().splitlines()
                    raise RuntimeError(lines[-1] if lines else f"exited {done.returncode}")
                self.floor = json.loads(out.read_text())
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                self.progress.end(error_text(exc))
                self.floor = {"error": error_text(exc)}
                return
        f = self.floor
        self.progress.end(
            f"pipe {f['pipe_pickle']['p50'] * 1e6:.0f} µs  grpc.aio {f['grpc_aio']['p50'] * 1e6:.0f}"
            f" µs  local execute {f['local']['worker_execute_ping']['p50'] * 1e6:.0f} µs"
            f"  grpc execute {f['grpc']['worker_execute_ping']['p50'] * 1e6:.0f} µs"
        )

    def main(self, name: str) -> None:
        """Steady, start and crash scenarios; the child prints its own progress lines."""
        try:
            result = _child(name, "main", self._settings(), timeout=1800)
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            self.progress.note(f"{name}: {error_text(exc)}")
            self.unavailable.setdefault(name, error_text(exc))
            for metric in metrics(self.config):
                if not metric.key.startswith("memory."):
                    self.table.setdefault(metric.key, {})[name] = Cell(text=error_text(exc))
            return
        for key, data in result["cells"].items():
            for subject, fresh in data.items():
                row = self.table.setdefault(key, {})
                if subject not in row:
                    row[subject] = _cell(fresh)
                    continue
                cell = row[subject]  # a later round: pool the samples
                cell.samples.extend(fresh["samples"])
                if fresh["note"] and fresh["note"] not in (cell.note or ""):
                    cell.note = f"{cell.note}; {fresh['note']}" if cell.note else fresh["note"]
                cell.text = cell.text or fresh["text"]
        self.unavailable.update(result["unavailable"])

    def memory(self, name: str) -> None:
        keys = [f"memory.{m}" for m in _MEMORY]
        cells = {key: self.table.setdefault(key, {}).setdefault(name, Cell()) for key in keys}
        self.progress.begin("memory", name)
        if name in self.unavailable:
            for cell in cells.values():
                cell.text = self.unavailable[name]
            self.progress.end(self.unavailable[name])
            return
        try:
            for _ in range(self.config.memory_reps):
                reading = _child(name, "memory", self._settings(), timeout=300)["memory"]
                for m in _MEMORY:
                    cells[f"memory.{m}"].samples.append(float(reading[m]))
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            for cell in cells.values():
                cell.samples.clear()
                cell.text = error_text(exc)
            self.progress.end(error_text(exc))
            return
        self.progress.end(
            summary(*((m.replace("_", " "), cells[f"memory.{m}"], "MiB") for m in _MEMORY))
        )
        self.memory_spawn(name)

    def memory_spawn(self, name: str) -> None:
        """Idle worker RSS/USS again, with workers started by the ``spawn`` method."""
        keys = {m: f"memory.spawn_{m}" for m in ("worker_rss", "worker_uss")}
        cells = {m: self.table.setdefault(k, {}).setdefault(name, Cell()) for m, k in keys.items()}
        self.progress.begin("mem/spawn", name)
        if name in self.unavailable:
            for cell in cells.values():
                cell.text = self.unavailable[name]
            self.progress.end(self.unavailable[name])
            return
        settings = {**self._settings(), "spawn": True}
        try:
            for _ in range(self.config.memory_reps):
                result = _child(name, "memory", settings, timeout=300)
                if "not_supported" in result:
                    for cell in cells.values():
                        cell.text = str(result["not_supported"])
                    self.progress.end(str(result["not_supported"]))
                    return
                for m, cell in cells.items():
                    cell.samples.append(float(result["memory"][m]))
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            for cell in cells.values():
                cell.samples.clear()
                cell.text = error_text(exc)
            self.progress.end(error_text(exc))
            return
        self.progress.end(
            summary(*((m.replace("_", " "), cells[m], "MiB") for m in ("worker_rss", "worker_uss")))
        )
