"""A tiny model that honours the Predictor contract (app/model/predictor.py), for tests that need to
control loading or predicting: it takes the iris features and answers each row's sum."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from app.model.cache import CacheEntry
from app.model.output import VALUES
from app.model.predictor import LoadError, ModelIdentity
from app.model.schema import Column, InputSchema
from tests.iris import FEATURES


class FakeModel:
    """Loads at once, predicts the sum of each row; subclasses gate or slow either."""

    identity = ModelIdentity(uri="models:/fake@live", name="fake", version="7")
    schema = InputSchema([Column(name, "double") for name in FEATURES])
    is_classifier = False
    output = VALUES
    local_dir: str | None = None
    metadata: dict[str, Any] = {}

    def __init__(self) -> None:
        self._ready = False

    @property
    def ready(self) -> bool:
        return self._ready

    def probe(self) -> LoadError | None:
        return None

    def resolve(self) -> ModelIdentity:
        return self.identity

    def load(self) -> None:
        self._ready = True

    def load_cached(self, entry: CacheEntry) -> None:
        self.load()

    def predict(self, data: np.ndarray | pd.DataFrame, params: Any = None) -> list[Any]:
        return [float(row.sum()) for row in np.asarray(data)]

    def snapshot(self) -> bytes | None:
        return None

    def describe(self) -> dict[str, Any]:
        return {**self.identity.as_dict(), "load_seconds": 0.01}

    def close(self) -> None:
        self._ready = False
