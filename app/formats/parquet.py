"""`application/vnd.apache.parquet` bodies (MLflow's scoring server takes them on
POST /invocations): a DataFrame as `DataFrame.to_parquet()` writes it, read with pyarrow (imported
at the first such body) into the same normalized batch a JSON body becomes (`Rows`, named
columns), so the model's schema checks its values as it checks JSON's."""

from __future__ import annotations

import io
from typing import Any

from app.errors import InvalidInput, summarize
from app.formats.payload import Rows, check_size

LOC = ("parquet",)


def _invalid(msg: str) -> InvalidInput:
    details: list[dict[str, Any]] = [{"loc": list(LOC), "msg": msg}]
    return InvalidInput(summarize(details), details)


def read_parquet(body: bytes, max_rows: int) -> Rows:
    """The Parquet body's rows under its column names (InvalidInput says what is wrong)."""
    import pyarrow.parquet as pq

    if not body:
        raise _invalid("empty body: send a DataFrame written with to_parquet()")
    try:
        table = pq.read_table(io.BytesIO(body))
    except Exception:  # pyarrow's many errors for bytes that are not a Parquet file
        raise _invalid("not a Parquet file: send a DataFrame written with to_parquet()") from None
    check_size(table.num_rows, list(LOC), max_rows)
    names = [str(n) for n in table.column_names if not str(n).startswith("__index_level_")]
    if len(set(names)) != len(names):
        raise _invalid("duplicate column names")
    columns = [table.column(n).to_pylist() for n in names]
    rows = [list(row) for row in zip(*columns, strict=True)]
    return Rows(rows, tuple(names), LOC)
