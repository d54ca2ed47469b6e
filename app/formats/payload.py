"""The wire formats /predict accepts, reduced to one of two shapes before validation.

Accepted bodies (JSON objects):
- one record: `{"sepal_length": 6.7, ...}` keyed by the model's input names;
- many: `{"records": [{...}, ...]}`;
- MLflow's scoring formats, so MLflow clients work unchanged: `dataframe_split`
  (`{"columns": [...], "data": [[...], ...]}`), `dataframe_records` (`[{...}, ...]`),
  `instances` and `inputs` (a list of records, a list of rows, or a dict of columns).

`FORMATS` is the one table of them: each entry reads its body and describes it for the
OpenAPI document. Everything becomes either *records* (a list of objects) or *rows* (a list
of arrays with the column names they are in), plus where in the body they came from, for
error locations.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from app.errors import InvalidInput, summarize

# Inference params beside the data (MLflow's `params`), for a model whose signature has them.
_PARAMS_KEY = "params"


@dataclass(frozen=True, slots=True)
class Records:
    items: list[Any]
    loc: tuple[str, ...]
    single: bool = False
    params: dict[str, Any] | None = None
    """The body's inference params, as sent (the model's params schema checks them)."""


@dataclass(frozen=True, slots=True)
class Rows:
    items: list[Any]
    columns: tuple[str, ...] | None  # None: positional, in the schema's order
    loc: tuple[str, ...]
    text: bool = False
    """The values are text cells (a CSV body), typed by the schema's columns
    (`app.formats.csv.typed`) before they are checked."""
    params: dict[str, Any] | None = None
    """The body's inference params, as sent (the model's params schema checks them)."""


Batch = Records | Rows


def _invalid(loc: list[Any], msg: str) -> InvalidInput:
    details = [{"loc": loc, "msg": msg}]
    return InvalidInput(summarize(details), details)


def safe_name(name: object) -> str:
    """A client-sent name fit to quote in an error: ASCII-escaped, at most 64 characters."""
    text = str(name).encode("ascii", "backslashreplace").decode("ascii")
    return text if len(text) <= 64 else text[:61] + "..."


def json_type(value: Any) -> str:
    """The JSON name of a parsed value's type, for messages that must not echo the value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def check_size(n: int, loc: list[Any], max_rows: int) -> None:
    if n == 0:
        raise _invalid(loc, "empty batch: send at least one record")
    if n > max_rows:
        raise _invalid(loc, f"batch of {n} records is over the limit of {max_rows}")


def _list_of(value: Any, loc: list[Any], max_rows: int) -> list[Any]:
    if not isinstance(value, list):
        raise _invalid(loc, f"expected an array of records, got {json_type(value)}")
    check_size(len(value), loc, max_rows)
    return value


def _split(value: Any, max_rows: int) -> Rows:
    loc = ["dataframe_split"]
    if not isinstance(value, dict):
        raise _invalid(loc, f"expected an object with 'columns' and 'data', got {json_type(value)}")
    unknown = set(value) - {"columns", "data", "index"}
    if unknown:
        raise _invalid(loc, f"unknown key(s): {', '.join(sorted(map(safe_name, unknown)))}")
    if "data" not in value:
        raise _invalid([*loc, "data"], "field required")
    data = _list_of(value["data"], [*loc, "data"], max_rows)
    columns = value.get("columns")
    if columns is None:
        return Rows(data, None, ("dataframe_split", "data"))
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
        raise _invalid([*loc, "columns"], "expected an array of column names")
    if len(set(columns)) != len(columns):
        raise _invalid([*loc, "columns"], "duplicate column names")
    return Rows(data, tuple(columns), ("dataframe_split", "data"))


def _tensor_like(key: str, value: Any, max_rows: int) -> Batch:
    """`instances` / `inputs`: records, rows, a dict of columns, or one record as a dict."""
    if isinstance(value, dict):
        if value and all(isinstance(v, list) for v in value.values()):
            lengths = {len(v) for v in value.values()}
            if len(lengths) != 1:
                raise _invalid([key], "columns have different lengths")
            n = lengths.pop()
            check_size(n, [key], max_rows)
            names = tuple(value)
            columns = [value[name] for name in names]
            return Rows([list(r) for r in zip(*columns, strict=True)], names, (key,))
        return Records([value], (key,), single=True)
    items = _list_of(value, [key], max_rows)
    if isinstance(items[0], list):
        return Rows(items, None, (key,))
    return Records(items, (key,))


def _records(key: str) -> Callable[[Any, int], Batch]:
    def read(value: Any, max_rows: int) -> Batch:
        return Records(_list_of(value, [key], max_rows), (key,))

    return read


def _tensor(key: str) -> Callable[[Any, int], Batch]:
    return lambda value, max_rows: _tensor_like(key, value, max_rows)


