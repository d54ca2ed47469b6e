"""Open Inference Protocol (V2) input tensors read into the rows a /predict body becomes.

A request carries its rows as either
- one tensor per model input, named as the input, of shape `[n]` or `[n, 1]`, or
- one tensor of shape `[n, k]` (any name that is not an input's): the k inputs in the
  signature's order;
with `data` in row-major order, flat or nested as the shape. The reader checks the tensors
against the protocol (`app.protocols.v2.request`: keys, datatypes, shapes; here: the layout and the
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
from app.formats.decoders import Decoded
from app.formats.payload import Rows, check_size, json_type, safe_name
from app.model.schema import MAX_ERRORS, InputSchema
from app.protocols.v2.datatypes import FAMILY, FITS, NAMED, VALUES
from app.protocols.v2.decoder import V2Decoder
from app.protocols.v2.places import LOC, Layout, Place, data_loc, position
from app.protocols.v2.request import Tensor, invalid, read_request


def _fits(tensor: Tensor, kind: str, name: str) -> None:
    """The tensor's datatype fits the model's input `name`, of type `kind`."""
    if FAMILY[tensor.datatype] not in FITS[kind]:
        raise invalid(
            ["inputs", tensor.index, "datatype"],
            f"{tensor.datatype} does not fit input '{safe_name(name)}' (type {kind})",
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
                    "loc": data_loc(tensor.index, i, nested, width),
                    "msg": f"{expected}, got {json_type(value)}",
                }
            )
            if len(details) >= MAX_ERRORS:
                break
    raise InvalidInput(summarize(details), details)


def _column(tensor: Tensor, kind: str, n: int, max_rows: int) -> tuple[list[Any], Place]:
    """One input's values, `n` rows (that of inputs[0]) of one value, and their place."""
    loc: list[Any] = ["inputs", tensor.index]
    _fits(tensor, kind, tensor.name)
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
    return data, Place(tensor.index, nested, 1)


@dataclass(frozen=True, slots=True)
class ModelInputs:
    """A model's inputs as the reader needs them (made once per served model)."""

    schema: InputSchema
    kinds: dict[str, str]
    """The type of each input, by name."""
    required: tuple[str, ...]
    fit_all: frozenset[str]
    """The datatype families that fit every input (an [n, k] tensor's must)."""
    plain_values: dict[tuple[str, str], frozenset[type]]
    """For each input and datatype that fits it, the JSON types of the values it holds."""
    decoder: V2Decoder | None
    """Reads plainly valid bodies straight into the model's matrix (when /predict's can)."""

    @classmethod
    def of(cls, schema: InputSchema) -> ModelInputs:
        kinds = {c.name: c.kind for c in schema.columns}
        fits = [frozenset(FITS[k]) for k in kinds.values()]
        fit_all = frozenset.intersection(*fits) if fits else frozenset()  # none: no signature
        plain_values = {
            (name, datatype): VALUES[family]
            for name, kind in kinds.items()
            for datatype, family in FAMILY.items()
            if family in FITS[kind]
        }
        required = tuple(c.name for c in schema.columns if c.required)
        decoder = V2Decoder(schema.names, schema.array_order) if schema.decoder else None
        return cls(schema, kinds, required, fit_all, plain_values, decoder)


def _plain_columns(
    payload: Any, inputs: ModelInputs, max_rows: int
) -> tuple[Rows, tuple[str, ...]] | None:
    """The rows of the request most clients send, read in one pass, and the inputs in the
    order sent: only `inputs`, one tensor of shape [n] per model input (any order, only the
    four keys), values of the datatype's JSON type. None for anything else, which the reader
    reads (and explains) from the start, the same rules in more steps."""
    if type(payload) is not dict or len(payload) != 1:
        return None
    tensors = payload.get("inputs")
    if type(tensors) is not list or len(tensors) != len(inputs.kinds):
        return None
    values = inputs.plain_values
    n = 0
    names: list[str] = []
    columns = []
    for tensor in tensors:
        if type(tensor) is not dict or len(tensor) != 4:
            return None
        try:
            name, datatype = tensor["name"], tensor["datatype"]
            shape, data = tensor["shape"], tensor["data"]
        except KeyError:
            return None
        if type(name) is not str or type(datatype) is not str or type(shape) is not list:
            return None
        allowed = values.get((name, datatype))
        if allowed is None or len(shape) != 1 or type(shape[0]) is not int:
            return None  # (a shape of [1.0] or [true] equals [1])
        if not n:
            n = shape[0]
            if not 1 <= n <= max_rows:
                return None
        elif shape[0] != n:
            return None
        if type(data) is not list or len(data) != n or name in names:
            return None
        if not (type(data[0]) in allowed if n == 1 else set(map(type, data)) <= allowed):
            return None
        names.append(name)
        columns.append(data)
    rows = [[c[0] for c in columns]] if n == 1 else list(map(list, zip(*columns, strict=True)))
    return Rows(rows, tuple(names), LOC), tuple(names)


