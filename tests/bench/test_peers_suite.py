"""The side-by-side suite in bench/peers: it keeps snakepit out of the peers' processes, and
a saved run renders into docs between the markers (benchmarks themselves are never tests)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench.peers._cli import main
from bench.peers._machine import describe
from bench.peers._model import Cell, Config
from bench.peers._report import END, START, to_json
from bench.peers._subjects import all_subjects

ROOT = Path(__file__).resolve().parents[2]


class TestPeersSuite:
    def test_importing_the_suite_loads_nothing_of_snakepit(self) -> None:
        """An executor peer's child imports bench.peers (and its workers unpickle tasks from
        it): none of its modules may load snakepit or gRPC, or the peer's figures would
        include them."""
        probe = (
            "import importlib, pkgutil, sys\n"
            "import bench.peers\n"
            "for m in pkgutil.iter_modules(bench.peers.__path__):\n"
            "    importlib.import_module('bench.peers.' + m.name)\n"
            "print(sorted(m for m in sys.modules if m.partition('.')[0] in ('snakepit', 'grpc')))\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT
        ).stdout
        assert out.strip() == "[]", out

    def test_a_saved_run_rewrites_only_the_block_between_the_markers(self, tmp_path: Path) -> None:
        """--from-json --update-docs: the table replaces the old block; the prose stays."""
        table = {
            "latency.p50": {
                "snakepit-local": Cell(samples=[200e-6]),
                "ProcessPoolExecutor": Cell(samples=[100e-6]),
            },
            "crash.failed": {"snakepit-local": Cell(samples=[1.0], note="the call raised")},
        }
        saved = tmp_path / "run.json"
        saved.write_text(json.dumps(to_json(describe(all_subjects()), Config.quick(), table)))
        docs = tmp_path / "performance.md"
        docs.write_text(f"# Performance\n\nprose before\n\n{START}\nold table\n{END}\n\nafter\n")

        argv = ["--from-json", str(saved), "--update-docs", "--docs", str(docs), "--quiet"]
        assert main(argv) == 0

        text = docs.read_text()
        assert text.startswith("# Performance\n\nprose before\n\n" + START)
        assert text.endswith(END + "\n\nafter\n") and "old table" not in text
        assert "| round trip, one caller: p50 (µs) | lower | 200 (\u00d72.00) | 100 |" in text
        assert "1. the call raised" in text
