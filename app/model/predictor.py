"""The model contract: what the serving layer needs of a model, whatever loads it.

A `Predictor` loads one model, reports whether it is ready, predicts on what its `schema`
parsed, and describes itself. `app.model.mlflow_model.MlflowPredictor` is the implementation;
tests swap in small fakes that honour the same contract.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Protocol

import numpy as np
import pandas as pd

from app.model.cache import CacheEntry
from app.model.failures import LoadError
from app.model.output import OutputForm
from app.model.schema import InputSchema

__all__ = ["LoadError", "ModelIdentity", "Predictor"]


@dataclass(frozen=True)
class ModelIdentity:
    """Which model: the URI asked for and what it resolved to."""

    uri: str
    name: str
    version: str | None = None
    alias: str | None = None
    run_id: str | None = None
    model_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def label(self) -> str:
        """For log lines: name, version and run."""
        version = f" version {self.version}" if self.version else ""
        return f"{self.name}{version} (run {self.run_id})"


class Predictor(Protocol):
    """What the service needs of a model."""

    identity: ModelIdentity
    schema: InputSchema
    local_dir: str | None
    """The folder of the loaded model's files (what the cache stores), if it has one."""
    metadata: dict[str, Any]
    """The model's own metadata (MLmodel `metadata`: the drift baseline lives there)."""

    @property
    def ready(self) -> bool: ...

    @property
    def is_classifier(self) -> bool:
        """Whether predictions are class labels (per-class metrics then make sense)."""

    def probe(self) -> LoadError | None:
        """Why the servers the model comes from cannot be reached at all, found quickly and
        without loading anything (blocking); None when they can, or are not asked."""

    def resolve(self) -> ModelIdentity:
        """What the URI means now (an alias's current version), without loading (blocking)."""

    def load(self) -> None:
        """Load the model (blocking); raise LoadError on failure."""

    def load_cached(self, entry: CacheEntry) -> None:
        """Load the model from a cache entry (blocking); raise LoadError on failure."""

    def predict(
        self, data: np.ndarray | pd.DataFrame, params: dict[str, Any] | None = None
    ) -> list[Any]:
        """Predictions, in order, for input `self.schema.parse()` produced (thread-safe), with
        the request's checked inference params (None: the model's defaults)."""

    @property
    def output(self) -> OutputForm:
        """The form of the model's own output (what MLflow's scoring server answers keep)."""

    def snapshot(self) -> bytes | None:
        """What the service needs to serve this model again without its library (the cache
        keeps it beside the model's files), or None."""

    def describe(self) -> dict[str, Any]:
        """Everything /model-info shows."""

    def close(self) -> None:
        """Release what load() acquired."""
