"""A typed decoder for the Open Inference Protocol (V2) requests most clients send (msgspec),
compiled once per model whose inputs are all required double columns, as `app.formats.decoders` is
for /predict.

It reads a body straight from its bytes into the float64 matrix the model eats, in C, when the body
is plainly valid: only `inputs` (and a string `id`), each tensor exactly `name`, `datatype`, `shape`
and `data`, a floating-point datatype (FP16, FP32, FP64), strict numbers, and either one tensor of
shape [n] per model input (flat data) or one [n, k] tensor named otherwise (flat or nested data),
within the row limit. On anything else it answers None, and the reader (`app.protocols.v2.inputs`)
reads the body the general way, which gives today's answer and names what is wrong. So it changes
how fast an answer comes, never what it is (tests/app/protocols/v2/test_decoder.py sends the same
bodies both ways)."""

from __future__ import annotations

from itertools import chain
from typing import Any, Literal

import msgspec
import numpy as np

from app.protocols.v2.places import Layout, Place

_FLOATS = Literal["FP16", "FP32", "FP64"]
"""The datatypes whose data may hold any JSON number: those a double input takes as is."""

DecodedV2 = tuple[np.ndarray, Layout, str | None]
"""The matrix (rows in the fitted order), where its values came from, and the request's id."""


def _body(data: Any, name: str) -> msgspec.json.Decoder[Any]:
    tensor = msgspec.defstruct(
        f"Tensor_{name}",
        [("name", str), ("datatype", _FLOATS), ("shape", list[int]), ("data", data)],
        forbid_unknown_fields=True,
        gc=False,
    )
    body = msgspec.defstruct(
        f"Infer_{name}",
        [("inputs", list[tensor]), ("id", str | None, None)],  # type: ignore[valid-type]
        forbid_unknown_fields=True,
        gc=False,
    )
    return msgspec.json.Decoder(body)


class V2Decoder:
    """Plainly valid V2 bodies -> (float64 matrix in `order`, layout, id), else None.
    `names`: the model's inputs in the signature's order; `order`: the fitted order."""

    def __init__(self, names: tuple[str, ...], order: tuple[str, ...]) -> None:
        self._names = names
        self._width = len(names)
        self._position = {name: order.index(name) for name in names}
        self._reorder = None if names == order else [names.index(name) for name in order]
        self._flat = _body(list[float], "flat")
        row: Any = tuple.__class_getitem__((float,) * len(names))  # exactly k numbers
        self._nested = _body(list[row], "nested")

    def decode(self, body: bytes, max_rows: int) -> DecodedV2 | None:
        try:
            request = self._flat.decode(body)
        except Exception:  # invalid, nested, not UTF-8...: maybe nested, else the reader says
            return self._nested_matrix(body, max_rows)
        tensors = request.inputs
        if len(tensors) == 1 and len(tensors[0].shape) == 2:
            found = self._matrix(tensors[0], max_rows, nested=False)
        else:
            found = self._columns(tensors, max_rows)
        return None if found is None else (found[0], found[1], request.id)

    def _columns(self, tensors: list[Any], max_rows: int) -> tuple[np.ndarray, Layout] | None:
        """One tensor of shape [n] per model input, in any order."""
        width, position = self._width, self._position
        if len(tensors) != width:
            return None
        shape = tensors[0].shape
        if len(shape) != 1 or not 1 <= shape[0] <= max_rows:
            return None
        n = shape[0]
        columns: list[Any] = [None] * width
        for tensor in tensors:
            at = position.get(tensor.name)
            if at is None or columns[at] is not None:
                return None  # not an input, or one sent twice
            data = tensor.data
            if tensor.shape != shape or len(data) != n:
                return None
            columns[at] = data
        sent = tuple([t.name for t in tensors])
        if n == 1:  # a third cheaper than fromiter for one row
            return np.array([[c[0] for c in columns]], dtype=np.float64), sent
        flat = np.fromiter(chain.from_iterable(zip(*columns, strict=True)), np.float64, n * width)
        return flat.reshape(n, width), sent

    def _nested_matrix(self, body: bytes, max_rows: int) -> DecodedV2 | None:
        try:
            request = self._nested.decode(body)
        except Exception:
            return None
        if len(request.inputs) != 1 or len(request.inputs[0].shape) != 2:
            return None
        found = self._matrix(request.inputs[0], max_rows, nested=True)
        return None if found is None else (found[0], found[1], request.id)

    def _matrix(self, tensor: Any, max_rows: int, nested: bool) -> tuple[np.ndarray, Layout] | None:
        """One [n, k] tensor, named as no input, the inputs in the signature's order."""
        width = self._width
        if tensor.name in self._position:
            return None
        n, k = tensor.shape
        data = tensor.data
        if k != width or not 1 <= n <= max_rows or len(data) != (n if nested else n * width):
            return None
        values = chain.from_iterable(data) if nested else data
        matrix = np.fromiter(values, np.float64, n * width).reshape(n, width)
        if self._reorder is not None:
            matrix = np.ascontiguousarray(matrix[:, self._reorder])
        return matrix, Place(0, nested, width)
