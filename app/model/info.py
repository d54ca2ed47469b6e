"""What /model-info shows of a model: from its MLflow files (`model_info`, `MODEL_INFO_KEYS`,
which the serving file keeps) and from the process serving it (`process_info`)."""

from __future__ import annotations

import logging
import platform
from datetime import UTC, datetime
from importlib import metadata
from typing import Any

import numpy as np
import pandas as pd

from app.model.predictor import ModelIdentity
from app.model.schema import InputSchema

logger = logging.getLogger(__name__)


def process_info(identity: ModelIdentity) -> dict[str, Any]:
    """What /model-info shows of this process's model: identity, when, which versions."""
    return {
        **identity.as_dict(),
        "host": platform.node(),  # a container's id, a pod's name: which replica answers
        "metrics": None,
        "params": None,
        "loaded_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "load_seconds": None,
        "versions": {
            "python": platform.python_version(),
            "mlflow": metadata.version("mlflow-skinny"),
            "scikit_learn": metadata.version("scikit-learn"),
            "numpy": np.__version__,
            "pandas": pd.__version__,
        },
    }


MODEL_INFO_KEYS = (
    "flavor", "flavors", "signature", "input_example", "predict_path", "trained_with",
)  # fmt: skip
"""What /model-info shows that comes from the model's files (the serving file keeps it)."""


def model_info(meta: Any, schema: InputSchema, example: Any, path: str) -> dict[str, Any]:
    return {
        "flavor": "sklearn" if "sklearn" in meta.flavors else "python_function",
        "flavors": sorted(meta.flavors),
        "signature": {
            "inputs": schema.describe(),
            "outputs": meta.signature.outputs.to_dict() if meta.signature.outputs else None,
            "params": schema.params.describe() if schema.params else None,
        }
        if meta.signature
        else None,
        "input_example": example,
        "predict_path": path,
        "trained_with": {
            "mlflow": meta.mlflow_version,
            "scikit_learn": meta.flavors.get("sklearn", {}).get("sklearn_version"),
        },
    }


def input_example(meta: Any, local: str) -> list[dict[str, Any]] | None:
    try:
        example = meta.load_input_example(local)
    except Exception:  # an unreadable example must not stop serving
        logger.warning("could not read the model's input example", exc_info=True)
        return None
    if isinstance(example, pd.DataFrame):
        return example.head(10).to_dict(orient="records")  # type: ignore[return-value]
    return None
