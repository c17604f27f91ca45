"""``python -m snakepit.benchmarks``."""

from __future__ import annotations

import sys

from snakepit.benchmarks import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
