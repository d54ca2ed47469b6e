"""The input of a model logged without a signature: the body's rows passed through as a
DataFrame, as MLflow's scoring server passes them, with nothing to check them against.

Records become columns by their keys, rows with column names (`dataframe_split`, CSV) those
columns, positional rows (`instances`, `inputs` as arrays) columns 0, 1, ...; CSV cells are
numbers where they read as one, else text. What the model cannot predict on, it refuses
(`app.model.mlflow_model` answers that as invalid input)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from app.errors import InvalidInput, summarize
from app.formats.csv import typed
from app.formats.payload import Batch, Records, json_type


def unsigned_frame(batch: Batch, max_errors: int) -> pd.DataFrame:
    """The batch as the DataFrame MLflow would hand the model (InvalidInput naming up to
    `max_errors` rows of the wrong shape)."""

    def _invalid(details: list[dict[str, Any]]) -> InvalidInput:
        details = details[:max_errors]
        return InvalidInput(summarize(details), details)

    if isinstance(batch, Records):
        wrong = [i for i, r in enumerate(batch.items) if not isinstance(r, dict)]
        if wrong:
            raise _invalid([{"loc": [*batch.loc, i], "msg": "expected an object"} for i in wrong])
        return pd.DataFrame.from_records(batch.items)
    if batch.text and batch.columns is not None:
        batch = typed(batch, dict.fromkeys(batch.columns, "double"))
    width = len(batch.columns) if batch.columns is not None else None
    errors = []
    for i, row in enumerate(batch.items):
        if not isinstance(row, list):
            errors.append(
                {"loc": [*batch.loc, i], "msg": f"expected an array, got {json_type(row)}"}
            )
        elif width is None:
            width = len(row)
        elif len(row) != width:
            errors.append(
                {"loc": [*batch.loc, i], "msg": f"expected {width} values, got {len(row)}"}
            )
    if errors:
        raise _invalid(errors)
    columns = list(batch.columns) if batch.columns is not None else None
    return pd.DataFrame(batch.items, columns=columns)
