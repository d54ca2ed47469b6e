"""`text/csv` bodies (MLflow's scoring server takes them on POST /invocations).

A CSV body is a header of column names and one line per row, comma-separated, as
`DataFrame.to_csv(index=False)` writes it (an index column, whose header cell is empty, as
`to_csv()` writes by default, is dropped). It becomes the same normalized batch a JSON body
does (`app.formats.payload.Rows`, named columns), of text cells; the model's schema types the
cells by its columns (`typed`) and then checks them as it checks JSON values, so a wrong or
missing column, an empty cell for a required one or a cell that is not a number are named
the same way. Fields may be quoted, as `to_csv` quotes a text with a comma or a quote in it.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from app.errors import InvalidInput, summarize
from app.formats.payload import Rows, check_size

LOC = ("csv",)
_BOOLEANS = {"true": True, "false": False}


def _invalid(loc: list[Any], msg: str) -> InvalidInput:
    details = [{"loc": loc, "msg": msg}]
    return InvalidInput(summarize(details), details)


def read_csv(body: bytes, max_rows: int) -> Rows:
    """The CSV body's rows of text cells under its header (InvalidInput says what is wrong)."""
    try:
        text = body.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError:
        raise _invalid([], "body is not UTF-8: send CSV encoded as UTF-8") from None
    try:
        lines = [row for row in csv.reader(io.StringIO(text), strict=True) if row]
    except csv.Error as exc:  # an unterminated quote, a stray quote inside a field
        raise _invalid(list(LOC), f"not valid CSV ({exc})") from None
    if not lines:
        raise _invalid(list(LOC), "empty body: send a header line and at least one row")
    header = [name.strip() for name in lines[0]]
    drop_index = len(header) > 1 and header[0] == ""
    if drop_index:
        header = header[1:]
    if any(not name for name in header):
        raise _invalid([*LOC, "header"], "empty column name")
    if len(set(header)) != len(header):
        raise _invalid([*LOC, "header"], "duplicate column names")
    check_size(len(lines) - 1, list(LOC), max_rows)
    rows = lines[1:]
    if drop_index:
        rows = [row[1:] for row in rows]
    return Rows(rows, tuple(header), LOC, text=True)


def decode_csv(
    order: tuple[str, ...], body: bytes, max_rows: int
) -> tuple[np.ndarray, Rows] | None:
    """A plain CSV body of the model's double columns straight to the float64 matrix in
    `order` (the fitted order), and the batch's location; None for any other body, which
    `read_csv` and the schema then read, with the same answer for a body both take (numpy
    reads a cell as `float()` does)."""
    if b'"' in body:
        return None
    try:
        lines = body.decode("utf-8").splitlines()
    except UnicodeDecodeError:
        return None
    while lines and not lines[-1]:
        lines.pop()
    header, width, n = lines[0].split(",") if lines else [], len(order), len(lines) - 1
    if len(header) != width or set(header) != set(order) or not 0 < n <= max_rows:
        return None
    rows = lines[1:]
    if any(line.count(",") != width - 1 for line in rows):
        return None
    try:
        matrix = np.array(",".join(rows).split(","), dtype=np.float64).reshape(n, width)
    except ValueError:
        return None
    if not np.isfinite(matrix).all():
        return None
    if tuple(header) != order:
        matrix = np.ascontiguousarray(matrix[:, [header.index(name) for name in order]])
    return matrix, Rows([], tuple(header), LOC)


def _number(cell: str) -> Any:
    try:
        return float(cell)
    except ValueError:
        return cell


def _integer(cell: str) -> Any:
    try:
        return int(cell)
    except ValueError:
        number = _number(cell)
        return int(number) if isinstance(number, float) and number.is_integer() else cell


def _boolean(cell: str) -> Any:
    return _BOOLEANS.get(cell.lower(), cell)


_CONVERT: dict[str, Callable[[str], Any]] = {
    "double": _number,
    "float": _number,
    "long": _integer,
    "integer": _integer,
    "boolean": _boolean,
}


def typed(batch: Rows, kinds: Mapping[str, str]) -> Rows:
    """`batch`'s text cells as the values JSON would carry for the columns' `kinds` (the
    signature's types by column name): numbers, integers and booleans where the cell reads as
    one (a cell that does not stays text, for the schema to refuse by name), an empty cell as
    null; text for text columns and for columns the model does not know."""
    assert batch.columns is not None
    converters = [_CONVERT.get(kinds.get(name, "string")) for name in batch.columns]
    rows = []
    for row in batch.items:
        if len(row) != len(converters):
            rows.append(row)  # the schema names the row's width
            continue
        values = []
        for cell, convert in zip(row, converters, strict=True):
            plain = cell.strip()
            values.append(None if plain == "" else convert(plain) if convert else cell)
        rows.append(values)
    return Rows(rows, batch.columns, batch.loc)
