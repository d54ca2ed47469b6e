"""Open Inference Protocol (V2) tensors: an inference request read into rows, predictions
written as output tensors, and the model's inputs and outputs described as tensors.

A request carries its rows as either
- one tensor per model input, named as the input, of shape `[n]` or `[n, 1]`, or
- one tensor of shape `[n, k]` (any name that is not an input's): the k inputs in the
  signature's order;
with `data` in row-major order, flat or nested as the shape. The reader checks the tensors
against the protocol (keys, datatypes, shapes, the values the datatype allows) and hands
`InputSchema.parse` the same `Rows` a /predict body becomes: the values are validated there,
exactly as for /predict, and `relocate` turns the locations of its errors into the tensor
positions the client sent (`inputs[2].data[5]`). No message repeats a value the client sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import chain
from typing import Any

import numpy as np

from app.errors import InvalidInput, PredictionFailed, UnsupportedMediaType, summarize
from app.payload import Rows, check_size, json_type, safe_name
from app.schema import MAX_ERRORS, InputSchema

PREDICT = "predict"
"""The name of the output tensor holding the predictions."""
BINARY_UNSUPPORTED = (
    "binary tensor data is not supported: send the tensors as JSON 'data' "
    "(tritonclient: binary_data=False)"
)
# Every datatype of the protocol but BF16 (binary only), by the JSON values its data holds.
_FAMILY = {
    "BOOL": "bool",
    **{f"{sign}INT{bits}": "int" for sign in ("", "U") for bits in (8, 16, 32, 64)},
    **{f"FP{bits}": "float" for bits in (16, 32, 64)},
    "BYTES": "bytes",
}
_VALUES: dict[str, frozenset[type]] = {
    "bool": frozenset({bool}),
    "int": frozenset({int}),
    "float": frozenset({int, float}),
    "bytes": frozenset({str}),
}
_NAMED = {"bool": "booleans", "int": "integers", "float": "numbers", "bytes": "strings"}
# Which datatype families fit a signature column of each type.
_FITS = {
    "double": ("float", "int"),
    "float": ("float", "int"),
    "long": ("int",),
    "integer": ("int",),
    "boolean": ("bool",),
    "string": ("bytes",),
    "binary": ("bytes",),
    "datetime": ("bytes",),
}
# The datatype each signature column type is described with.
_COLUMN_DATATYPE = {
    "double": "FP64",
    "float": "FP32",
    "long": "INT64",
    "integer": "INT32",
    "boolean": "BOOL",
    "string": "BYTES",
    "binary": "BYTES",
    "datetime": "BYTES",
}
_REQUEST_KEYS = frozenset({"id", "parameters", "inputs", "outputs", "model_name", "model_version"})
"""The protocol's keys, and KServe's SDK's model_name / model_version (ignored: the path names
the model)."""
_INPUT_KEYS = frozenset({"name", "shape", "datatype", "parameters", "data"})
_OUTPUT_KEYS = frozenset({"name", "parameters"})
# Parameters of protocol extensions this service does not implement: refused, not ignored.
_UNSUPPORTED = {
    "binary_data_size": BINARY_UNSUPPORTED,
    "shared_memory_region": "the shared-memory extension is not supported",
    "classification": "the classification extension is not supported",
}
_LOC = ("inputs",)
"""Where the Rows handed to the schema say they came from (see `relocate`)."""


def _invalid(loc: list[Any], msg: str) -> InvalidInput:
    details = [{"loc": loc, "msg": msg}]
    return InvalidInput(summarize(details), details)


def _keys(value: Any, allowed: frozenset[str], loc: list[Any], what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _invalid(loc, f"expected {what} (an object), got {json_type(value)}")
    unknown = value.keys() - allowed
    if unknown:
        raise _invalid(loc, f"unknown key(s): {', '.join(sorted(map(safe_name, unknown)))}")
    return value


def _parameters(value: Any, loc: list[Any]) -> None:
    """Parameters are name/value pairs (values strings, numbers or booleans); those of the
    extensions not implemented here are refused, any other is accepted and has no effect."""
    if value is None:
        return
    if not isinstance(value, dict):
        raise _invalid(loc, f"expected an object, got {json_type(value)}")
    for key, item in value.items():
        if item is None or isinstance(item, list | dict):
            wrong = f"expected a string, number or boolean, got {json_type(item)}"
            raise _invalid([*loc, safe_name(key)], wrong)
        unsupported = _UNSUPPORTED.get(key)
        if unsupported == BINARY_UNSUPPORTED:
            raise UnsupportedMediaType(unsupported, [{"loc": [*loc, key], "msg": unsupported}])
        if unsupported is not None:
            raise _invalid([*loc, key], unsupported)


def _data_loc(index: int, flat: int, nested: bool, width: int) -> list[Any]:
    """Where the `flat`-th value (row-major) of input `index` is in the body."""
    if nested:
        return ["inputs", index, "data", flat // width, flat % width]
    return ["inputs", index, "data", flat]


@dataclass(frozen=True, slots=True)
class _Tensor:
    index: int
    name: str
    datatype: str
    shape: list[int]
    data: list[Any]


@dataclass(frozen=True, slots=True)
class _Place:
    """Where a column's values are in the request: input `index`, `width` values per row
    (nested as rows or flat), the column at `column` within a row."""

    index: int
    nested: bool
    width: int
    column: int


class TensorReader:
    """Reads one inference request for a model with `schema` and outputs `outputs`; then holds
    the request's `id`, the outputs it asked for, and where each column's values came from."""

    __slots__ = ("schema", "outputs", "id", "requested", "_places")

    def __init__(self, schema: InputSchema, outputs: tuple[str, ...]) -> None:
        self.schema = schema
        self.outputs = outputs
        self.id: str | None = None
        self.requested: tuple[str, ...] | None = None
        """The outputs asked for, in the model's order; None: all of them."""
        self._places: dict[str, _Place] | None = None

    # -- reading ---------------------------------------------------------------------------

    def read(self, payload: Any, max_rows: int) -> Rows:
        """The request's rows (at most `max_rows`), or InvalidInput saying what is wrong."""
        request = _keys(payload, _REQUEST_KEYS, [], "an inference request")
        ident = request.get("id")
        if ident is not None:
            if not isinstance(ident, str):
                raise _invalid(["id"], f"expected a string, got {json_type(ident)}")
            try:
                ident.encode()
            except UnicodeEncodeError:
                raise _invalid(["id"], "not valid Unicode (a lone surrogate)") from None
        for key in ("model_name", "model_version"):
            value = request.get(key)
            if value is not None and not isinstance(value, str):
                raise _invalid([key], f"expected a string, got {json_type(value)}")
        _parameters(request.get("parameters"), ["parameters"])
        requested = self._requested(request.get("outputs"))
        inputs = request.get("inputs")
        if inputs is None:
            raise _invalid(["inputs"], "field required")
        if not isinstance(inputs, list):
            problem = f"expected an array of input tensors, got {json_type(inputs)}"
            raise _invalid(["inputs"], problem)
        if not inputs:
            raise _invalid(["inputs"], "empty: send at least one input tensor")
        tensors = [self._tensor(value, index) for index, value in enumerate(inputs)]
        first = tensors[0]
        if len(tensors) == 1 and len(first.shape) == 2 and first.name not in self.schema.names:
            rows = self._matrix(first, max_rows)
        else:
            rows = self._columns(tensors, max_rows)
        self.id, self.requested = ident, requested
        return rows

    def _requested(self, value: Any) -> tuple[str, ...] | None:
        if value is None:
            return None
        if not isinstance(value, list):
            raise _invalid(["outputs"], f"expected an array of outputs, got {json_type(value)}")
        names: set[str] = set()
        for i, item in enumerate(value):
            output = _keys(item, _OUTPUT_KEYS, ["outputs", i], "a requested output")
            _parameters(output.get("parameters"), ["outputs", i, "parameters"])
            name = output.get("name")
            if not isinstance(name, str):
                wrong = f"expected a string, got {json_type(name)}"
                raise _invalid(["outputs", i, "name"], "field required" if name is None else wrong)
            if name not in self.outputs:
                raise _invalid(
                    ["outputs", i, "name"],
                    f"unknown output; this model's outputs: {', '.join(self.outputs)}",
                )
            names.add(name)
        return tuple(n for n in self.outputs if n in names) or None

    def _tensor(self, value: Any, index: int) -> _Tensor:
        loc: list[Any] = ["inputs", index]
        tensor = _keys(value, _INPUT_KEYS, loc, "an input tensor")
        _parameters(tensor.get("parameters"), [*loc, "parameters"])
        for key in ("name", "datatype", "shape", "data"):
            if tensor.get(key) is None:
                raise _invalid([*loc, key], "field required")
        name, datatype, shape, data = (tensor[k] for k in ("name", "datatype", "shape", "data"))
        if not isinstance(name, str):
            raise _invalid([*loc, "name"], f"expected a string, got {json_type(name)}")
        if datatype not in _FAMILY:
            raise _invalid(
                [*loc, "datatype"], f"unsupported datatype; expected one of {', '.join(_FAMILY)}"
            )
        if not (
            isinstance(shape, list)
            and all(type(d) is int and d >= 0 for d in shape)  # not bool, not negative
        ):
            raise _invalid([*loc, "shape"], "expected an array of non-negative integers")
        if not isinstance(data, list):
            raise _invalid([*loc, "data"], f"expected an array, got {json_type(data)}")
        return _Tensor(index, name, datatype, shape, data)

    def _fits(self, tensor: _Tensor, kind: str, what: str) -> None:
        if _FAMILY[tensor.datatype] not in _FITS[kind]:
            raise _invalid(
                ["inputs", tensor.index, "datatype"],
                f"{tensor.datatype} does not fit {what} (type {kind})",
            )

    def _columns(self, tensors: list[_Tensor], max_rows: int) -> Rows:
        """One tensor per model input."""
        kinds = {c.name: c.kind for c in self.schema.columns}
        places: dict[str, _Place] = {}
        columns: list[list[Any]] = []
        n = tensors[0].shape[0] if tensors[0].shape else 0
        for tensor in tensors:
            loc: list[Any] = ["inputs", tensor.index]
            kind = kinds.get(tensor.name)
            if kind is None:
                raise _invalid(
                    [*loc, "name"],
                    f"unknown input; the model's inputs: {', '.join(self.schema.names)}",
                )
            if tensor.name in places:
                raise _invalid([*loc, "name"], "duplicate input name")
            self._fits(tensor, kind, f"input '{safe_name(tensor.name)}'")
            shape = tensor.shape
            if not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)):
                raise _invalid(
                    [*loc, "shape"], "expected [n] or [n, 1]: one value per row for each input"
                )
            if tensor.index == 0:
                check_size(n, [*loc, "shape"], max_rows)
            elif shape[0] != n:
                raise _invalid([*loc, "shape"], f"{shape[0]} rows, but inputs[0] has {n}")
            data = tensor.data
            if len(data) != n:
                raise _invalid([*loc, "data"], f"expected {n} values (the shape), got {len(data)}")
            nested = len(shape) == 2 and type(data[0]) is list
            if nested:
                if not all(type(row) is list and len(row) == 1 for row in data):
                    raise _invalid([*loc, "data"], f"expected {n} rows of 1 value (the shape)")
                data = [row[0] for row in data]
            _check_values(data, tensor, nested, 1)
            places[tensor.name] = _Place(tensor.index, nested, 1, 0)
            columns.append(data)
        missing = [c.name for c in self.schema.columns if c.required and c.name not in places]
        if missing:
            details = [{"loc": ["inputs"], "msg": f"input '{name}' required"} for name in missing]
            raise InvalidInput(summarize(details), details)
        self._places = places
        rows = list(map(list, zip(*columns, strict=True)))
        return Rows(rows, tuple(t.name for t in tensors), _LOC)

    def _matrix(self, tensor: _Tensor, max_rows: int) -> Rows:
        """One [n, k] tensor: a row per row, the model's inputs in the signature's order."""
        names = self.schema.names
        loc: list[Any] = ["inputs", tensor.index]
        n, width = tensor.shape
        if width != len(names):
            raise _invalid(
                [*loc, "shape"],
                f"expected [n, {len(names)}]: one value per model input, in the order "
                f"{', '.join(names)}",
            )
        for column in self.schema.columns:
            self._fits(tensor, column.kind, f"input '{column.name}'")
        check_size(n, [*loc, "shape"], max_rows)
        data = tensor.data
        nested = len(data) == n and type(data[0]) is list
        if nested:
            if not all(type(row) is list and len(row) == width for row in data):
                raise _invalid([*loc, "data"], f"expected {n} rows of {width} values (the shape)")
            rows = data
            _check_values(list(chain.from_iterable(rows)), tensor, nested, width)
        elif len(data) == n * width:
            _check_values(data, tensor, nested, width)
            rows = [data[i : i + width] for i in range(0, n * width, width)]
        else:
            raise _invalid(
                [*loc, "data"], f"expected {n * width} values (the shape), got {len(data)}"
            )
        self._places = {n: _Place(tensor.index, nested, width, c) for c, n in enumerate(names)}
        return Rows(rows, names, _LOC)

    # -- errors ----------------------------------------------------------------------------

    def relocate(self, exc: InvalidInput) -> InvalidInput:
        """`exc` with the schema's row/column locations turned into tensor positions."""
        places = self._places
        if places is None:
            return exc  # the request did not read: the error is the reader's own
        details = []
        for detail in exc.details:
            loc = detail.get("loc", [])
            if len(loc) == 3 and loc[0] == _LOC[0] and type(loc[1]) is int:
                place = places.get(loc[2])
                if place is not None:
                    flat = loc[1] * place.width + place.column
                    loc = _data_loc(place.index, flat, place.nested, place.width)
                    detail = {**detail, "loc": loc}
            details.append(detail)
        return InvalidInput(summarize(details), details)


