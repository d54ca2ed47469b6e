"""A model whose signature takes float32 ("float") columns is served, as MLflow serves it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from mlflow.models import infer_signature
from sklearn.datasets import load_iris
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from app.api.application import create_app
from app.settings import Settings
from tests.app.conftest import IRIS_EXAMPLE, wait_ready
from tests.iris import FEATURES


@pytest.fixture(scope="module")
def float32_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    store = tmp_path_factory.mktemp("float32")
    tracking_uri = f"sqlite:///{store}/mlflow.db"
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment("float32")
    frame = load_iris(as_frame=True).data.astype("float32")
    frame.columns = list(FEATURES)
    target = load_iris().target
    model = Pipeline([("scaler", StandardScaler()), ("svc", SVC())]).fit(frame, target)
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(
            model,
            name="m",
            signature=infer_signature(frame, model.predict(frame)),
            input_example=frame.head(5),
        )
    return tracking_uri, info.model_uri


@pytest.fixture
def client(float32_model: tuple[str, str], tmp_path: Path) -> Iterator[TestClient]:
    tracking_uri, uri = float32_model
    app = create_app(
        Settings(model_uri=uri),
        tracking_uri=tracking_uri,
    )
    with TestClient(app) as c:
        wait_ready(c)
        yield c


def test_float32_columns_are_served_with_pyfunc_s_answers(
    client: TestClient, float32_model: tuple[str, str]
) -> None:
    tracking_uri, uri = float32_model
    records = [IRIS_EXAMPLE, {**IRIS_EXAMPLE, "petal_length": 1.4, "petal_width": 0.2}]
    answer = client.post("/predict", json={"records": records})
    assert answer.status_code == 200, answer.text
    mlflow.set_tracking_uri(tracking_uri)
    expected = mlflow.pyfunc.load_model(uri).predict(
        pd.DataFrame.from_records(records).astype("float32")
    )
    assert answer.json()["predictions"] == list(expected)
    info = client.get("/model-info").json()
    assert [c["type"] for c in info["signature"]["inputs"]] == ["float"] * 4
