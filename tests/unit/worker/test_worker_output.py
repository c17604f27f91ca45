"""What a worker prints, as the host logs it, without a worker: control characters escaped,
log records kept whole with their tracebacks, exit codes in words."""

from __future__ import annotations

import pytest

from snakepit.worker._handle import exit_description, printable
from snakepit.worker._stderr import printable_lines, whole_records


class TestPrintable:
    @pytest.mark.parametrize(
        ("text", "shown"),
        [
            ("plain text, ünïcode too", "plain text, ünïcode too"),
            ("\x1b[31mred\x1b[0m", "\\x1b[31mred\\x1b[0m"),
            ("a\nERROR fake record", "a\\nERROR fake record"),
            ("tab\there", "tab\\there"),
            ("line\u2028separator", "line\\u2028separator"),
            ("nul\x00byte\r", "nul\\x00byte\\r"),
        ],
    )
    def test_every_non_printable_character_is_escaped(self, text: str, shown: str) -> None:
        assert printable(text) == shown

    def test_printable_text_is_returned_as_it_is(self) -> None:
        text = "nothing to escape"
        assert printable(text) is text

    def test_lines_keep_their_breaks_and_nothing_else(self) -> None:
        assert printable_lines("one\x1b\ntwo\r\nthree") == "one\\x1b\ntwo\nthree"


class TestWholeRecords:
    def test_each_unindented_line_is_a_record(self) -> None:
        assert whole_records(["a", "b", ""]) == [["a"], ["b"], [""]]

    def test_a_record_keeps_its_traceback_up_to_the_exception_line(self) -> None:
        lines = [
            "ERROR tool failed:",
            "Traceback (most recent call last):",
            '  File "tools.py", line 3, in f',
            "    raise ValueError('x')",
            "ValueError: x",
            "next record",
        ]
        assert whole_records(lines) == [lines[:5], ["next record"]]

    def test_indented_lines_join_the_record_before_them(self) -> None:
        assert whole_records(["head", "  more", "\tand more", "tail"]) == [
            ["head", "  more", "\tand more"],
            ["tail"],
        ]

    def test_a_traceback_on_its_own_starts_a_record_and_a_blank_line_ends_it(self) -> None:
        lines = ["Traceback (most recent call last):", "  frame", "KeyError: 'k'", "", "after"]
        assert whole_records(lines) == [lines[:3], [""], ["after"]]

    def test_an_indented_first_line_is_a_record_of_its_own(self) -> None:
        assert whole_records(["  orphan", "x"]) == [["  orphan"], ["x"]]


class TestExitDescription:
    @pytest.mark.parametrize(
        ("code", "exited", "words"),
        [
            (0, True, "exit code 0"),
            (3, True, "exit code 3"),
            (-9, True, "killed by SIGKILL"),
            (-15, True, "killed by SIGTERM"),
            (-200, True, "killed by signal 200"),
            (None, True, "exit code unknown (its fork server had died)"),
            (None, False, "still running"),
        ],
    )
    def test_an_exit_in_words(self, code: int | None, exited: bool, words: str) -> None:
        assert exit_description(code, exited=exited) == words
