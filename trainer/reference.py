"""What a run keeps of its training rows for monitoring: the drift baseline and the rows.

Pure functions of the training part of the split (no MLflow here); trainer/tracking.py logs
their results with the model. The baseline's format and bin rule are model_serving.baseline's.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from model_serving import baseline as fmt

TRAINING_ROWS = "reference/training.csv"
"""Run artifact: the training rows (features, then the label column), read by `report`."""

DECILES = np.linspace(0.1, 0.9, fmt.BINS - 1)


def baseline(x: pd.DataFrame, y: pd.Series) -> dict[str, Any]:
    """The drift baseline of training rows `x` (float features) labelled `y`.

    Per feature: the 9 inner decile edges of the training values and the share of training
    values in each of the 10 bins they make; the training share of each class. Plain Python
    numbers throughout: it goes into the MLmodel file (YAML) and baseline.json.
    """
    features = {}
    for name in x.columns:
        values = x[name].to_numpy(dtype="float64")
        edges = [float(e) for e in np.quantile(values, DECILES)]
        features[str(name)] = {"edges": edges, "shares": fmt.shares(edges, values.tolist())}
    counts = y.astype(str).value_counts(normalize=True, sort=False)
    return {
        "version": fmt.FORMAT_VERSION,
        "rows": len(x),
        "features": features,
        "classes": {str(label): float(share) for label, share in sorted(counts.items())},
    }


def training_rows(x: pd.DataFrame, y: pd.Series) -> pd.DataFrame:
    """The rows the model was fitted on, features then label, as logged to TRAINING_ROWS."""
    return x.assign(**{str(y.name): y.to_numpy()})
