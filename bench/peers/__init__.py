"""The side-by-side benchmark suite: snakepit against the standard and popular process pools.

Run it from the repository's root with ``python -m bench.peers`` or ``python bench/run.py``
(``--quick`` for a one-minute pass). Benchmarks are never tests: nothing here asserts a speed.

Importing this package (or any module in it) loads nothing of ``snakepit``: an executor
peer's processes, and the workers that unpickle its tasks, import only what a program
using that peer would.
"""