def _check_values(values: list[Any], tensor: _Tensor, nested: bool, width: int) -> None:
    """Every value is of a JSON type the tensor's datatype holds (booleans for BOOL, ...)."""
    family = _FAMILY[tensor.datatype]
    allowed = _VALUES[family]
    if set(map(type, values)) <= allowed:
        return
    details = []
    expected = f"expected {_NAMED[family]} for {tensor.datatype}"
    for i, value in enumerate(values):
        if type(value) not in allowed:
            details.append(
                {
                    "loc": _data_loc(tensor.index, i, nested, width),
                    "msg": f"{expected}, got {json_type(value)}",
                }
            )
            if len(details) >= MAX_ERRORS:
                break
    raise InvalidInput(summarize(details), details)


# -- the model's tensors -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OutputSpec:
    name: str
    datatype: str | None  # None: not in the signature; the values decide
    shape: list[int]


def _numpy_datatype(dtype: Any) -> str | None:
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


def output_specs(outputs: list[dict[str, Any]] | None) -> tuple[OutputSpec, ...]:
    """The output tensors, from the signature's outputs (`Schema.to_dict()`): one output is
    `predict`; several columns are one tensor each, named as the column."""
    specs = []
    for i, spec in enumerate(outputs or []):
        if spec.get("type") == "tensor":
            tensor = spec.get("tensor-spec") or {}
            datatype = _numpy_datatype(tensor.get("dtype"))
            shape = [int(d) for d in tensor.get("shape") or [-1]]
        else:
            datatype, shape = _COLUMN_DATATYPE.get(str(spec.get("type"))), [-1]
        name = PREDICT if len(outputs or []) == 1 else str(spec.get("name") or f"output_{i}")
        specs.append(OutputSpec(name, datatype, shape))
    return tuple(specs)


