"""The Open Inference Protocol's tensor datatypes, as this service meets them: the JSON values
each one's `data` holds, the signature column types each one fits, and the datatype a column,
a numpy dtype or a list of predicted values is described with."""

from __future__ import annotations

from typing import Any

import numpy as np

from app.errors import PredictionFailed

FAMILY = {
    "BOOL": "bool",
    **{f"{sign}INT{bits}": "int" for sign in ("", "U") for bits in (8, 16, 32, 64)},
    **{f"FP{bits}": "float" for bits in (16, 32, 64)},
    "BYTES": "bytes",
}
"""Every datatype of the protocol but BF16 (binary only), by the JSON values its data holds."""
VALUES: dict[str, frozenset[type]] = {
    "bool": frozenset({bool}),
    "int": frozenset({int}),
    "float": frozenset({int, float}),
    "bytes": frozenset({str}),
}
NAMED = {"bool": "booleans", "int": "integers", "float": "numbers", "bytes": "strings"}
FITS = {
    "double": ("float", "int"),
    "float": ("float", "int"),
    "long": ("int",),
    "integer": ("int",),
    "boolean": ("bool",),
    "string": ("bytes",),
    "binary": ("bytes",),
    "datetime": ("bytes",),
}
"""Which datatype families fit a signature column of each type."""
COLUMN_DATATYPE = {
    "double": "FP64",
    "float": "FP32",
    "long": "INT64",
    "integer": "INT32",
    "boolean": "BOOL",
    "string": "BYTES",
    "binary": "BYTES",
    "datetime": "BYTES",
}
"""The datatype each signature column type is described with."""


def numpy_datatype(dtype: Any) -> str | None:
    """The datatype of a numpy dtype (a tensor signature's), or None if it has none."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        return None
    if dt.kind == "b":
        return "BOOL"
    if dt.kind in "iu":
        return f"{'U' if dt.kind == 'u' else ''}INT{dt.itemsize * 8}"
    if dt.kind == "f":
        return f"FP{dt.itemsize * 8}"
    return "BYTES" if dt.kind in "OUS" else None


def values_datatype(values: list[Any]) -> str:
    """The datatype of predicted values the signature does not type."""
    types = set(map(type, values))
    if types == {bool}:
        return "BOOL"
    if types <= {int}:
        return "INT64"
    if types <= {int, float}:
        return "FP64"
    if types == {str}:
        return "BYTES"
    raise PredictionFailed("the model's output cannot be sent as a V2 tensor")
