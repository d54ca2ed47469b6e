"""A model's output: one item per input row for every answer (`rows`), and the form the model
gave it in (`OutputForm`), which MLflow's scoring server keeps in its answer.

Every door answers one prediction per input row, so that micro-batching can split a batch's
output among its requests: an array gives its values or rows, a DataFrame its one column's
values or, with several columns, its records, a dict of columns its records. MLflow's
`POST /invocations` answers the form instead (`as_mlflow`): an array as a list, a DataFrame or
Series as records (even of one column), a dict of columns as that dict.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from app.errors import PredictionFailed


@dataclass(frozen=True, slots=True)
class OutputForm:
    """`kind`: "values" (an array or list), "frame" (a DataFrame or Series, with its column
    `names`) or "columns" (a dict of columns, with its keys as `names`)."""

    kind: str = "values"
    names: tuple[str, ...] = ()


VALUES = OutputForm()


def form_of(output: Any) -> OutputForm:
    """The form of a model's raw output."""
    if isinstance(output, pd.DataFrame):
        return OutputForm("frame", tuple(str(c) for c in output.columns))
    if isinstance(output, pd.Series):
        return OutputForm("frame", (str(0 if output.name is None else output.name),))
    if isinstance(output, dict):
        return OutputForm("columns", tuple(str(k) for k in output))
    return VALUES


def rows(output: Any) -> list[Any]:
    """One item per input row, from any output a model gives."""
    if isinstance(output, np.ndarray):
        return list(output.tolist())
    if isinstance(output, pd.DataFrame):
        if output.shape[1] == 1:
            return output.iloc[:, 0].tolist()
        return output.to_dict(orient="records")
    if isinstance(output, pd.Series):
        return output.tolist()
    if isinstance(output, dict):
        try:
            frame = pd.DataFrame({str(k): np.asarray(v).tolist() for k, v in output.items()})
        except ValueError:  # scalars, or columns of different lengths
            raise PredictionFailed(
                "the model answered a dict that is not one column per key of one value per row"
            ) from None
        return frame.to_dict(orient="records")
    return list(output)


def as_mlflow(predictions: list[Any], form: OutputForm) -> Any:
    """What MLflow's scoring server puts under "predictions" for output of this form, from
    the per-row items `rows` made of it."""
    if form.kind == "frame" and len(form.names) == 1:
        (name,) = form.names
        return [{name: value} for value in predictions]
    if form.kind == "columns":
        return {name: [row[name] for row in predictions] for name in form.names}
    return predictions