def input_metadata(schema: InputSchema) -> list[dict[str, Any]]:
    """One tensor per input: a value per row."""
    return [
        {"name": c.name, "datatype": _COLUMN_DATATYPE[c.kind], "shape": [-1]}
        for c in schema.columns
    ]


def _values_datatype(values: list[Any]) -> str:
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


def encode_outputs(
    predictions: list[Any], specs: tuple[OutputSpec, ...], requested: tuple[str, ...] | None
) -> list[dict[str, Any]]:
    """The response's output tensors: one value per row (shape [n]), a row of k values per
    row ([n, k], data flat), or one tensor per column when the model answers records."""
    n = len(predictions)
    first = predictions[0] if predictions else None
    if isinstance(first, dict):
        tensors = [(str(k), [p[k] for p in predictions], [n]) for k in first]
    elif isinstance(first, list):
        width = len(first)
        if any(len(p) != width for p in predictions):
            raise PredictionFailed("the model's output rows differ in length: not a tensor")
        tensors = [(PREDICT, list(chain.from_iterable(predictions)), [n, width])]
    else:
        tensors = [(PREDICT, predictions, [n])]
    declared = {s.name: s.datatype for s in specs}
    return [
        {
            "name": name,
            "datatype": declared.get(name) or _values_datatype(data),
            "shape": shape,
            "data": data,
        }
        for name, data, shape in tensors
        if requested is None or name in requested
    ]
