"""Typed /predict decoders, compiled once per model from its signature (msgspec).

For a model whose inputs are all required double columns, `BodyDecoder` reads a body straight from
its bytes into the float64 matrix the model eats, in C: one msgspec decoder per accepted format
(`records`, `dataframe_records`, `dataframe_split`, `instances`, `inputs`, one record), each typed
from the column names, so that key checks, types and row widths are checked while decoding. It
accepts only bodies that are plainly valid: strict numbers (no booleans, strings, null, NaN or
Infinity), exactly the model's fields, rows of exactly its width, within the row limit, no inference
params. On anything else it answers None, and the data plane reads the body the general way
(`app.formats.payload`, `app.model.schema`), which gives today's answer and names what is wrong. So
this module changes how fast an answer comes, never what it is (tests/app/formats/test_decoders.py
sends the same bodies both ways).

Many records become the matrix through `PackedRows` (their MessagePack bytes, read by numpy),
not by iterating over their floats in Python.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable, Sequence
from itertools import chain
from operator import attrgetter
from typing import Any

import msgspec
import numpy as np

from app.formats.payload import Batch, Records, Rows

Decoded = tuple[np.ndarray, Batch]
# The body's first key picks the decoders to try (escaped or odd keys: the general path).
_FIRST_KEY = re.compile(rb'\s*\{\s*"([^"\\]{1,200})"')
_ROW_FORMATS = ("instances", "inputs")
_KEYS = frozenset({"records", "dataframe_records", "dataframe_split", *_ROW_FORMATS, "params"})
_UNNAMEABLE = re.compile(r'["\\\x00-\x1f]')  # msgspec cannot name such fields


def compile_decoder(names: tuple[str, ...], order: tuple[str, ...]) -> BodyDecoder | None:
    """The decoder for a model of required double columns `names` fitted in `order`, or None
    when a name is one msgspec cannot match (quotes, backslashes, control characters)."""
    if any(_UNNAMEABLE.search(name) for name in names):
        return None
    return BodyDecoder(order)


PACKED_FROM = 32
"""Rows from which `PackedRows` is faster than iterating (1 row: 1.9 against 0.6 us)."""


class PackedRows:
    """Decoded rows (msgspec structs of floats, all of one type; tuples would do too) -> their
    float64 matrix, through msgspec's MessagePack encoder: every float is encoded as a marker
    byte and its 8 big-endian bytes, so each row takes the same bytes at the same offsets, and
    numpy reads the floats from the encoded bytes in C: a fraction of the time of iterating over
    them in Python, and the same values, bit for bit.
    `layout` is None when a probe row does not come out as expected (then iterate)."""

    def __init__(self, dtype: np.dtype) -> None:
        self._dtype = dtype  # one row: its itemsize is the row's bytes, a field per float
        self._encode = msgspec.msgpack.Encoder().encode

    @classmethod
    def layout(cls, probe: Callable[[tuple[float, ...]], Any], width: int) -> PackedRows | None:
        """The layout of rows that `probe` makes from `width` floats, checked on a probe."""
        values = tuple(float(i + 1) for i in range(width))
        encoded = msgspec.msgpack.encode(probe(values))
        offsets = []
        for value in values:
            at = encoded.find(b"\xcb" + struct.pack(">d", value))
            if at < 0:
                return None
            offsets.append(at + 1)
        dtype = np.dtype(
            {
                "names": [f"f{i}" for i in range(width)],
                "formats": [">f8"] * width,
                "offsets": offsets,
                "itemsize": len(encoded),
            }
        )
        packed = cls(dtype)
        check = packed.matrix([probe(values), probe(values[::-1])])
        expected = np.array([values, values[::-1]], dtype=np.float64)
        return packed if check is not None and np.array_equal(check, expected) else None

    def matrix(self, rows: Sequence[Any]) -> np.ndarray | None:
        """The (len(rows), width) float64 matrix, or None if the bytes are not as laid out."""
        encoded = self._encode(rows)
        fields = self._dtype.names or ()
        head = len(encoded) - len(rows) * self._dtype.itemsize  # array header: 1, 3 or 5 bytes
        if head not in (1, 3, 5):
            return None
        packed = np.frombuffer(encoded, self._dtype, len(rows), head)
        matrix = np.empty((len(rows), len(fields)), dtype=np.float64)
        for i, field in enumerate(fields):
            matrix[:, i] = packed[field]
        return matrix


def _top(key: str, value: Any) -> type:
    """`{key: value, "params": null | {}}`, nothing else."""
    fields: list[tuple[str, Any] | tuple[str, Any, Any]] = [
        (key, value),
        ("params", dict[str, Any] | None, None),
    ]
    return msgspec.defstruct(f"Body_{key}", fields, forbid_unknown_fields=True)


class BodyDecoder:
    """Plainly valid bodies -> (float64 matrix in `order`, the batch's location), else None."""

    def __init__(self, order: tuple[str, ...]) -> None:
        width = len(order)
        fields = [f"f{i}" for i in range(width)]  # in `order`: the matrix's column order
        record = msgspec.defstruct(
            "Record",
            [(f, float) for f in fields],
            rename=dict(zip(fields, order, strict=True)),
            forbid_unknown_fields=True,
            gc=False,
        )
        row: Any = tuple.__class_getitem__((float,) * width)
        self._order = order
        self._nameset = frozenset(order)
        # A body that is one record: only when no input is named like a format's key.
        self._single_ok = not (self._nameset & _KEYS)
        self._values: Callable[[Any], tuple[float, ...]] = (
            attrgetter(*fields) if width > 1 else lambda r: (r.f0,)
        )
        self._single = msgspec.json.Decoder(record)
        # Records only: rows of arrays (tuples) pack too, but served no faster than iterating
        # (split bodies, interleaved wrk rounds: -2%, within noise).
        self._packed = PackedRows.layout(lambda values: record(*values), width)
        self._by_key: dict[str, list[tuple[msgspec.json.Decoder[Any], str]]] = {
            key: [(msgspec.json.Decoder(_top(key, list[record])), "records")]  # type: ignore[valid-type]
            for key in ("records", "dataframe_records", *_ROW_FORMATS)
        }
        for key in _ROW_FORMATS:
            self._by_key[key].append((msgspec.json.Decoder(_top(key, list[row])), "rows"))
        split = msgspec.defstruct(
            "Split",
            [("data", list[row]), ("columns", list[str] | None, None), ("index", Any, None)],
            forbid_unknown_fields=True,
        )
        self._by_key["dataframe_split"] = [
            (msgspec.json.Decoder(_top("dataframe_split", split)), "split")
        ]

    def decode(self, body: bytes, max_rows: int) -> Decoded | None:
        """The matrix and batch location for a plainly valid body, or None (read it the
        general way)."""
        match = _FIRST_KEY.match(body)
        if match is None:
            return None
        key = match.group(1).decode("utf-8", "replace")
        if key in self._nameset and self._single_ok:
            return self._record(body)
        for decoder, kind in self._by_key.get(key, ()):
            try:
                top = decoder.decode(body)
            except Exception:  # invalid, not UTF-8, too deep...: the general path says what
                continue
            if top.params:
                return None
            return self._matrix(getattr(top, key), kind, key, max_rows)
        return None

    def _record(self, body: bytes) -> Decoded | None:
        try:
            record = self._single.decode(body)
        except Exception:
            return None
        return np.array([self._values(record)], dtype=np.float64), Records([], (), single=True)

    def _matrix(self, value: Any, kind: str, key: str, max_rows: int) -> Decoded | None:
        reorder: list[int] | None = None
        if kind == "records":
            rows: Any = value
            batch: Batch = Records([], (key,))
        elif kind == "rows":
            rows, batch = value, Rows([], None, (key,))
        else:
            rows, columns = value.data, value.columns
            batch = Rows([], None, (key, "data"))
            if columns is not None:
                if len(columns) != len(self._order) or set(columns) != self._nameset:
                    return None
                if tuple(columns) != self._order:
                    reorder = [columns.index(name) for name in self._order]
                batch = Rows([], tuple(columns), (key, "data"))
        if not 0 < len(rows) <= max_rows:
            return None
        packed = self._packed if kind == "records" and len(rows) >= PACKED_FROM else None
        matrix = None if packed is None else packed.matrix(rows)
        if matrix is None:
            width = len(self._order)
            values = map(self._values, rows) if kind == "records" else rows
            # fromiter over the flattened values: half the time of np.array on a list of rows
            flat = np.fromiter(chain.from_iterable(values), np.float64, len(rows) * width)
            matrix = flat.reshape(len(rows), width)
        if reorder is not None:
            matrix = np.ascontiguousarray(matrix[:, reorder])
        return matrix, batch  # finite: msgspec refuses NaN, Infinity and numbers past a float
