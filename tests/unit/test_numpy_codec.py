"""numpy values in the default codec: dtype, shape and raw buffer, no pickle, no eager import."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from snakepit.codec import decode, encode, validate
from snakepit.errors import SerializationError

np = pytest.importorskip("numpy")


def roundtrip(value: Any) -> Any:
    document, blobs = encode(value)
    return decode(document, blobs)


def _same(a: Any, b: Any) -> bool:
    """Same type, dtype (byte order included), shape and bits (NaN and NaT included)."""
    return (
        type(a) is type(b)
        and a.dtype.str == b.dtype.str
        and a.shape == b.shape
        and a.tobytes() == b.tobytes()
    )


ARRAYS = [
    np.arange(6.0).reshape(2, 3),
    np.array([np.nan, np.inf, -0.0], dtype=np.float32),
    np.zeros((0, 3), dtype=np.int32),
    np.array(7),  # a 0-d array stays an array, not a scalar
    np.asfortranarray(np.arange(12).reshape(3, 4)),
    np.arange(20)[::3],  # not contiguous
    np.array([1 + 2j, -3j]),
    np.array(["snake", "pit"]),
    np.array([b"a", b"bc"]),
    np.array([True, False]),
    np.arange(4, dtype=np.uint8),  # a byte buffer, but it comes back an array, not bytes
    np.array(["2024-01-02", "NaT"], dtype="datetime64[D]"),
    np.arange(3, dtype=">i4"),  # big-endian keeps its byte order
]

SCALARS = [
    np.float64(1.5),
    np.float32(-2.25),
    np.int8(-3),
    np.uint64(2**64 - 1),
    np.bool_(True),
    np.complex64(1 - 1j),
    np.datetime64("2020-02-29T12:00"),
    np.str_("text"),
]


class TestNumpyRoundTrip:
    @pytest.mark.parametrize("value", ARRAYS, ids=lambda v: f"{v.dtype}-{v.shape}")
    def test_arrays_come_back_with_dtype_shape_and_values(self, value: Any) -> None:
        back = roundtrip(value)
        assert _same(back, value)

    @pytest.mark.parametrize("value", SCALARS, ids=lambda v: type(v).__name__)
    def test_scalars_come_back_as_the_same_numpy_type(self, value: Any) -> None:
        back = roundtrip(value)
        assert type(back) is type(value) and back == value

    def test_arrays_arrive_writable_and_nested_values_keep_their_place(self) -> None:
        value = {"x": [np.arange(3.0), {"n": np.int16(4)}], "raw": b"\x00"}
        back = roundtrip(value)
        back["x"][0] += 1
        assert back["x"][0].tolist() == [1.0, 2.0, 3.0]
        assert type(back["x"][1]["n"]) is np.int16 and back["raw"] == b"\x00"

    def test_the_buffer_travels_as_a_blob_not_in_the_document(self) -> None:
        """So a transport that moves large blobs out of band carries arrays too."""
        document, blobs = encode(np.ones(100_000))
        assert len(document) < 100 and blobs == [np.ones(100_000).tobytes()]
        assert b'"\\u0000n":{"dtype":"<f8","shape":[100000],"blob":0}' in document


class TestNumpyRefusals:
    @pytest.mark.parametrize(
        "value",
        [np.array([object()]), np.array([(1, 2.0)], dtype=[("a", "i4"), ("b", "f8")])],
        ids=["object", "structured"],
    )
    def test_object_and_structured_dtypes_are_a_serialization_error_naming_the_path(
        self, value: Any
    ) -> None:
        with pytest.raises(
            SerializationError, match=r"args\['x'\]\[0\]: a numpy ndarray of dtype"
        ) as info:
            validate({"x": [value]}, what="args")
        assert "value.tolist()" in str(info.value) and info.value.path == "args['x'][0]"

    def test_a_subclass_of_a_numpy_type_from_elsewhere_is_refused(self) -> None:
        masked = np.ma.masked_array([1, 2], mask=[0, 1])
        with pytest.raises(SerializationError, match=r"numpy\.ma\.MaskedArray"):
            encode(masked)

    @pytest.mark.parametrize(
        ("document", "blobs", "problem"),
        [
            (b'{"\\u0000n":{"dtype":"<f8","shape":[2],"blob":3}}', [b""], "bad blob reference 3"),
            (
                b'{"\\u0000n":{"dtype":"<f8","shape":[2],"blob":0}}',
                [b"\x00" * 8],
                "bad numpy marker",
            ),
            (
                b'{"\\u0000n":{"dtype":"|O","shape":[1],"blob":0}}',
                [b"\x00" * 8],
                "bad numpy marker",
            ),
            (b'{"\\u0000n":{"dtype":"nope","shape":[1],"blob":0}}', [b"\x00"], "bad numpy marker"),
            (
                b'{"\\u0000n":{"dtype":"<f8","shape":[-1],"blob":0}}',
                [b"\x00" * 8],
                "bad numpy marker",
            ),
            (
                b'{"\\u0000n":{"dtype":"<f8","shape":null,"blob":0}}',
                [b"\x00" * 16],
                "bad numpy marker",
            ),
            (b'{"\\u0000n":[1,2]}', [], "bad numpy marker"),
        ],
    )
    def test_malformed_markers_are_typed_errors(
        self, document: bytes, blobs: list[bytes], problem: str
    ) -> None:
        with pytest.raises(SerializationError, match="malformed payload for result") as info:
            decode(document, blobs, what="result")
        assert problem in str(info.value)

    def test_without_numpy_on_the_receiving_side_the_error_says_to_install_it(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        document, blobs = encode([np.arange(2)])
        monkeypatch.setitem(sys.modules, "numpy", None)  # import numpy now fails
        with pytest.raises(
            SerializationError, match=r"numpy is not installed in this process"
        ) as info:
            decode(document, blobs, what="result of tool 'f'")
        assert "pysnakepit[numpy]" in str(info.value) and "result of tool 'f'" in str(info.value)
