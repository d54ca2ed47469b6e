"""Open Inference Protocol (V2) input tensors read into the rows a /predict body becomes.

A request carries its rows as either
- one tensor per model input, named as the input, of shape `[n]` or `[n, 1]`, or
- one tensor of shape `[n, k]` (any name that is not an input's): the k inputs in the
  signature's order;
with `data` in row-major order, flat or nested as the shape. The reader checks the tensors
against the protocol (`app.v2_request`: keys, datatypes, shapes; here: the layout and the
values the datatype allows) and hands `InputSchema.parse` the same `Rows` a /predict body
becomes: the values are validated there, exactly as for /predict, and `relocate` turns the
locations of its errors into the tensor positions the client sent (`inputs[2].data[5]`). No
message repeats a value the client sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import chain
from typing import Any

from app.errors import InvalidInput, summarize
from app.payload import Rows, check_size, json_type, safe_name
from app.schema import MAX_ERRORS, InputSchema
from app.v2_datatypes import FAMILY, FITS, NAMED, VALUES
from app.v2_request import Tensor, invalid, read_request

_LOC = ("inputs",)
"""Where the Rows handed to the schema say they came from (see `relocate`)."""


def _data_loc(index: int, flat: int, nested: bool, width: int) -> list[Any]:
    """Where the `flat`-th value (row-major) of input `index` is in the body."""
    if nested:
        return ["inputs", index, "data", flat // width, flat % width]
    return ["inputs", index, "data", flat]


@dataclass(frozen=True, slots=True)
class _Place:
    """Where a column's values are in the request: input `index`, `width` values per row
    (nested as rows or flat), the column at `column` within a row."""

    index: int
    nested: bool
    width: int
    column: int


def _fits(tensor: Tensor, kind: str, what: str) -> None:
    if FAMILY[tensor.datatype] not in FITS[kind]:
        raise invalid(
            ["inputs", tensor.index, "datatype"],
            f"{tensor.datatype} does not fit {what} (type {kind})",
        )


def _check_values(values: list[Any], tensor: Tensor, nested: bool, width: int) -> None:
    """Every value is of a JSON type the tensor's datatype holds (booleans for BOOL, ...)."""
    family = FAMILY[tensor.datatype]
    allowed = VALUES[family]
    if set(map(type, values)) <= allowed:
        return
    details = []
    expected = f"expected {NAMED[family]} for {tensor.datatype}"
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


def _column(tensor: Tensor, kind: str, n: int, max_rows: int) -> tuple[list[Any], _Place]:
    """One input's values, `n` rows (that of inputs[0]) of one value, and their place."""
    loc: list[Any] = ["inputs", tensor.index]
    _fits(tensor, kind, f"input '{safe_name(tensor.name)}'")
    shape = tensor.shape
    if not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)):
        raise invalid([*loc, "shape"], "expected [n] or [n, 1]: one value per row for each input")
    if tensor.index == 0:
        check_size(n, [*loc, "shape"], max_rows)
    elif shape[0] != n:
        raise invalid([*loc, "shape"], f"{shape[0]} rows, but inputs[0] has {n}")
    data = tensor.data
    if len(data) != n:
        raise invalid([*loc, "data"], f"expected {n} values (the shape), got {len(data)}")
    nested = len(shape) == 2 and type(data[0]) is list
    if nested:
        if not all(type(row) is list and len(row) == 1 for row in data):
            raise invalid([*loc, "data"], f"expected {n} rows of 1 value (the shape)")
        data = [row[0] for row in data]
    _check_values(data, tensor, nested, 1)
    return data, _Place(tensor.index, nested, 1, 0)


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

    def read(self, payload: Any, max_rows: int) -> Rows:
        """The request's rows (at most `max_rows`), or InvalidInput saying what is wrong."""
        request = read_request(payload, self.outputs)
        tensors = request.tensors
        first = tensors[0]
        if len(tensors) == 1 and len(first.shape) == 2 and first.name not in self.schema.names:
            rows = self._matrix(first, max_rows)
        else:
            rows = self._columns(tensors, max_rows)
        self.id, self.requested = request.id, request.requested
        return rows

    def _columns(self, tensors: list[Tensor], max_rows: int) -> Rows:
        """One tensor per model input."""
        kinds = {c.name: c.kind for c in self.schema.columns}
        places: dict[str, _Place] = {}
        columns: list[list[Any]] = []
        n = tensors[0].shape[0] if tensors[0].shape else 0
        for tensor in tensors:
            kind = kinds.get(tensor.name)
            if kind is None:
                raise invalid(
                    ["inputs", tensor.index, "name"],
                    f"unknown input; the model's inputs: {', '.join(self.schema.names)}",
                )
            if tensor.name in places:
                raise invalid(["inputs", tensor.index, "name"], "duplicate input name")
            column, places[tensor.name] = _column(tensor, kind, n, max_rows)
            columns.append(column)
        missing = [c.name for c in self.schema.columns if c.required and c.name not in places]
        if missing:
            details = [{"loc": ["inputs"], "msg": f"input '{name}' required"} for name in missing]
            raise InvalidInput(summarize(details), details)
        self._places = places  # only now: until the request reads, errors are the reader's
        rows = list(map(list, zip(*columns, strict=True)))
        return Rows(rows, tuple(t.name for t in tensors), _LOC)

    def _matrix(self, tensor: Tensor, max_rows: int) -> Rows:
        """One [n, k] tensor: a row per row, the model's inputs in the signature's order."""
        names = self.schema.names
        loc: list[Any] = ["inputs", tensor.index]
        n, width = tensor.shape
        if width != len(names):
            raise invalid(
                [*loc, "shape"],
                f"expected [n, {len(names)}]: one value per model input, in the order "
                f"{', '.join(names)}",
            )
        for column in self.schema.columns:
            _fits(tensor, column.kind, f"input '{column.name}'")
        check_size(n, [*loc, "shape"], max_rows)
        data = tensor.data
        nested = len(data) == n and type(data[0]) is list
        if nested:
            if not all(type(row) is list and len(row) == width for row in data):
                raise invalid([*loc, "data"], f"expected {n} rows of {width} values (the shape)")
            rows = data
            _check_values(list(chain.from_iterable(rows)), tensor, nested, width)
        elif len(data) == n * width:
            _check_values(data, tensor, nested, width)
            rows = [data[i : i + width] for i in range(0, n * width, width)]
        else:
            raise invalid(
                [*loc, "data"], f"expected {n * width} values (the shape), got {len(data)}"
            )
        self._places = {n: _Place(tensor.index, nested, width, c) for c, n in enumerate(names)}
        return Rows(rows, names, _LOC)

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
