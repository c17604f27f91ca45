"""String patterns in linear time: the same answers as ``re``, without its backtracking."""

from __future__ import annotations

import random
import re
import time

import pytest

from snakepit.bridge import get_type
from snakepit.bridge._pattern import (
    MATCH_BUDGET,
    MAX_MATCHED_LENGTH,
    MAX_PATTERN,
    PatternTooCostly,
    SafePattern,
    UnsupportedPattern,
)
from snakepit.errors import VariableValidationError

SEED = 20240613
_ATOMS = [
    "a", "b", ".", r"\d", r"\w", r"\s", r"\D", r"\W", r"\S", "[a-c]", "[^a]", r"[\d_]",
    r"[^\w\n]", "é", r"\.", "[.-]",
]  # fmt: skip
_QUANTIFIERS = ["*", "+", "?", "*?", "+?", "??", "{2}", "{0,2}", "{1,3}", "{2,}", "{,2}"]
_ALPHABETS = [
    ["a", "b", "a", "c"],
    ["a", "b", "\n", "é", "٣", "\u2003", "_", "1", " ", "-", "."],  # ٣: an Arabic-Indic digit
]


def _atom(r: random.Random, depth: int) -> str:
    roll = r.random()
    if depth > 2 or roll < 0.45:
        return r.choice(_ATOMS)
    if roll < 0.65:
        return "(" + r.choice(["", "?:"]) + _expr(r, depth + 1) + ")"
    return "(?:" + _atom(r, depth + 1) + ")" + r.choice(_QUANTIFIERS)


def _expr(r: random.Random, depth: int) -> str:
    return "|".join(
        "".join(_atom(r, depth) for _ in range(r.randint(1, 4)))
        for _ in range(r.randint(1, 2 if depth else 3))
    )


def _pattern(r: random.Random) -> str:
    pattern = _expr(r, 0)
    if r.random() < 0.2:
        pattern = r.choice(["^", r"\A"]) + f"(?:{pattern})"
    if r.random() < 0.2:
        pattern = f"(?:{pattern})" + r.choice(["$", r"\Z"])
    if r.random() < 0.2:
        pattern = r.choice(["(?s)", "(?a)", "(?m)", "(?x)"]) + pattern
    return pattern


class TestSameAnswersAsRe:
    def test_random_patterns_agree_with_re_fullmatch(self) -> None:
        """Seeded random patterns over classes, categories, repeats, groups, alternation,
        edge anchors and flags give re.fullmatch's answer on Unicode and ASCII strings."""
        r = random.Random(SEED)
        checked = matched = 0
        for _ in range(300):
            pattern = _pattern(r)
            compiled = re.compile(pattern)
            safe = SafePattern(pattern)
            for _ in range(12):
                alphabet = r.choice(_ALPHABETS)
                text = "".join(r.choice(alphabet) for _ in range(r.randint(0, 8)))
                expected = compiled.fullmatch(text) is not None
                assert safe.fullmatch(text) is expected, (SEED, pattern, text)
                checked += 1
                matched += expected
        assert checked == 3600 and matched > 150  # the strings do exercise matches

    @pytest.mark.parametrize(
        ("pattern", "text", "expected"),
        [
            (r"[a-z]+(?:\.[a-z]+)*", "numpy.linalg", True),
            (r"^\d{3}-\d{4}$", "555-1234", True),
            (r"^\d{3}-\d{4}$", "555-1234\n", False),  # a full match has no trailing newline
            (r"\d+", "٣٤", True),  # Unicode digits, as in re
            (r"(?a)\d+", "٣٤", False),
            (r"(?s).", "\n", True),
            (r".", "\n", False),
            (r"a{2,3}", "aaaa", False),
            (r"", "", True),
        ],
    )
    def test_known_answers(self, pattern: str, text: str, expected: bool) -> None:
        assert (re.fullmatch(pattern, text) is not None) is expected
        assert SafePattern(pattern).fullmatch(text) is expected


