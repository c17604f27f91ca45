#!/usr/bin/env python
"""Side-by-side benchmark: ``python bench/run.py [--quick] [--json out.json] [--markdown out.md]``.

``--update-docs`` rewrites the table in docs/performance.md (see bench/update-docs).
The engine lives in ``snakepit.benchmarks`` so the installed ``snakepit bench`` runs it too.
"""

from __future__ import annotations

import sys
from pathlib import Path

from snakepit.benchmarks import main

REPO = Path(__file__).resolve().parents[1]

if __name__ == "__main__":
    argv = sys.argv[1:]
    if not any(a == "--docs" or a.startswith("--docs=") for a in argv):
        argv += ["--docs", str(REPO / "docs" / "performance.md")]
    sys.exit(main(argv))
