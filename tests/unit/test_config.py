"""PoolConfig: every option validated, every error names the option, the value and what is allowed."""

from __future__ import annotations

from typing import Any

import pytest

import snakepit
from snakepit.config import PoolConfig
from snakepit.pool._arguments import call_deadline

A = "snakepit.examples.showcase:Showcase"


class TestPoolConfig:
    @pytest.mark.parametrize(
        ("option", "value", "allowed"),
        [
            ("size", 0, "an integer from 1 to 65536"),
            ("size", 2.5, "an integer from 1 to 65536"),
            ("size", True, "an integer from 1 to 65536"),
            ("size", 65_537, "an integer from 1 to 65536"),
            ("threads", 10**6, "an integer from 1 to 65536"),
            ("max_message_mb", 2048, "an integer from 1 to 2047"),
            ("max_queue", -1, "an integer >= 0"),
            ("queue_timeout", 0, "a finite number > 0 or None"),
            ("timeout", -1.0, "a number > 0, math.inf or None"),
            ("timeout", float("nan"), "a number > 0, math.inf or None"),
            ("queue_timeout", float("inf"), "a finite number > 0 or None"),
            ("affinity", "sticky", "one of 'hint', 'strict_queue', 'strict_fail_fast'"),
            ("transport", "udp", "one of 'local', 'grpc', 'unix', 'tcp'"),
            ("start_method", "fork", "one of 'forkserver', 'spawn'"),
            ("serialization", "yaml", "one of 'json', 'pickle'"),
            ("max_requests", 0, "an integer >= 1 or None"),
            ("memory_limit_mb", -5, "a finite number > 0 or None"),
            ("env", {"A": 1}, "a mapping of str to str"),
            ("max_concurrency", 0, "an integer from 1 to 65536"),
            ("startup_timeout", None, "a finite number > 0"),
        ],
    )
    def test_invalid_option_names_option_value_and_rule(
        self, option: str, value: Any, allowed: str
    ) -> None:
        """An invalid option raises ValueError naming the option, its value and what is allowed."""
        with pytest.raises(ValueError, match="invalid Pool option") as info:
            snakepit.Pool(adapter=A, **{option: value})
        assert f"{option}={value!r}" in str(info.value)
        assert allowed in str(info.value)

    @pytest.mark.parametrize(
        "option", ["timeout", "session_ttl", "backoff_max", "python", "size", "threads"]
    )
    def test_unprintable_values_are_typed_errors(self, option: str) -> None:
        """10**5000 (no repr, no float) is an InvalidValueError naming the option: a
        SnakepitError that is still the documented ValueError. (A pool of 10**5000 slots
        was built eagerly: its constructor never returned.)"""
        value = 10**5000 if option != "python" else [10**5000]
        with pytest.raises(snakepit.InvalidValueError, match=f"option {option}=") as info:
            snakepit.Pool(adapter=A, **{option: value})
        assert isinstance(info.value, ValueError) and info.value.option == option
        assert len(str(info.value)) < 300

    def test_unknown_option_lists_the_allowed_ones(self) -> None:
        """A misspelt option is rejected and the valid names are listed."""
        with pytest.raises(ValueError, match=r"unknown Pool option\(s\) 'sise'.*size"):
            snakepit.Pool(adapter=A, sise=3)

    def test_adapter_is_required_and_checked(self) -> None:
        """A pool without an adapter, or with a malformed one, says what an adapter looks like."""
        with pytest.raises(ValueError, match="Pool needs an adapter"):
            snakepit.Pool(size=2)
        with pytest.raises(ValueError, match=r"'pkg\.module:Class'"):
            snakepit.Pool(adapter="just_a_module")

    def test_keywords_override_a_config(self) -> None:
        """Keyword options override the fields of a PoolConfig given positionally."""
        pool = snakepit.Pool(PoolConfig(adapter=A, size=3, timeout=9.0), size=5)
        assert (pool.config.size, pool.config.timeout) == (5, 9.0)

    def test_config_is_frozen(self) -> None:
        """A PoolConfig cannot be changed after it is built."""
        config = PoolConfig(adapter=A)
        with pytest.raises(AttributeError):
            config.size = 9  # type: ignore[misc]

    def test_per_call_timeout_is_checked(self) -> None:
        """A bad per-call timeout is rejected before anything is sent."""
        pool = snakepit.Pool(adapter=A)
        with pytest.raises(snakepit.InvalidValueError, match="timeout of 't' must be"):
            call_deadline(-1, pool.config.timeout, "t")


HOSTILE_NAMES = [
    "..",
    ".",
    "../../x",
    "/",
    "/tmp/x",
    "a/b",
    "a\\b",
    "a\x00b",
    "x" * 129,
    "x" * 1_000_000,
    "pööl",
    "池",
    "",
    " ",
    "a b",
    "a\nb",
    "\x1b[2J",
    "-rf",
    ".hidden",
]


class TestPoolName:
    @pytest.mark.parametrize("name", HOSTILE_NAMES, ids=lambda n: repr(n[:12]))
    def test_a_name_that_could_choose_a_path_is_refused(self, name: str) -> None:
        """A pool name that is not plain (separators, dots alone, NUL, non-ASCII, too long)
        is a ConfigError, which is a ValueError, naming the characters allowed; the message
        stays short whatever the name's length."""
        with pytest.raises(snakepit.ConfigError) as info:
            snakepit.Pool(adapter=A, name=name)
        err = info.value
        assert isinstance(err, ValueError) and isinstance(err, snakepit.SnakepitError)
        assert err.option == "name"
        assert "A-Z a-z 0-9 _ . : -" in str(err) and "starting with a letter or digit" in str(err)
        assert len(str(err)) < 400

    @pytest.mark.parametrize("name", ["p", "pool-1", "a.b:c_d-e", "9lives", "x" * 128])
    def test_plain_names_are_accepted(self, name: str) -> None:
        """Letters, digits and _ . : - (up to 128, starting with a letter or digit) are fine."""
        assert snakepit.Pool(adapter=A, name=name).name == name

    def test_every_option_error_is_typed_and_bounded(self) -> None:
        """Any invalid option is a ConfigError (still a ValueError); a huge value or option
        name is cut short in the message."""
        with pytest.raises(snakepit.ConfigError) as info:
            snakepit.Pool(adapter=A, python="")
        assert info.value.option == "python"
        with pytest.raises(snakepit.ConfigError) as info:
            snakepit.Pool(adapter=A, **{"o" * 1_000_000: 1})
        assert len(str(info.value)) < 1000
        with pytest.raises(snakepit.ConfigError, match="timeout") as info:
            snakepit.Pool(adapter=A, timeout=10**400)  # too large for a float: not finite
        assert len(str(info.value)) < 400
