"""Entry script of a peer's child process: run by path, never imported as a module.

``python .../_peer_main.py ARGS`` is ``snakepit.benchmarks._child`` for an
executor peer, with one difference: the ``snakepit`` package is entered
through a bare stand-in, so this process does not run ``snakepit/__init__``
and whatever it may load (gRPC, the pool). Forked workers inherit the
stand-in; workers started by ``spawn`` re-run this file before they unpickle a
task, so they get it too. loky's workers do not re-run the main script: they
import ``snakepit/__init__`` when they unpickle the first task (today it is
lazy and loads only the error classes). A peer's figures then include only
what a program using that peer would load.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

if "snakepit" not in sys.modules:
    _package = types.ModuleType("snakepit")
    _package.__path__ = [str(Path(__file__).resolve().parents[1])]
    sys.modules["snakepit"] = _package

if __name__ == "__main__":
    import os

    from snakepit.benchmarks._child import main

    code = main(sys.argv[1:])
    sys.stdout.flush()
    sys.stderr.flush()
    # The result is written. A broken ProcessPoolExecutor may leave its feeder thread
    # stuck writing to a dead worker's pipe, which the interpreter would join at exit
    # for ever: leave without waiting for it.
    os._exit(code)