class TestBounded:
    @pytest.mark.parametrize("pattern", [r"(a+)+$", r"(a|a)*$", r"(a|aa)+$", r"(\w+\s?)+$"])
    def test_catastrophic_patterns_answer_at_once(self, pattern: str) -> None:
        """Patterns that make re backtrack exponentially (26 chars: seconds with re) answer
        in linear time, through the variable type that once ran re on the host's loop."""
        vtype = get_type("string")
        checked = vtype.check_constraints({"pattern": pattern}, variable="v")
        for text in ("a" * 26 + "!", "a" * 20_000 + "!"):
            started = time.perf_counter()
            with pytest.raises(VariableValidationError) as info:
                vtype.validate("v", text, checked)
            assert (info.value.variable, info.value.constraint) == ("v", "pattern")
            assert time.perf_counter() - started < 1.0  # re: ~2**26 steps for the first

    def test_a_value_that_would_build_too_much_is_refused_typed(self) -> None:
        """New characters build new transitions; past the budget the value is refused."""
        vtype = get_type("string")
        checked = vtype.check_constraints({"pattern": r"(?s).*"}, variable="v")
        distinct = "".join(chr(c) for c in range(0x4E00, 0x4E00 + MATCH_BUDGET // 10))
        with pytest.raises(VariableValidationError, match="cannot be checked") as info:
            vtype.validate("v", distinct, checked)
        assert info.value.constraint == "pattern"
        with pytest.raises(PatternTooCostly):
            SafePattern(r"(?s).*").fullmatch(distinct)
        assert vtype.validate("v", "ok", checked) == "ok"

    def test_a_value_too_long_to_check_on_the_loop_is_refused_typed(self) -> None:
        """A value past MAX_MATCHED_LENGTH is refused before any matching: even a linear
        match of 30 MB would hold the host's loop for seconds."""
        vtype = get_type("string")
        checked = vtype.check_constraints({"pattern": "[a-z]*"}, variable="v")
        with pytest.raises(VariableValidationError, match="longer than") as info:
            vtype.validate("v", "a" * (MAX_MATCHED_LENGTH + 1), checked)
        assert info.value.constraint == "pattern"
        assert vtype.validate("v", "a" * MAX_MATCHED_LENGTH, checked) == "a" * MAX_MATCHED_LENGTH


class TestRefused:
    @pytest.mark.parametrize(
        ("pattern", "reason"),
        [
            (r"(a)\1", "backreferences"),
            (r"(?=a)a", "lookahead"),
            (r"(?<!a)b", "lookbehind"),
            (r"(a)?(?(1)b|c)", "conditionals"),
            (r"(?>a+)b", "atomic"),
            (r"a++", "possessive"),
            (r"\bword\b", "boundaries"),
            (r"a^b", "anchors"),
            (r"(?i)abc", "case-insensitive"),
            (r"a(?i:b)", "case-insensitive"),
            (r"a{1000}", "states"),
            ("a" * (MAX_PATTERN + 1), "longer than"),
            ("(" * 600 + ")" * 600, "longer than"),
            (r"(", "not a valid regular expression"),
        ],
    )
    def test_unsupported_patterns_are_refused_at_registration(
        self, pattern: str, reason: str
    ) -> None:
        """What needs backtracking is an invalid constraint naming the variable and why."""
        with pytest.raises(VariableValidationError, match=reason) as info:
            get_type("string").check_constraints({"pattern": pattern}, variable="code")
        assert (info.value.variable, info.value.constraint) == ("code", "pattern")
        with pytest.raises(UnsupportedPattern):
            SafePattern(pattern)

    def test_deeply_nested_groups_are_refused_not_a_recursion_error(self) -> None:
        """Nesting that exhausts the parser's stack is an invalid constraint, not RecursionError."""
        pattern = "(" * 499 + "a" + ")" * 499
        with pytest.raises(VariableValidationError, match="too deeply"):
            get_type("string").check_constraints({"pattern": pattern}, variable="code")