Schema = dict[str, Any]
_RECORD: Schema = {"$ref": "#/components/schemas/Record"}
_RECORDS: Schema = {"type": "array", "items": _RECORD, "minItems": 1}


def _row(names: list[str]) -> Schema:
    return {"type": "array", "minItems": len(names), "maxItems": len(names)}


def _split_schema(names: list[str]) -> Schema:
    return {
        "type": "object",
        "properties": {
            "columns": {
                "type": "array",
                "items": {"type": "string", "enum": names},
                "uniqueItems": True,
            },
            "data": {"type": "array", "items": _row(names), "minItems": 1},
        },
        "required": ["columns", "data"],
        "additionalProperties": False,
    }


@dataclass(frozen=True, slots=True)
class Format:
    """One accepted body: `{key: value}`, read into a Batch and documented by `schema`."""

    key: str
    read: Callable[[Any, int], Batch]
    schema: Callable[[list[str]], Schema]


FORMATS: tuple[Format, ...] = (
    Format("records", _records("records"), lambda names: _RECORDS),
    Format("dataframe_split", _split, _split_schema),
    Format("dataframe_records", _records("dataframe_records"), lambda names: _RECORDS),
    Format("instances", _tensor("instances"), lambda names: _RECORDS),
    Format("inputs", _tensor("inputs"), lambda names: _RECORDS),
)
"""Besides these, a body that is one record (an object keyed by the model's input names)."""
_BY_KEY = {f.key: f for f in FORMATS}


def normalize(payload: Any, max_rows: int) -> Batch:
    """Recognise the body's format; check it is non-empty and within the row limit."""
    if not isinstance(payload, dict):
        raise _invalid([], f"expected a JSON object, got {json_type(payload)}")
    keys = [k for k in _BY_KEY if k in payload]
    if not keys:
        if not payload:
            raise _invalid([], 'empty object: send a record or {"records": [...]}')
        return Records([payload], (), single=True)
    if len(keys) > 1:
        raise _invalid([], f"send one of {', '.join(keys)}, not several")
    key = keys[0]
    extra = set(payload) - {key, _PARAMS_KEY}
    if extra:
        raise _invalid(
            [], f"unknown key(s) beside '{key}': {', '.join(sorted(map(safe_name, extra)))}"
        )
    return _with_params(_BY_KEY[key].read(payload[key], max_rows), payload.get(_PARAMS_KEY))


def _with_params(batch: Batch, params: Any) -> Batch:
    if params is None or params == {}:
        return batch
    if not isinstance(params, dict):
        raise _invalid([_PARAMS_KEY], f"expected an object, got {json_type(params)}")
    return replace(batch, params=params)


MLFLOW_KEYS = ("dataframe_split", "dataframe_records", "instances", "inputs")
"""The body formats of MLflow's scoring server (`POST /invocations`)."""


def normalize_mlflow(payload: Any, max_rows: int) -> Batch:
    """An MLflow scoring-server JSON body: exactly one of `MLFLOW_KEYS`, with optional
    `params`; as MLflow's server does, other keys are ignored."""
    if not isinstance(payload, dict):
        raise _invalid([], f"expected a JSON object, got {json_type(payload)}")
    keys = [k for k in MLFLOW_KEYS if k in payload]
    if len(keys) != 1:
        found = "several" if keys else "none"
        raise _invalid([], f"send exactly one of {', '.join(MLFLOW_KEYS)} (found {found})")
    return _with_params(_BY_KEY[keys[0]].read(payload[keys[0]], max_rows), payload.get(_PARAMS_KEY))


def request_schemas(record: Schema, names: list[str]) -> dict[str, Schema]:
    """OpenAPI components for /predict's body, from the loaded model's record schema."""
    alternatives = [_RECORD] + [
        {
            "type": "object",
            "title": f.key,
            "properties": {f.key: f.schema(names)},
            "required": [f.key],
            "additionalProperties": False,
        }
        for f in FORMATS
    ]
    mlflow = [
        {
            "type": "object",
            "title": f.key,
            "properties": {f.key: f.schema(names), _PARAMS_KEY: {"type": "object"}},
            "required": [f.key],
        }
        for f in FORMATS
        if f.key in MLFLOW_KEYS
    ]
    return {
        "Record": record,
        "InvocationsRequest": {
            "title": "InvocationsRequest",
            "description": "One of MLflow's formats: " + ", ".join(MLFLOW_KEYS) + ".",
            "oneOf": mlflow,
        },
        "PredictRequest": {
            "title": "PredictRequest",
            "description": "One record, or one of: " + ", ".join(f.key for f in FORMATS) + ".",
            "oneOf": alternatives,
            "example": record.get("example") or {},
        },
    }
