"""Full-match regular expressions in linear time, for the ``pattern`` constraint of variables.

Python's ``re`` backtracks: ``(a+)+$`` against 24 ``a`` and a ``!`` takes half a
second and doubles with each character, and a thread cannot bound it (``re``
holds the GIL and cannot be interrupted). Patterns come from worker code and
run on the host's event loop, so they are checked here instead, by an engine
whose cost is linear in the value however the pattern is written.

``re``'s own parser reads the pattern, so syntax and character classes mean
exactly what they mean to ``re``. The pattern becomes a position automaton
(Glushkov: one state per character the pattern can match, no epsilon moves),
simulated on the set of active states and cached as a DFA built lazily, one
transition at a time. Each character then costs one dict lookup once the
transition is known, and computing a new one tests at most every state once.

What needs more than a finite automaton is refused when the variable is
registered: backreferences, lookahead/lookbehind, conditionals, atomic groups
and possessive repeats, ``\\b``/``\\B``, anchors anywhere but at the start or
the end (where a full match makes them no-ops), and case-insensitive matching.

Bounds: a pattern of at most :data:`MAX_PATTERN` characters and
:data:`MAX_POSITIONS` states once counted repeats are expanded; building new
transitions while matching one value may cost at most :data:`MATCH_BUDGET`
state tests, a new transition counting as ten (some 30 ms of work at most; a
value that needs more is refused, typed, rather than checked slowly); the DFA
cache of a pattern is dropped when it passes
:data:`MAX_CACHED` transitions.
"""

from __future__ import annotations

import functools
import importlib
import itertools
import re
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

# re's own parser (private, stable since 3.11), so patterns mean exactly what they mean to re.
sre: Any = importlib.import_module("re._constants")
sre_parse: Any = importlib.import_module("re._parser")

__all__ = [
    "MATCH_BUDGET",
    "MAX_CACHED",
    "MAX_MATCHED_LENGTH",
    "MAX_PATTERN",
    "MAX_POSITIONS",
    "PatternTooCostly",
    "SafePattern",
    "UnsupportedPattern",
    "compile_pattern",
]

MAX_PATTERN = 1000
MAX_POSITIONS = 500
MATCH_BUDGET = 200_000
#: The longest value a pattern is checked against (~100 ns a character on the host's loop,
#: so at most ~25 ms); a longer one is refused, not matched.
MAX_MATCHED_LENGTH = 256 * 1024
MAX_CACHED = 10_000
# A new transition costs about as much as this many state tests (a set, a lookup, a row).
_MISS_COST = 10

_Fragment = tuple[bool, frozenset[int], frozenset[int]]  # nullable, first, last

_ASCII_SPACE = frozenset(" \t\n\r\f\v")


class UnsupportedPattern(ValueError):
    """Raised when a pattern uses what a linear-time matcher cannot do (or is too big)."""


class PatternTooCostly(ValueError):
    """Raised when matching one value would build more of the automaton than the budget."""


def _category(category: Any, ascii_only: bool) -> Callable[[str], bool]:
    name = str(category)
    negate = "_NOT_" in name
    if name.endswith("DIGIT"):
        test: Callable[[str], bool] = (
            (lambda ch: "0" <= ch <= "9") if ascii_only else (lambda ch: ch.isdecimal())
        )
    elif name.endswith("SPACE"):
        test = (lambda ch: ch in _ASCII_SPACE) if ascii_only else (lambda ch: ch.isspace())
    elif name.endswith("WORD"):
        if ascii_only:
            test = lambda ch: ch.isascii() and (ch.isalnum() or ch == "_")  # noqa: E731
        else:
            test = lambda ch: ch.isalnum() or ch == "_"  # noqa: E731
    else:
        raise UnsupportedPattern(f"the character category {name} is not supported")
    if negate:
        return lambda ch: not test(ch)
    return test


def _char_class(items: Sequence[tuple[Any, Any]], ascii_only: bool) -> Callable[[str], bool]:
    negate = False
    chars: set[str] = set()
    ranges: list[tuple[int, int]] = []
    categories: list[Callable[[str], bool]] = []
    for op, arg in items:
        if op is sre.NEGATE:
            negate = True
        elif op is sre.LITERAL:
            chars.add(chr(arg))
        elif op is sre.RANGE:
            ranges.append((arg[0], arg[1]))
        elif op is sre.CATEGORY:
            categories.append(_category(arg, ascii_only))
        else:
            raise UnsupportedPattern(f"{op} inside a character class is not supported")
    literal = frozenset(chars)
    spans = tuple(ranges)
    tests = tuple(categories)

    def test(ch: str) -> bool:
        if ch in literal:
            return not negate
        code = ord(ch)
        for lo, hi in spans:
            if lo <= code <= hi:
                return not negate
        for category in tests:
            if category(ch):
                return not negate
        return negate

    return test


