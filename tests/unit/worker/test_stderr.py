"""worker/_stderr.py: what a worker or a fork server prints reaches the log whole, bounded and escaped."""

from __future__ import annotations

import asyncio

from snakepit.worker._stderr import LINE_SHOWN, forward_output, shown


async def forwarded(*chunks: bytes) -> list[list[str]]:
    """The records ``forward_output`` emits for a stream that carries ``chunks``, then ends."""
    stream = asyncio.StreamReader()
    for chunk in chunks:
        stream.feed_data(chunk)
    stream.feed_eof()
    records: list[list[str]] = []
    await forward_output(stream, records.append)
    return records


class TestForwardOutput:
    async def test_a_record_keeps_its_traceback(self) -> None:
        records = await forwarded(
            b"ERROR boom:\nTraceback (most recent call last):\n"
            b'  File "x.py", line 1, in <module>\nValueError: no\nnext\n',
        )
        assert records == [
            [
                "ERROR boom:",
                "Traceback (most recent call last):",
                '  File "x.py", line 1, in <module>',
                "ValueError: no",
            ],
            ["next"],
        ]

    async def test_a_last_line_without_a_newline_still_arrives(self) -> None:
        assert await forwarded(b"one\ntw", b"o") == [["one"], ["two"]]

    async def test_an_endless_line_arrives_in_marked_bounded_pieces(self) -> None:
        records = await forwarded(b"x" * (200 * 1024), b"\nafter\n")
        *pieces, last = records
        assert len(pieces) >= 2
        for piece in pieces[:-1]:
            assert piece[0].endswith(" more chars] [line continues]")
            assert len(piece[0]) < LINE_SHOWN + 60
        assert pieces[-1][0].endswith(" more chars]")  # the line's end, unmarked
        assert last == ["after"]

    async def test_control_characters_are_escaped(self) -> None:
        assert await forwarded(b"\x1b[31mred\x1b[0m\r\n") == [["\\x1b[31mred\\x1b[0m"]]


class TestShown:
    def test_bounds_a_long_line_and_says_how_much_is_left_out(self) -> None:
        line = shown(b"y" * (LINE_SHOWN + 5))
        assert line == "y" * LINE_SHOWN + "... [5 more chars]"

    def test_bad_utf8_is_replaced_not_raised(self) -> None:
        assert shown(b"caf\xe9 ok \n") == "caf\ufffd ok"
