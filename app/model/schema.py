"""The model's input contract, compiled once from its MLflow signature at load time.

`InputSchema.parse()` turns a normalized batch (see `app.formats.payload`) into what the model eats:
a float64 numpy matrix when every input is a required float column (the fast path: a few type
checks done in C, then one array construction), else a typed pandas DataFrame. Only when the
fast checks fail does it walk the batch again to say, record by record and field by field,
what is wrong, without ever repeating the client's values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import chain
from typing import Any

import numpy as np
import pandas as pd

from app.errors import InvalidInput, summarize
from app.formats.csv import typed
from app.formats.decoders import compile_decoder
from app.formats.payload import Batch, Records, Rows, json_type, safe_name
from app.model.params import ParamsSchema
from app.model.unsigned import unsigned_frame

FLOAT_KINDS = frozenset({"double", "float"})
INT_KINDS = frozenset({"long", "integer"})
_DTYPES = {
    "double": "float64",
    "float": "float32",
    "long": "int64",
    "integer": "int32",
    "boolean": "bool",
    "string": "object",
    "binary": "object",
    "datetime": "datetime64[ns]",
}
_JSON_SCHEMA = {
    "double": {"type": "number"},
    "float": {"type": "number"},
    "long": {"type": "integer"},
    "integer": {"type": "integer"},
    "boolean": {"type": "boolean"},
    "string": {"type": "string"},
    "binary": {"type": "string", "format": "byte"},
    "datetime": {"type": "string", "format": "date-time"},
}
_NUMBER_TYPES = frozenset({float, int})
MAX_ERRORS = 20
_INT_RANGE = {"long": (-(2**63), 2**63 - 1), "integer": (-(2**31), 2**31 - 1)}
_FLOAT_MAX = {"double": 1.7976931348623157e308, "float": 3.4028234663852886e38}


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    kind: str
    required: bool = True


_REPORTED = object()
"""Stands for a row whose shape error is already listed (None is a record the client sent)."""


class _Slow(Exception):
    """The fast path met something it does not handle: explain it the slow way."""


def _value_error(column: Column, value: Any) -> str | None:
    """What is wrong with `value` for `column`, or None if it fits."""
    kind = column.kind
    if value is None:
        return None if not column.required else "must not be null"
    if kind in FLOAT_KINDS:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"expected a number, got {json_type(value)}"
        if isinstance(value, float) and not math.isfinite(value):
            return "must be a finite number (NaN and infinity are not allowed)"
        if abs(value) > _FLOAT_MAX[kind]:
            return "number out of range"
        return None
    if kind in INT_KINDS:
        if isinstance(value, bool) or not isinstance(value, int):
            return f"expected an integer, got {json_type(value)}"
        low, high = _INT_RANGE[kind]
        if not low <= value <= high:
            return "integer out of range"
        return None
    if kind == "boolean":
        return None if isinstance(value, bool) else f"expected a boolean, got {json_type(value)}"
    if kind == "datetime":
        if not isinstance(value, str):
            return f"expected a date-time string, got {json_type(value)}"
        try:
            np.datetime64(value)
        except ValueError:
            return "expected an ISO 8601 date-time"
        return None
    return None if isinstance(value, str) else f"expected a string, got {json_type(value)}"


class InputSchema:
    """Columns the model takes, and how to turn request bodies into model input."""

    def __init__(
        self, columns: list[Column], array_order: list[str] | None = None, *, signed: bool = True
    ) -> None:
        if not columns and signed:
            raise ValueError("a signature with no inputs cannot be served")
        self.signed = signed
        """False for a model logged without a signature: its input is passed through."""
        self.params: ParamsSchema | None = None
        """The inference params the signature declares, if any (the loader sets them)."""
        self.columns = tuple(columns)
        self.names = tuple(c.name for c in columns)
        self._by_name = {c.name: c for c in columns}
        self._kinds = {c.name: c.kind for c in columns}
        self._nameset = frozenset(self.names)
        self._required = frozenset(c.name for c in columns if c.required)
        # Column order of the fast path's matrix: the order the estimator was fitted in.
        self.array_order = tuple(array_order) if array_order else self.names
        if set(self.array_order) != self._nameset:
            raise ValueError("the model's feature names differ from its signature's inputs")
        # The float64-matrix fast path: float32 ("float") columns go through a typed DataFrame,
        # since MLflow's schema enforcement refuses float64 data for them.
        self.numeric = signed and all(c.kind == "double" and c.required for c in columns)
        # Compiled once per model: reads plainly valid bodies straight into that matrix.
        self.decoder = compile_decoder(self.names, self.array_order) if self.numeric else None

    @classmethod
    def from_signature(
        cls, inputs: list[dict[str, Any]], array_order: list[str] | None = None
    ) -> InputSchema:
        """From `signature.inputs.to_dict()`: [{"name", "type", "required"}, ...] column specs."""
        columns = []
        for spec in inputs:
            if spec.get("type") == "tensor" or "name" not in spec:
                raise ValueError("only column-based (named) signatures are supported, not tensors")
            if spec["type"] not in _DTYPES:
                raise ValueError(f"input {spec['name']!r} has unsupported type {spec['type']!r}")
            columns.append(Column(spec["name"], spec["type"], bool(spec.get("required", True))))
        return cls(columns, array_order)

    # -- parsing -------------------------------------------------------------------------

    def parse(self, batch: Batch, *, booleans: bool = True) -> np.ndarray | pd.DataFrame:
        """The model input for `batch`, or InvalidInput naming every problem (up to 20).

        `booleans=False` promises the body held no JSON `true`/`false` (the caller looked):
        then numpy's own dtype inference tells numbers from strings, nulls, nesting and
        ragged rows, and the per-value type check is skipped."""
        if not self.signed:
            return unsigned_frame(batch, MAX_ERRORS)
        if isinstance(batch, Rows) and batch.text:
            batch = typed(batch, self._kinds)
        if self.numeric:
            try:
                return self._fast_matrix(batch, booleans)
            except (_Slow, OverflowError, ValueError, TypeError, IndexError, KeyError):
                pass
        return self._frame(self._valid_records(batch))

    def _fast_matrix(self, batch: Batch, booleans: bool) -> np.ndarray:
        order = self.array_order
        if isinstance(batch, Records):
            nameset, width = self._nameset, len(order)
            rows: list[list[Any]] = []
            append = rows.append
            for rec in batch.items:
                if type(rec) is not dict or len(rec) != width or rec.keys() != nameset:
                    raise _Slow
                append([rec[k] for k in order])
        else:
            width = len(batch.columns) if batch.columns is not None else len(order)
            if batch.columns is not None and set(batch.columns) != self._nameset:
                raise _Slow
            if width != len(order):
                raise _Slow
            columns = batch.columns
            reorder = columns is not None and columns != order
            if booleans or reorder:  # reordering would drop extra values unseen
                for row in batch.items:
                    if type(row) is not list or len(row) != width:
                        raise _Slow
            rows = batch.items
            if columns is not None and reorder:
                idx = [columns.index(name) for name in order]
                rows = [[row[i] for i in idx] for row in rows]
        if booleans:
            if not set(map(type, chain.from_iterable(rows))) <= _NUMBER_TYPES:
                raise _Slow
            matrix = np.array(rows, dtype=np.float64)
        else:
            matrix = np.array(rows)
            if matrix.dtype.kind not in "fi" or matrix.shape != (len(rows), len(order)):
                raise _Slow
            matrix = matrix.astype(np.float64, copy=False)
        if not np.isfinite(matrix).all():
            raise _Slow
        return matrix

    def _records_view(self, batch: Batch) -> tuple[list[Any], list[dict[str, Any]]]:
        """(errors about the batch's shape, the batch as records) for the slow path."""
        errors: list[dict[str, Any]] = []
        if isinstance(batch, Records):
            return errors, batch.items
        columns = batch.columns if batch.columns is not None else self.names
        if batch.columns is not None:
            loc = [*batch.loc[:-1], "columns"] if batch.loc[-1:] == ("data",) else list(batch.loc)
            for name in sorted(self._required - set(columns)):
                errors.append({"loc": [*loc, safe_name(name)], "msg": "column required"})
            for name in [c for c in columns if c not in self._nameset]:
                errors.append({"loc": [*loc, safe_name(name)], "msg": "unknown column"})
        records: list[Any] = []
        for i, row in enumerate(batch.items):
            if not isinstance(row, list):
                errors.append(
                    {"loc": [*batch.loc, i], "msg": f"expected an array, got {json_type(row)}"}
                )
                records.append(_REPORTED)
            elif len(row) != len(columns):
                errors.append(
                    {
                        "loc": [*batch.loc, i],
                        "msg": f"expected {len(columns)} values, got {len(row)}",
                    }
                )
                records.append(_REPORTED)
            else:
                records.append(
                    {c: v for c, v in zip(columns, row, strict=True) if c in self._nameset}
                )
        return errors, records

    def _valid_records(self, batch: Batch) -> list[dict[str, Any]]:
        """The batch as records, or InvalidInput naming every problem (up to 20)."""
        errors, records = self._records_view(batch)
        from_rows = isinstance(batch, Rows)
        for i, rec in enumerate(records):
            if len(errors) >= MAX_ERRORS:
                break
            base: list[Any] = (
                list(batch.loc) if getattr(batch, "single", False) else [*batch.loc, i]
            )
            if rec is _REPORTED:
                continue
            if not isinstance(rec, dict):
                errors.append({"loc": base, "msg": f"expected an object, got {json_type(rec)}"})
                continue
            if not from_rows:
                for name in sorted(self._required - rec.keys()):
                    errors.append({"loc": [*base, safe_name(name)], "msg": "field required"})
                for name in [k for k in rec if k not in self._nameset]:
                    errors.append({"loc": [*base, safe_name(str(name))], "msg": "unknown field"})
            for name, value in rec.items():
                column = self._by_name.get(name)
                if column is not None and (problem := _value_error(column, value)):
                    errors.append({"loc": [*base, safe_name(name)], "msg": problem})
        if errors:
            errors = errors[:MAX_ERRORS]
            raise InvalidInput(summarize(errors), errors)
        return records

    def _frame(self, records: list[dict[str, Any]]) -> pd.DataFrame:
        frame = pd.DataFrame.from_records(records, columns=list(self.names))
        for column in self.columns:
            dtype = _DTYPES[column.kind]
            if column.required or dtype in ("object", "datetime64[ns]"):
                frame[column.name] = frame[column.name].astype(dtype)  # type: ignore[call-overload]
        return frame

    # -- description ---------------------------------------------------------------------

    def record_json_schema(self, example: dict[str, Any] | None = None) -> dict[str, Any]:
        """JSON Schema of one record, for the OpenAPI document."""
        properties: dict[str, Any] = {}
        for column in self.columns:
            prop: dict[str, Any] = dict(_JSON_SCHEMA[column.kind])
            if not column.required:
                prop = {"anyOf": [prop, {"type": "null"}]}
            properties[column.name] = prop
        schema: dict[str, Any] = {
            "type": "object",
            "properties": properties,
            "required": [c.name for c in self.columns if c.required],
            "additionalProperties": not self.signed,
        }
        if example:
            schema["example"] = example
        return schema

    def describe(self) -> list[dict[str, Any]]:
        return [{"name": c.name, "type": c.kind, "required": c.required} for c in self.columns]