def _consumes(items: Sequence[tuple[Any, Any]]) -> bool:
    """True when ``items`` can match at least one character somewhere (has positions)."""
    for op, arg in items:
        if op in (sre.LITERAL, sre.NOT_LITERAL, sre.ANY, sre.IN):
            return True
        if op is sre.BRANCH and any(_consumes(alt) for alt in arg[1]):
            return True
        if op is sre.SUBPATTERN and _consumes(arg[3]):
            return True
        if op in (sre.MAX_REPEAT, sre.MIN_REPEAT) and arg[1] > 0 and _consumes(arg[2]):
            return True
    return False


class _Builder:
    """Builds the position automaton: a test per position and the positions that may follow."""

    def __init__(self) -> None:
        self.tests: list[Callable[[str], bool]] = []
        self.follow: list[set[int]] = []

    def position(self, test: Callable[[str], bool]) -> _Fragment:
        if len(self.tests) >= MAX_POSITIONS:
            raise UnsupportedPattern(
                f"it needs more than {MAX_POSITIONS} states once its repeats are expanded; "
                "use smaller counts ({m,n}) or fewer alternatives"
            )
        self.tests.append(test)
        self.follow.append(set())
        p = frozenset({len(self.tests) - 1})
        return False, p, p

    def link(self, last: frozenset[int], first: frozenset[int]) -> None:
        for p in last:
            self.follow[p] |= first

    def sequence(
        self, items: Sequence[tuple[Any, Any]], flags: int, at_start: bool, at_end: bool
    ) -> _Fragment:
        consuming = [_consumes([item]) for item in items]
        first_consuming = consuming.index(True) if True in consuming else len(items)
        last_consuming = len(items) - 1 - consuming[::-1].index(True) if True in consuming else -1
        return self.concat(
            [
                self.node(
                    item, flags, at_start and i <= first_consuming, at_end and i >= last_consuming
                )
                for i, item in enumerate(items)
            ]
        )

    def node(self, item: tuple[Any, Any], flags: int, at_start: bool, at_end: bool) -> _Fragment:
        op, arg = item
        ascii_only = bool(flags & re.ASCII)
        if op is sre.LITERAL:
            char = chr(arg)
            return self.position(lambda ch: ch == char)
        if op is sre.NOT_LITERAL:
            char = chr(arg)
            return self.position(lambda ch: ch != char)
        if op is sre.ANY:
            if flags & re.DOTALL:
                return self.position(lambda ch: True)
            return self.position(lambda ch: ch != "\n")
        if op is sre.IN:
            return self.position(_char_class(arg, ascii_only))
        if op is sre.BRANCH:
            nullable, first, last = False, frozenset[int](), frozenset[int]()
            for alternative in arg[1]:
                n, f, lst = self.sequence(alternative, flags, at_start, at_end)
                nullable, first, last = nullable or n, first | f, last | lst
            return nullable, first, last
        if op is sre.SUBPATTERN:
            _group, add, remove, items = arg
            if add & re.IGNORECASE:
                raise _case_insensitive()
            return self.sequence(items, (flags | add) & ~remove, at_start, at_end)
        if op in (sre.MAX_REPEAT, sre.MIN_REPEAT):  # greedy or lazy: same full matches
            return self.repeat(arg, flags, at_start, at_end)
        if op is sre.AT:
            return self.anchor(arg, at_start, at_end)
        raise UnsupportedPattern(_UNSUPPORTED.get(str(op), f"{op} is not supported"))

    def anchor(self, where: Any, at_start: bool, at_end: bool) -> _Fragment:
        if where in (sre.AT_BEGINNING, sre.AT_BEGINNING_STRING) and at_start:
            return True, frozenset(), frozenset()
        if where in (sre.AT_END, sre.AT_END_STRING) and at_end:
            return True, frozenset(), frozenset()
        if where in (sre.AT_BOUNDARY, sre.AT_NON_BOUNDARY):
            raise UnsupportedPattern("word boundaries (\\b, \\B) are not supported")
        raise UnsupportedPattern(
            "anchors (^, $, \\A, \\Z) are only supported at the start or the end of the "
            "pattern, where the full match makes them optional"
        )

    def repeat(
        self, arg: tuple[int, int, Any], flags: int, at_start: bool, at_end: bool
    ) -> _Fragment:
        lo, hi, items = arg
        unbounded = hi is sre.MAXREPEAT or hi == sre.MAXREPEAT
        if not _consumes(items) or hi == 0:
            # Zero-width content: any number of copies matches what one copy (or none) does.
            if hi == 0:
                return True, frozenset(), frozenset()
            n, f, lst = self.sequence(items, flags, at_start, at_end)
            return n or lo == 0, f, lst
        once = hi == 1
        fragments: list[_Fragment] = []
        mandatory = max(lo, 1) if unbounded else lo
        for _ in range(mandatory):
            fragments.append(self.sequence(items, flags, at_start and once, at_end and once))
        if unbounded:
            n, f, lst = fragments[-1]
            self.link(lst, f)  # the last mandatory copy may repeat
            fragments[-1] = (n or lo == 0, f, lst)
            return self.concat(fragments)
        # lo..hi: the mandatory copies, then hi - lo copies where each may end the match.
        optional: list[_Fragment] = []
        for _ in range(hi - lo):
            optional.append(self.sequence(items, flags, at_start and once, at_end and once))
        if optional:
            for (_, _, a_last), (_, b_first, _) in itertools.pairwise(optional):
                self.link(a_last, b_first)
            chain_first = optional[0][1]
            chain_last = frozenset().union(*(frag[2] for frag in optional))
            fragments.append((True, chain_first, chain_last))
        return self.concat(fragments)

    def concat(self, fragments: Sequence[_Fragment]) -> _Fragment:
        nullable, first, last = True, frozenset[int](), frozenset[int]()
        for n, f, lst in fragments:
            self.link(last, f)
            if nullable:
                first |= f
            last = (last | lst) if n else lst
            nullable = nullable and n
        return nullable, first, last


