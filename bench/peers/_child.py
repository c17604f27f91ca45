"""One subject's run in a fresh process: ``python -m bench.peers._child``.

Every subject runs in its own interpreter, so no pool shares a process with
another library's threads or imports (a forking peer must not fork a process
that runs gRPC threads). Arguments: the subject's name, the phase (``main``:
steady, start and crash scenarios; ``memory``: one memory reading), the
settings as JSON, and the path to write the result (JSON) to.

The engine runs it as ``python -m bench.peers._child`` with the repository's root on
``PYTHONPATH``. Nothing it imports loads ``snakepit`` until a snakepit subject runs, so
an executor peer's process (and its forked or spawned workers) holds only what a program
using that peer would.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    from bench.peers._model import Config
    from bench.peers._progress import Progress
    from bench.peers._runner import Runner
    from bench.peers._subjects import subject_named

    # The pool logs the workers we kill on purpose; keep the progress lines readable.
    logging.getLogger("snakepit").addHandler(logging.NullHandler())
    logging.getLogger("snakepit").propagate = False

    name, phase, settings, out = argv[0], argv[1], json.loads(argv[2]), Path(argv[3])
    config = Config(**settings["config"])
    subject = subject_named(name)
    if phase == "memory":
        from bench.peers._subject import NotSupported

        try:
            reading = subject.memory(config.workers, spawn=bool(settings.get("spawn")))
        except NotSupported as exc:
            result: dict[str, object] = {"not_supported": str(exc)}
        else:
            result = {"memory": reading}
    else:
        progress = Progress(started_at=settings.get("started_at"), enabled=settings["progress"])
        runner = Runner(config, progress)
        table = runner.run(subject)
        result = {
            "cells": {
                key: {who: cell.to_json() for who, cell in row.items()}
                for key, row in table.items()
            },
            "unavailable": runner.unavailable,
        }
    out.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    code = main(sys.argv[1:])
    if sys.argv[1].startswith("snakepit"):
        sys.exit(code)
    sys.stdout.flush()
    sys.stderr.flush()
    # The result is written. A broken ProcessPoolExecutor may leave its feeder thread
    # stuck writing to a dead worker's pipe, which the interpreter would join at exit
    # for ever: leave without waiting for it.
    os._exit(code)
