"""PoolConfig: every option validated, every error names the option, the value and what is allowed."""

from __future__ import annotations

from typing import Any

import pytest

import snakepit
from snakepit.config import PoolConfig

A = "snakepit.examples.showcase:Showcase"


class TestPoolConfig:
    @pytest.mark.parametrize(
        ("option", "value", "allowed"),
        [
            ("size", 0, "an integer >= 1"),
            ("size", 2.5, "an integer >= 1"),
            ("size", True, "an integer >= 1"),
            ("max_queue", -1, "an integer >= 0"),
            ("queue_timeout", 0, "a finite number > 0 or None"),
            ("timeout", -1.0, "a finite number > 0 or None"),
            ("timeout", float("inf"), "a finite number > 0 or None"),
            ("affinity", "sticky", "one of 'hint', 'strict_queue', 'strict_fail_fast'"),
            ("transport", "udp", "one of 'local', 'grpc', 'unix', 'tcp'"),
            ("serialization", "yaml", "one of 'json', 'pickle'"),
            ("max_requests", 0, "an integer >= 1 or None"),
            ("memory_limit_mb", -5, "a finite number > 0 or None"),
            ("env", {"A": 1}, "a mapping of str to str"),
            ("max_concurrency", 0, "an integer >= 1"),
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
        with pytest.raises(ValueError, match="timeout must be"):
            pool._deadline(-1)