_UNSUPPORTED = {
    "GROUPREF": "backreferences (\\1, (?P=name)) are not supported",
    "GROUPREF_EXISTS": "conditionals ((?(1)a|b)) are not supported",
    "ASSERT": "lookahead and lookbehind ((?=...), (?<=...)) are not supported",
    "ASSERT_NOT": "negative lookahead and lookbehind ((?!...), (?<!...)) are not supported",
    "ATOMIC_GROUP": "atomic groups ((?>...)) are not supported",
    "POSSESSIVE_REPEAT": "possessive repeats (*+, ++, ?+) are not supported",
}


def _case_insensitive() -> UnsupportedPattern:
    return UnsupportedPattern(
        "case-insensitive matching ((?i)) is not supported; spell the cases out, e.g. [Aa]"
    )


class SafePattern:
    """A compiled pattern that answers full-match questions in time linear in the value."""

    def __init__(self, pattern: str) -> None:
        if len(pattern) > MAX_PATTERN:
            raise UnsupportedPattern(f"it is longer than {MAX_PATTERN} characters")
        try:
            parsed = sre_parse.parse(pattern)
        except re.error as exc:
            raise UnsupportedPattern(f"it is not a valid regular expression ({exc})") from None
        except RecursionError:
            raise UnsupportedPattern("it nests groups too deeply") from None
        flags = parsed.state.flags
        if flags & re.IGNORECASE:
            raise _case_insensitive()
        builder = _Builder()
        try:
            nullable, first, last = builder.sequence(list(parsed), flags, True, True)
        except RecursionError:
            raise UnsupportedPattern("it nests groups too deeply") from None
        self.pattern = pattern
        self._lock = threading.Lock()
        self._tests = tuple(builder.tests)
        self._follow = tuple(frozenset(f) for f in builder.follow)
        self._last = last
        self._start = (first, nullable)
        self._reset()

    def _reset(self) -> None:
        # DFA state i: the candidates for the next character and whether the match may end.
        first, nullable = self._start
        self._candidates: list[tuple[int, ...]] = [tuple(sorted(first))]
        self._accepting: list[bool] = [nullable]
        self._rows: list[dict[str, int]] = [{}]
        self._ids: dict[frozenset[int], int] = {}
        self._cached = 0

    def _state(self, positions: frozenset[int]) -> int:
        state = self._ids.get(positions)
        if state is None:
            state = len(self._rows)
            self._ids[positions] = state
            candidates: set[int] = set()
            for p in positions:
                candidates |= self._follow[p]
            self._candidates.append(tuple(sorted(candidates)))
            self._accepting.append(not self._last.isdisjoint(positions))
            self._rows.append({})
        return state

    def fullmatch(self, text: str) -> bool:
        """True when the whole of ``text`` matches.

        Raises:
            PatternTooCostly: matching would build more than ``MATCH_BUDGET`` state tests,
                or ``text`` is longer than ``MAX_MATCHED_LENGTH``.
        """
        if len(text) > MAX_MATCHED_LENGTH:
            raise PatternTooCostly(
                f"a value of {len(text)} characters is longer than the {MAX_MATCHED_LENGTH} "
                "a pattern is checked against; keep pattern-checked strings shorter"
            )
        with self._lock:
            return self._fullmatch(text)

    def _fullmatch(self, text: str) -> bool:
        if self._cached > MAX_CACHED:
            self._reset()
        rows, candidates, tests = self._rows, self._candidates, self._tests
        budget = MATCH_BUDGET
        state = 0
        for ch in text:
            row = rows[state]
            nxt = row.get(ch)
            if nxt is None:
                options = candidates[state]
                budget -= len(options) + _MISS_COST
                if budget < 0:
                    raise PatternTooCostly(
                        f"checking a value of {len(text)} characters would take more than "
                        f"{MATCH_BUDGET} steps"
                    )
                matched = frozenset(q for q in options if tests[q](ch))
                nxt = self._state(matched) if matched else -1
                row[ch] = nxt
                self._cached += 1
            if nxt < 0:
                return False
            state = nxt
        return self._accepting[state]


@functools.lru_cache(maxsize=64)
def compile_pattern(pattern: str) -> SafePattern:
    """The :class:`SafePattern` for ``pattern`` (cached).

    Raises:
        UnsupportedPattern: the pattern is invalid, too big, or needs more than an automaton.
    """
    return SafePattern(pattern)
