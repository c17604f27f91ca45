"""numpy arrays and scalars between host and real workers, in the default (JSON) codec."""

from __future__ import annotations

import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

import snakepit
from snakepit.testing import isolated_pool

if TYPE_CHECKING:
    from pathlib import Path

np = pytest.importorskip("numpy")

_TOOLS = """
import numpy as np
from snakepit.adapter import Adapter, tool


class Arrays(Adapter):
    @tool
    def describe(self, a):
        return {"type": type(a).__name__, "dtype": a.dtype.str, "shape": list(a.shape)}

    @tool
    def scale(self, a, by):
        return a * by

    @tool
    def stats(self, a):
        return {"mean": a.mean(), "argmax": a.argmax(), "copy": a.astype(np.float32)}

    @tool
    def objects(self):
        return np.array([{"not": "raw data"}], dtype=object)

    @tool
    def chunks(self, n):
        for i in range(n):
            yield np.full((2, 2), i, dtype=np.int16)
"""


async def test_arrays_and_scalars_cross_both_ways_without_pickle(tmp_path: Path) -> None:
    """The worker sees an ndarray with the host's dtype and shape; what it returns (arrays,
    numpy scalars, stream chunks) arrives as numpy values of the same dtype and shape."""
    (tmp_path / "arraytools.py").write_text(_TOOLS)
    async with isolated_pool("arraytools:Arrays", cwd=str(tmp_path)) as pool:
        assert pool.config.serialization == "json"
        matrix = np.arange(12, dtype=">f4").reshape(3, 4)
        assert await pool.execute("describe", {"a": matrix}) == {
            "type": "ndarray",
            "dtype": ">f4",
            "shape": [3, 4],
        }
        scaled = await pool.execute("scale", {"a": matrix, "by": np.int64(2)})
        assert isinstance(scaled, np.ndarray) and scaled.shape == (3, 4)
        assert scaled.tolist() == (matrix * 2).tolist()
        stats = await pool.execute("stats", {"a": np.array([1.0, 5.0, 3.0])})
        assert type(stats["mean"]) is np.float64 and stats["mean"] == 3.0
        assert type(stats["argmax"]) is np.int64 and stats["argmax"] == 1
        assert stats["copy"].dtype == np.float32
        chunks = [c async for c in pool.stream("chunks", {"n": 3})]
        assert [c[0, 0] for c in chunks] == [0, 1, 2] and chunks[2].dtype == np.int16


async def test_an_object_array_is_a_serialization_error_and_the_worker_stays(
    tmp_path: Path,
) -> None:
    (tmp_path / "arraytools.py").write_text(_TOOLS)
    async with isolated_pool("arraytools:Arrays", cwd=str(tmp_path)) as pool:
        with pytest.raises(snakepit.SerializationError, match="dtype object"):
            await pool.execute("describe", {"a": np.array([None, 1], dtype=object)})
        with pytest.raises(snakepit.SerializationError, match="result of tool 'objects'"):
            await pool.execute("objects")
        assert (await pool.execute("describe", {"a": np.zeros(2)}))["shape"] == [2]
        assert len(pool.workers()) == 1


def test_plain_values_never_import_numpy() -> None:
    """It costs nothing when off: encoding and decoding every other kind of value (and
    refusing an unknown type) leaves numpy unloaded."""
    code = (
        "import sys, math, snakepit\n"
        "from snakepit.codec import encode, decode\n"
        "v = {'a': [1, 2.5, math.nan, b'x', bytearray(b'y'), None, 'z'], '\\x00n': 1}\n"
        "assert decode(*encode(v))['\\x00n'] == 1\n"
        "try:\n    encode({1, 2})\nexcept snakepit.SerializationError:\n    pass\n"
        "print('numpy' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
