"""What a worker process prints, made safe to log: escaped, bounded, grouped into whole records."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Callable

__all__ = ["LINE_SHOWN", "forward_output", "printable", "printable_lines", "shown", "whole_records"]

_CHUNK = 64 * 1024
LINE_SHOWN = 4000
_TRACEBACK = "Traceback (most recent call last):"


def printable(text: str) -> str:
    """``text`` with every non-printable character escaped (``\\x1b``, ``\\n``, ``\\u2028``...),
    so what a worker prints cannot move the cursor, recolour a terminal or start a fake
    log record."""
    if text.isprintable():
        return text
    return "".join(
        ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text
    )


def printable_lines(text: str) -> str:
    """``text`` line by line through :func:`printable`: its line breaks stay, nothing else."""
    return "\n".join(printable(line) for line in text.splitlines())


def shown(raw: bytes) -> str:
    """A line a process printed, as the host shows it: bounded, control characters escaped."""
    line = raw.decode(errors="replace").rstrip()
    more = len(line) - LINE_SHOWN
    if more > 0:
        return printable(line[:LINE_SHOWN]) + f"... [{more} more chars]"
    return printable(line)


def whole_records(lines: list[str]) -> list[list[str]]:
    """Group lines a worker printed into the records they belong to, so a log record and
    its traceback arrive as one host record, not as a line ending in a colon followed by
    loose lines. A line joins the record before it when it is indented, when it starts
    a traceback, or when it ends one (the exception line after the indented frames)."""
    records: list[list[str]] = []
    in_traceback = False
    for line in lines:
        joins = bool(records) and (
            line[:1] in (" ", "\t") or line == _TRACEBACK or (in_traceback and line != "")
        )
        if joins:
            records[-1].append(line)
            if line == _TRACEBACK:
                in_traceback = True
            elif in_traceback and line[:1] not in (" ", "\t"):
                in_traceback = False  # "ValueError: ...": the traceback's last line
        else:
            records.append([line])
            in_traceback = line == _TRACEBACK
    return records


async def forward_output(stream: asyncio.StreamReader, emit: Callable[[list[str]], None]) -> None:
    """Hand everything ``stream`` carries to ``emit``, record by record (:func:`whole_records`,
    each line :func:`shown`), until its end; however long a line is.

    Reads in chunks, never ``readline``, which fails on a line over 64 KiB and would leave
    the pipe unread and the process blocked on its next write; a line longer than a chunk
    is passed on in pieces marked ``[line continues]``.
    """
    pending = b""
    while chunk := await stream.read(_CHUNK):
        *lines, pending = (pending + chunk).split(b"\n")
        for record in whole_records([shown(raw) for raw in lines]):
            emit(record)
        if len(pending) > _CHUNK:  # an endless line: pass on what we have so far
            emit([shown(pending) + " [line continues]"])
            pending = b""
    if pending:
        emit([shown(pending)])
