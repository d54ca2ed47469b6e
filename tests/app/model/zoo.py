"""A model zoo beyond iris, trained and logged once per session into its own SQLite store:
a regression forest, a pipeline one-hot-encoding a string column beside integer and float
columns, a classifier whose pyfunc answers predict_proba (2-D output), a custom
`mlflow.pyfunc.PythonModel` answering a DataFrame and taking params, one answering a dict of
columns, and a model logged without a signature."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from app.api.application import create_app
from app.settings import Settings
from tests.app.conftest import wait_ready

FLOAT_NAMES = ("a", "b", "c")
MIXED_NAMES = ("color", "count", "size")
TREE_TYPES = ["sklearn.tree._tree.Tree"]


@dataclass(frozen=True)
class ZooModel:
    name: str
    uri: str
    frame: pd.DataFrame
    """Rows to predict on (a few of the training rows and some it has not seen)."""
    has_signature: bool = True
    v2: bool = True
    """Whether the V2 lane can carry its inputs (numeric columns only)."""


@dataclass(frozen=True)
class Zoo:
    tracking_uri: str
    models: dict[str, ZooModel]

    def pyfunc(self, name: str) -> Any:
        import mlflow

        previous = mlflow.get_tracking_uri()
        mlflow.set_tracking_uri(self.tracking_uri)
        try:
            return mlflow.pyfunc.load_model(self.models[name].uri)
        finally:
            mlflow.set_tracking_uri(previous)

    @contextmanager
    def serve(self, name: str, **overrides: Any) -> Iterator[TestClient]:
        settings = Settings(model_uri=self.models[name].uri, **overrides)
        app = create_app(settings, tracking_uri=self.tracking_uri)
        with TestClient(app, raise_server_exceptions=False) as client:
            wait_ready(client)
            yield client


def _floats(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(rng.normal(size=(n, 3)).round(3), columns=list(FLOAT_NAMES))


def _mixed(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "color": rng.choice(["red", "green", "blue"], size=n),
            "count": rng.integers(0, 10, size=n).astype(np.int64),
            "size": rng.normal(size=n).round(3),
        }
    )


class Doubler:
    """The custom model's logic: each row's sum times `scale` (a param, 2 by default), as a
    one-column DataFrame."""

    PARAMS = {"scale": 2.0, "offset": 0}

    @staticmethod
    def predict(frame: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        params = {**Doubler.PARAMS, **(params or {})}
        total = frame[list(FLOAT_NAMES)].sum(axis=1)
        return pd.DataFrame({"score": total * params["scale"] + params["offset"]})


def columns_of(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """The dict-of-columns model's logic: two columns per row."""
    return {"total": frame[list(FLOAT_NAMES)].sum(axis=1).to_numpy(), "a": frame["a"].to_numpy()}


def _uri(info: Any, name: str) -> str:
    return f"runs:/{info.run_id}/{name}"


def _log_all() -> dict[str, ZooModel]:
    import mlflow
    import mlflow.pyfunc
    from mlflow.models import infer_signature
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    class CustomModel(mlflow.pyfunc.PythonModel):  # type: ignore[name-defined]
        def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> Any:
            return Doubler.predict(model_input, params)

    class ColumnsModel(mlflow.pyfunc.PythonModel):  # type: ignore[name-defined]
        def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> Any:
            return columns_of(model_input)

    x, probe = _floats(120, 1), _floats(20, 2)
    y = x["a"] * 2 - x["b"] + np.sin(x["c"])
    labels = (x["a"] + x["b"] > 0).astype(np.int64)
    mixed, mixed_probe = _mixed(120, 3), _mixed(20, 4)
    mixed_y = ((mixed["color"] == "red") ^ (mixed["size"] > 0)).astype(np.int64)
    models: dict[str, ZooModel] = {}
    with mlflow.start_run():
        forest = RandomForestRegressor(n_estimators=10, random_state=0).fit(x, y)
        info = mlflow.sklearn.log_model(
            forest, name="forest", signature=infer_signature(x, forest.predict(x)),
            input_example=x.head(3), skops_trusted_types=TREE_TYPES,
        )  # fmt: skip
        models["forest"] = ZooModel("forest", _uri(info, "forest"), pd.concat([x.head(5), probe]))

        pipeline = Pipeline(
            [
                ("encode", ColumnTransformer(
                    [("onehot", OneHotEncoder(handle_unknown="ignore"), ["color"])],
                    remainder="passthrough",
                )),
                ("classify", LogisticRegression()),
            ]
        ).fit(mixed, mixed_y)  # fmt: skip
        info = mlflow.sklearn.log_model(
            pipeline, name="onehot", signature=infer_signature(mixed, pipeline.predict(mixed)),
            input_example=mixed.head(3),
        )  # fmt: skip
        frame = pd.concat([mixed.head(5), mixed_probe], ignore_index=True)
        models["onehot"] = ZooModel("onehot", _uri(info, "onehot"), frame, v2=False)

        proba = LogisticRegression().fit(x, labels)
        info = mlflow.sklearn.log_model(
            proba, name="proba", pyfunc_predict_fn="predict_proba",
            signature=infer_signature(x, proba.predict_proba(x)), input_example=x.head(3),
        )  # fmt: skip
        models["proba"] = ZooModel("proba", _uri(info, "proba"), pd.concat([x.head(5), probe]))

        info = mlflow.pyfunc.log_model(
            name="custom", python_model=CustomModel(), input_example=x.head(3),
            signature=infer_signature(x, Doubler.predict(x), params=Doubler.PARAMS),
        )  # fmt: skip
        models["custom"] = ZooModel("custom", _uri(info, "custom"), probe)

        info = mlflow.pyfunc.log_model(
            name="columns", python_model=ColumnsModel(), signature=infer_signature(x),
            input_example=x.head(3),
        )  # fmt: skip
        models["columns"] = ZooModel("columns", _uri(info, "columns"), probe)

        bare = LogisticRegression().fit(x, labels)
        info = mlflow.sklearn.log_model(bare, name="unsigned")
        models["unsigned"] = ZooModel(
            "unsigned", _uri(info, "unsigned"), probe, has_signature=False
        )
    return models


@pytest.fixture(scope="session")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> Zoo:
    import mlflow

    store: Path = tmp_path_factory.mktemp("zoo")
    tracking_uri = f"sqlite:///{store}/mlflow.db"
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(tracking_uri)
    try:
        mlflow.set_experiment("zoo")
        models = _log_all()
    finally:
        mlflow.set_tracking_uri(previous)
    return Zoo(tracking_uri, models)
