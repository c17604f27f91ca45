"""The facts a reader needs to weigh the numbers: machine, versions, date."""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import psutil

if TYPE_CHECKING:
    from bench.peers._subject import Subject


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def describe(subjects: list[Subject]) -> dict[str, object]:
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": {
            "cpu": cpu_model(),
            "logical_cores": os.cpu_count(),
            "physical_cores": psutil.cpu_count(logical=False),
            "memory_bytes": psutil.virtual_memory().total,
            "os": platform.platform(terse=True),
            "load_average_at_start": [round(x, 2) for x in load],
        },
        "versions": {
            "python": f"{platform.python_implementation()} {platform.python_version()}",
            "snakepit": _version("pysnakepit"),
            "grpcio": _version("grpcio"),
            "protobuf": _version("protobuf"),
            "pebble": _version("pebble"),
            "loky": _version("loky"),
            "psutil": _version("psutil"),
        },
        "start_methods": {s.name: s.start_method for s in subjects},
        "argv": sys.argv[1:],
    }
