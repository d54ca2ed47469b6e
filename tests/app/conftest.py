"""A real model trained by the trainer CLI into a temporary MLflow store, and app clients on it."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import mlflow.artifacts
import pytest
import yaml
from fastapi.testclient import TestClient

from app.api.application import create_app
from app.settings import Settings
from model_serving import baseline
from tests.iris import IRIS_EXAMPLE, iris_data
from tests.servers import python_env, run_cli

__all__ = ["IRIS_EXAMPLE"]  # the tests of app/ import the example from here too


@dataclass(frozen=True)
class TrainedModel:
    tracking_uri: str
    workdir: Path
    run_id: str
    runs_uri: str
    alias_uri: str
    version_uri: str
    metrics: dict[str, float]


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> TrainedModel:
    """`python -m trainer train --register --alias champion --json` into a fresh SQLite store."""
    workdir = tmp_path_factory.mktemp("store")
    tracking_uri = f"sqlite:///{workdir}/mlflow.db"
    result = run_cli(
        "trainer", "train", "--register", "--alias", "champion", "--json",
        env=python_env({"MLFLOW_TRACKING_URI": tracking_uri}), cwd=workdir,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    return TrainedModel(
        tracking_uri=tracking_uri,
        workdir=workdir,
        run_id=out["run_id"],
        runs_uri=out["model_uri"],
        alias_uri=out["registered_model_uri"],
        version_uri=f"models:/{out['registered_name']}/{out['version']}",
        metrics=out["metrics"],
    )


@pytest.fixture(scope="session")
def reference(trained: TrainedModel) -> Callable[[list[dict[str, float]]], list[Any]]:
    """What `mlflow.pyfunc.load_model(uri).predict` answers for the same records."""
    import mlflow
    import pandas as pd

    mlflow.set_tracking_uri(trained.tracking_uri)
    model = mlflow.pyfunc.load_model(trained.runs_uri)

    def predict(records: list[dict[str, float]]) -> list[Any]:
        return list(model.predict(pd.DataFrame.from_records(records)).tolist())

    return predict


@pytest.fixture(scope="session")
def iris_records() -> list[dict[str, float]]:
    return iris_data()[0]


def wait_ready(client: TestClient, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.get("/readyz").status_code == 200:
            return
        time.sleep(0.05)
    raise AssertionError(f"not ready: {client.get('/readyz').json()}")


AppFactory = Callable[..., Any]


@pytest.fixture(scope="session")
def serve(trained: TrainedModel) -> AppFactory:
    """`with serve(uri, **settings) as client:` a ready app on the real model, lifespan and all."""

    @contextmanager
    def serve_(uri: str | None = None, **overrides: Any) -> Iterator[TestClient]:
        settings = Settings(model_uri=uri or trained.alias_uri, **overrides)
        app = create_app(settings, tracking_uri=trained.tracking_uri)
        with TestClient(app, raise_server_exceptions=False) as client:
            wait_ready(client)
            yield client

    return serve_


@pytest.fixture(scope="module")
def client(serve: AppFactory) -> Iterator[TestClient]:
    """One ready app on models:/sk_model@champion, shared by a test module."""
    with serve(max_request_rows=200, max_body_bytes=64 * 1024) as c:
        yield c


def carried_baseline(trained: TrainedModel) -> dict[str, Any]:
    """The baseline in the served model's MLmodel file."""
    name, version = trained.version_uri.removeprefix("models:/").split("/")
    client = mlflow.MlflowClient(trained.tracking_uri, registry_uri=trained.tracking_uri)
    model_id = str(client.get_model_version(name, version).source).removeprefix("models:/")
    path = mlflow.artifacts.download_artifacts(
        artifact_uri=f"{client.get_logged_model(model_id).artifact_location}/MLmodel"
    )
    return dict(yaml.safe_load(Path(path).read_text())["metadata"][baseline.METADATA_KEY])