_DECODED = Rows([], None, LOC)
"""The batch of a decoded request: only its location (for the rows the model refuses)."""


class TensorReader:
    """Reads one inference request for a model with `inputs` and outputs `outputs`; then holds
    the request's `id`, the outputs it asked for, and where each column's values came from."""

    __slots__ = ("inputs", "schema", "outputs", "id", "requested", "_layout", "_one_row")

    def __init__(self, inputs: ModelInputs, outputs: tuple[str, ...]) -> None:
        self.inputs = inputs
        self.schema = inputs.schema
        self.outputs = outputs
        self.id: str | None = None
        self.requested: tuple[str, ...] | None = None
        """The outputs asked for, in the model's order; None: all of them."""
        self._layout: Layout | None = None
        self._one_row = False

    def decode(self, schema: InputSchema, body: bytes, max_rows: int) -> Decoded | None:
        """The matrix of a plainly valid body for `schema` (this reader's), or None: read it
        the general way (`read`), which answers the same for any body both read."""
        decoder = self.inputs.decoder
        if decoder is None or schema is not self.schema:
            return None  # (another model was swapped in meanwhile)
        decoded = decoder.decode(body, max_rows)
        if decoded is None:
            return None
        matrix, self._layout, self.id = decoded
        self._one_row = len(matrix) == 1
        return matrix, _DECODED

    def read(self, payload: Any, max_rows: int) -> Rows:
        """The request's rows (at most `max_rows`), or InvalidInput saying what is wrong."""
        plain = _plain_columns(payload, self.inputs, max_rows)
        if plain is not None:
            rows, self._layout = plain
            self._one_row = len(rows.items) == 1
            return rows
        request = read_request(payload, self.outputs)
        tensors = request.tensors
        first = tensors[0]
        if len(tensors) == 1 and len(first.shape) == 2 and first.name not in self.schema.names:
            rows = self._matrix(first, max_rows)
        else:
            rows = self._columns(tensors, max_rows)
        self.id, self.requested = request.id, request.requested
        self._one_row = len(rows.items) == 1
        return rows

    def _columns(self, tensors: list[Tensor], max_rows: int) -> Rows:
        """One tensor per model input."""
        kinds = self.inputs.kinds
        places: dict[str, Place] = {}
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
        if len(places) != len(kinds):  # else every input is there
            missing = [name for name in self.inputs.required if name not in places]
            if missing:
                details = [{"loc": ["inputs"], "msg": f"input '{m}' required"} for m in missing]
                raise InvalidInput(summarize(details), details)
        self._layout = places  # only now: until the request reads, errors are the reader's
        rows = [[c[0] for c in columns]] if n == 1 else list(map(list, zip(*columns, strict=True)))
        return Rows(rows, tuple(t.name for t in tensors), LOC)

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
        if FAMILY[tensor.datatype] not in self.inputs.fit_all:
            for column in self.schema.columns:
                _fits(tensor, column.kind, column.name)  # raises at the first it does not fit
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
        self._layout = Place(tensor.index, nested, width)
        return Rows(rows, names, LOC)

    def relocate(self, exc: InvalidInput) -> InvalidInput:
        """`exc` with the schema's and the model's locations (`["inputs", row, input]`, a value;
        `["inputs", row]`, a row the model refuses, `[]` when the request has one row) turned
        into the positions the client sent: `inputs[2].data[5]`; a refused row is named by its
        place in the first tensor's data (its first value, in a flat [n, k] tensor)."""
        layout = self._layout
        if layout is None:
            return exc  # the request did not read: the error is the reader's own
        details = []
        for detail in exc.details:
            where = position(layout, self.schema.names, detail.get("loc", []), self._one_row)
            details.append(detail if where is None else {**detail, "loc": where})
        return InvalidInput(summarize(details), details)
