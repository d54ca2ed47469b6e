"""Shadow models for the tests: mlflow.pyfunc models that answer one class, raise, hang or take
their time."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import pandas as pd
from mlflow.models import infer_signature
from mlflow.pyfunc import PythonModel

from tests.iris import iris_data


class Shadow(PythonModel):
    """Answers `answer` for every row, after `delay` seconds; or raises; or never answers."""

    def __init__(self, answer: int = 0, delay: float = 0.0, mode: str = "answer") -> None:
        self.answer = answer
        self.delay = delay
        self.mode = mode

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> list[int]:
        if self.mode == "raise":
            raise RuntimeError("this shadow model always fails")
        if self.mode == "hang":
            threading.Event().wait()
        if self.delay:
            time.sleep(self.delay)
        return [self.answer] * len(model_input)


def save_shadow(path: Path, model: Shadow) -> str:
    """`model` saved as an MLflow model folder with the iris signature; its URI."""
    frame = pd.DataFrame.from_records(iris_data()[0][:5])
    signature = infer_signature(frame, [0] * len(frame))
    mlflow.pyfunc.save_model(str(path), python_model=model, signature=signature)
    return str(path)


def log_shadow(model: Shadow, name: str) -> str:
    """`model` logged and registered as a new version of `name` (the tracking URI set); the
    version."""
    frame = pd.DataFrame.from_records(iris_data()[0][:5])
    signature = infer_signature(frame, [0] * len(frame))
    info = mlflow.pyfunc.log_model(
        name="model", python_model=model, signature=signature, registered_model_name=name
    )
    return str(info.registered_model_version)
