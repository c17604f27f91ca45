#!/usr/bin/env python
"""Side-by-side benchmark: ``python bench/run.py [--quick] [--json out.json] [--markdown out.md]``.

The same as ``python -m bench.peers`` from the repository's root, from anywhere.
``--update-docs`` rewrites the table in docs/performance.md (see bench/update-docs).
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    from bench.peers._cli import main

    sys.exit(main(sys.argv[1:]))
