"""The side-by-side benchmark suite: snakepit against the standard and popular process pools.

Run it with ``snakepit bench`` or ``python bench/run.py`` (``--quick`` for a
one-minute pass). Benchmarks are never tests: nothing here asserts a speed.
"""

from __future__ import annotations

from snakepit.benchmarks._cli import main

__all__ = ["main"]
