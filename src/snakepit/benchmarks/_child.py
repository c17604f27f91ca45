"""One subject's run in a fresh process: ``python -m snakepit.benchmarks._child``.

Every subject runs in its own interpreter, so no pool shares a process with
another library's threads or imports (a forking peer must not fork a process
that runs gRPC threads). Arguments: the subject's name, the phase (``main``:
steady, start and crash scenarios; ``memory``: one memory reading), the
settings as JSON, and the path to write the result (JSON) to.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    from snakepit.benchmarks._model import Config
    from snakepit.benchmarks._progress import Progress
    from snakepit.benchmarks._runner import Runner
    from snakepit.benchmarks._subjects import subject_named

    # The pool logs the workers we kill on purpose; keep the progress lines readable.
    logging.getLogger("snakepit").addHandler(logging.NullHandler())
    logging.getLogger("snakepit").propagate = False

    name, phase, settings, out = argv[0], argv[1], json.loads(argv[2]), Path(argv[3])
    config = Config(**settings["config"])
    subject = subject_named(name)
    if phase == "memory":
        from snakepit.benchmarks._subject import NotSupported

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
    sys.exit(main(sys.argv[1:]))
