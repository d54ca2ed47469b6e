"""The prediction log's rows as PostgreSQL COPY text: inputs and predictions as JSON, escaped
for COPY's text format, encoded a matrix at a time; timestamps as PostgreSQL reads them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import orjson
import pandas as pd


def frame_matrix(frame: pd.DataFrame) -> tuple[list[str], np.ndarray]:
    """A frame's numeric columns as a float matrix, and their names."""
    numeric = frame.select_dtypes("number")
    return [str(c) for c in numeric.columns], numeric.to_numpy(dtype=np.float64)


def escape(text: str) -> str:
    """JSON text escaped for COPY's text format: orjson writes no raw tab or line break, so
    only a backslash (from an escape in a string) needs doubling."""
    return text.replace("\\", "\\\\") if "\\" in text else text


def frame_inputs(frame: pd.DataFrame) -> list[str]:
    """A frame's rows as the client's records (every input, not only the numeric ones)."""
    records = frame.to_dict(orient="records")
    return [
        escape(orjson.dumps(r, default=str, option=orjson.OPT_SERIALIZE_NUMPY).decode())
        for r in records
    ]


def matrix_inputs(names: list[str], matrix: np.ndarray) -> list[str]:
    """A float matrix's rows as JSON objects keyed by `names`, ready for COPY. One encoding
    of the whole matrix, cut into rows (its numbers hold no bracket or comma), then each
    row's values set into a template of the keys: no dict per row."""
    if not len(matrix):
        return []
    keys = [escape(orjson.dumps(name).decode()) for name in names]
    template = "{" + ",".join(f"{k.replace('%', '%%')}:%s" for k in keys) + "}"
    text = orjson.dumps(
        np.ascontiguousarray(matrix, dtype=np.float64), option=orjson.OPT_SERIALIZE_NUMPY
    )
    return [template % tuple(row.split(",")) for row in text.decode()[2:-2].split("],[")]


_SECONDS: dict[int, str] = {}


def timestamp(at: float) -> str:
    """`at` (Unix time) in ISO 8601 with microseconds and UTC offset, as PostgreSQL reads it;
    the part up to the second is kept per second (it is the same for thousands of rows)."""
    second = int(at)
    prefix = _SECONDS.get(second)
    if prefix is None:
        if len(_SECONDS) > 8:
            _SECONDS.clear()
        prefix = _SECONDS[second] = datetime.fromtimestamp(second, UTC).strftime(
            "%Y-%m-%dT%H:%M:%S"
        )
    return f"{prefix}.{int((at - second) * 1_000_000):06d}+00:00"


def output_texts(predictions: list[Any]) -> list[str]:
    """Each prediction's JSON, escaped for COPY: numbers (most models' answers) in one
    encoding cut at the commas, anything else one at a time."""
    if all(type(p) is int or type(p) is float for p in predictions):
        text = orjson.dumps(predictions).decode()
        return text[1:-1].split(",") if predictions else []
    numpy = orjson.OPT_SERIALIZE_NUMPY
    return [escape(orjson.dumps(p, default=str, option=numpy).decode()) for p in predictions]
