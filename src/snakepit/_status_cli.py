"""``snakepit status``: this user's running pools on this machine, once or refreshed live."""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import TYPE_CHECKING, Any, TextIO

import psutil

if TYPE_CHECKING:
    import argparse

__all__ = ["add_status_parser", "render", "run_status"]


def add_status_parser(sub: Any) -> None:
    """Declare the ``status`` sub-command on ``sub`` (an argparse sub-parsers object)."""
    status = sub.add_parser(
        "status",
        help="list this user's running pools and their workers",
        description=(
            "List this user's running pools on this machine: each worker's state, pid, "
            "resident memory, requests served and the tools it is running now. Pools "
            "publish a status file while they run; those of dead processes are skipped."
        ),
    )
    status.add_argument(
        "--watch", action="store_true", help="refresh the view until interrupted (Ctrl-C)"
    )
    status.add_argument(
        "--interval",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="seconds between refreshes with --watch (default: 1)",
    )
    status.add_argument(
        "--count",
        type=int,
        default=None,
        metavar="N",
        help="with --watch, stop after N refreshes (default: until interrupted)",
    )
    status.add_argument(
        "--json", action="store_true", help="print the pools as JSON instead of a table"
    )


def _rss(pid: Any) -> str:
    if not isinstance(pid, int):
        return "-"
    try:
        rss = psutil.Process(pid).memory_info().rss
    except psutil.Error:
        return "-"
    return f"{rss / (1 << 20):.1f} MiB"


def render(pools: list[dict[str, Any]]) -> str:
    """The pools as a plain-text table, one block per pool."""
    if not pools:
        return "no running snakepit pools of this user on this machine\n"
    lines: list[str] = []
    now = time.time()
    for doc in pools:
        uptime = max(0.0, now - float(doc.get("started_at") or now))
        lines.append(
            f"pool {doc.get('pool')!s}  pid {doc.get('pid')}  {doc.get('state')}  "
            f"adapter {doc.get('adapter')!s}  up {uptime:.0f}s  queued {doc.get('queued')}  "
            f"requests {doc.get('requests')}  errors {doc.get('errors')}  "
            f"restarts {doc.get('restarts')}"
        )
        lines.append(f"  {'WORKER':<14} {'STATE':<9} {'PID':>8} {'RSS':>11} {'REQUESTS':>9}  TOOL")
        for w in doc.get("workers", []):
            if not isinstance(w, dict):
                continue
            given = w.get("tools")
            tools = given if isinstance(given, list) else []
            lines.append(
                f"  {w.get('id')!s:<14} {w.get('state')!s:<9} {w.get('pid')!s:>8} "
                f"{_rss(w.get('pid')):>11} {w.get('requests')!s:>9}  "
                f"{', '.join(map(str, tools)) or '-'}"
            )
        lines.append("")
    return "\n".join(lines)


def _show(args: argparse.Namespace, out: TextIO) -> None:
    from snakepit.pool._status import read_statuses

    pools = read_statuses()
    if args.json:
        for doc in pools:
            for w in doc.get("workers", []):
                if isinstance(w, dict):
                    pid = w.get("pid")
                    try:
                        w["rss"] = psutil.Process(pid).memory_info().rss if pid else None
                    except psutil.Error:
                        w["rss"] = None
        out.write(json.dumps(pools, indent=2) + "\n")
    else:
        out.write(render(pools))
    out.flush()


def run_status(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    """Print the status once, or every ``--interval`` seconds with ``--watch``."""
    if args.interval <= 0:
        print("snakepit status: --interval must be > 0", file=sys.stderr)
        return 2
    if not args.watch:
        _show(args, out)
        return 0
    stop = threading.Event()  # waited on with a timeout: the refresh period, not a sleep
    shown = 0
    try:
        while args.count is None or shown < args.count:
            if shown and out.isatty():
                out.write("\x1b[H\x1b[2J")
            _show(args, out)
            shown += 1
            if args.count is not None and shown >= args.count:
                break
            out.write(f"-- refreshed {time.strftime('%H:%M:%S')}, every {args.interval:g}s --\n")
            out.flush()
            stop.wait(args.interval)
    except KeyboardInterrupt:
        return 130
    return 0
