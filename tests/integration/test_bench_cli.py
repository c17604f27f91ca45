"""`snakepit bench`: a real pool of the user's adapter, measured for a tiny budget; bad input
gives a typed error that names the option and the fix."""

from __future__ import annotations

import json

import pytest

from snakepit._bench import SHOWCASE, bench
from snakepit.cli import main
from snakepit.errors import InvalidValueError


class TestBenchCommand:
    def test_reports_latency_and_throughput_of_a_real_pool(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """--json: every figure of the report, measured on real workers (no speed asserted)."""
        assert main(["bench", "--size", "1", "--seconds", "0.1", "--json"]) == 0
        report = json.loads(capsys.readouterr().out)
        assert report["adapter"] == SHOWCASE and report["tool"] == "ping"
        assert report["size"] == 1 and report["transport"] == "local"
        assert report["concurrency"] == 2  # twice --size by default
        assert report["latency_calls"] >= 1 and report["throughput_calls"] >= 1
        assert 0 < report["p50_s"] <= report["p99_s"]
        assert report["start_s"] > 0 and report["throughput_s"] > 0
        assert report["calls_per_s"] == pytest.approx(
            report["throughput_calls"] / report["throughput_s"]
        )

    def test_calls_the_named_tool_with_its_arguments_over_grpc(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        argv = ["bench", "--tool", "add", "--args", '{"a": 1, "b": 2}', "--transport", "grpc"]
        argv += ["--size", "1", "--seconds", "0.1", "--concurrency", "3"]
        assert main(argv) == 0
        out = capsys.readouterr().out
        assert f"{SHOWCASE}, tool 'add', 1 worker(s), grpc transport" in out
        assert "p50" in out and "p99" in out and "calls/s" in out and "3 in flight" in out

    @pytest.mark.parametrize(
        ("option", "value", "message"),
        [
            ("--args", "{not json", "--args must be a JSON object of the tool's keyword"),
            ("--args", "[1, 2]", "is a JSON list"),
            ("--seconds", "0", "--seconds must be a positive number of seconds"),
            ("--seconds", "nan", "--seconds must be a positive number of seconds"),
            ("--concurrency", "0", "--concurrency must be an integer >= 1"),
            ("--adapter", "mytools.TextTools", "'pkg.module:Class'"),
            ("--transport", "pigeon", "transport='pigeon': must be one of 'local', 'grpc'"),
            ("--size", "0", "size=0: must be an integer from 1"),
        ],
    )
    def test_bad_input_is_a_usage_error_that_says_what_to_give(
        self, option: str, value: str, message: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        assert main(["bench", option, value]) == 2
        captured = capsys.readouterr()
        assert captured.err.startswith("snakepit bench: ") and message in captured.err
        assert captured.out == ""

    def test_an_unknown_tool_names_the_tools_there_are(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        assert main(["bench", "--tool", "nope", "--size", "1", "--seconds", "0.1"]) == 2
        err = capsys.readouterr().err
        assert "has no tool 'nope'; available:" in err and "ping" in err

    def test_a_failing_tool_stops_the_run_with_its_error(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        argv = ["bench", "--tool", "fail", "--args", '{"message": "boom"}', "--size", "1"]
        assert main(argv) == 1
        assert "tool 'fail' raised ValueError: boom" in capsys.readouterr().err

    async def test_the_coroutine_raises_typed_errors_before_starting_a_pool(self) -> None:
        with pytest.raises(InvalidValueError, match="--seconds") as info:
            await bench(seconds=-1)
        assert info.value.argument == "seconds"
        with pytest.raises(InvalidValueError, match="--concurrency"):
            await bench(concurrency=True)  # type: ignore[arg-type]
