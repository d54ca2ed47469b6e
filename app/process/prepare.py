"""Process-wide side effects, each done in one visible place.

`prepare_process()` runs once when a serving process starts (before the first load):
MLflow's HTTP client defaults and the warning filters. MLflow's process-wide tracking and
registry URIs are never set: every MLflow call names its stores. `freeze_heap()` runs after
each model is swapped in.
"""

from __future__ import annotations

import gc
import os
import warnings

# MLflow's HTTP client retries for minutes on its own; the service has its own retry loop.
MLFLOW_CLIENT_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "15",
}


def prepare_process() -> None:
    for key, value in MLFLOW_CLIENT_DEFAULTS.items():
        os.environ.setdefault(key, value)
    # The fast path feeds a matrix, in the fitted column order, to estimators fitted on
    # DataFrames: scikit-learn's warning about it is noise.
    warnings.filterwarnings("ignore", message="X does not have valid feature names")


def freeze_heap() -> None:
    """Move the long-lived objects (the model, MLflow, sklearn, pandas) out of the cyclic
    collector's way, or every full collection walks them (pauses long enough to show in p99)."""
    gc.unfreeze()  # a replaced model's cycles become collectable again
    gc.collect()
    gc.freeze()
