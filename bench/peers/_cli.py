"""``python -m bench.peers`` / ``python bench/run.py``: run the side-by-side suite."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from bench.peers._model import SUBJECTS, Config

if TYPE_CHECKING:
    from collections.abc import Sequence

_DOCS = Path(__file__).resolve().parents[2] / "docs" / "performance.md"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.peers",
        description=(
            "Side-by-side benchmark of snakepit against ProcessPoolExecutor, "
            "multiprocessing.Pool, pebble and loky on this machine. Progress goes to "
            "stderr, the Markdown table to stdout."
        ),
    )
    parser.add_argument(
        "--quick", action="store_true", help="fewer repetitions: under a minute, every scenario"
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the result as JSON")
    parser.add_argument("--markdown", type=Path, metavar="PATH", help="also write the table here")
    parser.add_argument(
        "--update-docs",
        action="store_true",
        help="write the table into the docs file between <!-- bench:start/end --> markers",
    )
    parser.add_argument(
        "--docs",
        type=Path,
        default=_DOCS,
        metavar="PATH",
        help="the file --update-docs writes (default: %(default)s)",
    )
    parser.add_argument(
        "--from-json",
        type=Path,
        metavar="PATH",
        help="render a saved JSON result instead of running",
    )
    parser.add_argument(
        "--only",
        metavar="NAMES",
        help="comma-separated subjects to run (of: " + ", ".join(SUBJECTS) + ")",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the suite (or render a saved result); 0 on success, 2 on bad arguments."""
    args = _parser().parse_args(list(argv) if argv is not None else None)

    if args.from_json is not None:
        result = json.loads(args.from_json.read_text())
    else:
        only = [n.strip() for n in args.only.split(",")] if args.only else []
        unknown = [n for n in only if n not in SUBJECTS]
        if unknown:
            print(f"unknown subject(s): {', '.join(unknown)}", file=sys.stderr)
            return 2
        result = run(Config.quick() if args.quick else Config.full(), only, not args.quiet)

    from bench.peers._report import markdown, update_docs

    table = markdown(result)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    if args.markdown is not None:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(table)
    if args.update_docs:
        update_docs(args.docs, table)
        print(f"updated {args.docs}", file=sys.stderr)
    sys.stdout.write(table)
    return 0


def run(config: Config, only: Sequence[str], show_progress: bool) -> dict[str, object]:
    from bench.peers._engine import Engine
    from bench.peers._machine import describe
    from bench.peers._progress import Progress
    from bench.peers._report import to_json
    from bench.peers._subjects import all_subjects

    subjects = [s for s in all_subjects() if not only or s.name in only]
    progress = Progress(enabled=show_progress)
    engine = Engine(config, progress, [s.name for s in subjects])
    meta = describe(subjects)
    progress.note(f"bench.peers ({config.mode}): {', '.join(s.name for s in subjects)}")
    t0 = time.perf_counter()
    table = engine.run()
    meta["wall_seconds"] = round(time.perf_counter() - t0, 1)
    meta["unavailable"] = engine.unavailable
    meta["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    progress.note(f"done in {meta['wall_seconds']} s")
    return to_json(meta, config, table, engine.floor)
