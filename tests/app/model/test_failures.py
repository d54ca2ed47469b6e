"""Load, reload and readiness failures read as a cause in words: which server, where, what."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import requests
from botocore.exceptions import ClientError
from mlflow import MlflowClient
from urllib3.connection import HTTPConnection
from urllib3.exceptions import MaxRetryError, NameResolutionError

from app.model.failures import MAX_MESSAGE, LoadError, explain, one_line
from app.model.mlflow_model import MlflowPredictor
from app.process.prepare import prepare_process
from tests.servers import free_port


@pytest.fixture(autouse=True, scope="module")
def _serving_process() -> None:
    prepare_process()  # as every serving process does: MLflow's client does not retry


def explain_load(predictor: MlflowPredictor) -> LoadError:
    with pytest.raises(LoadError) as caught:
        predictor.load()
    return caught.value


def test_a_tracking_server_that_refuses_is_named_with_its_address() -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    error = explain_load(MlflowPredictor("models:/sk_model@champion", tracking_uri=dead))
    assert str(error) == f"tracking server {dead}: connection refused"
    assert error.unreachable and not error.permanent


def test_an_artifact_store_that_refuses_is_named_with_its_endpoint(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("MLFLOW_S3_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    predictor = MlflowPredictor("s3://bucket/models/m-1/artifacts", f"sqlite:///{tmp_path}/m.db")
    error = explain_load(predictor)
    assert str(error) == f"artifact store {endpoint}: connection refused"


def test_a_model_that_does_not_exist_says_so_and_is_not_retried(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path}/empty.db"
    MlflowClient(tracking_uri=store).search_experiments()  # creates the store
    error = explain_load(MlflowPredictor("models:/nope@champion", tracking_uri=store))
    assert "nope" in str(error) and "not found" in str(error)
    assert error.permanent


def test_a_name_that_does_not_resolve_says_so() -> None:
    # The chain requests raises for an unknown host (built from the real classes: resolving
    # a name here would send a query off this machine).
    cause = socket.gaierror(-2, "Name or service not known")
    connection = HTTPConnection("mlflow-server", 5000)  # never connected
    resolution = NameResolutionError("mlflow-server", connection, cause)
    retries = MaxRetryError(None, "/api/2.0/mlflow/registered-models/alias", resolution)  # type: ignore[arg-type]
    exc = requests.ConnectionError(retries)
    error = explain(exc, tracking_uri="http://mlflow-server:5000")
    assert str(error) == "tracking server http://mlflow-server:5000: name not resolved"


def test_access_denied_by_the_artifact_store_names_the_status() -> None:
    exc = ClientError(
        {
            "Error": {"Code": "AccessDenied"},
            "ResponseMetadata": {
                "HTTPStatusCode": 403,
                "RequestId": "r",
                "HostId": "h",
                "HTTPHeaders": {},
                "RetryAttempts": 0,
            },
        },
        "GetObject",
    )
    error = explain(exc)
    assert str(error) == "artifact store: access denied (403)"
    assert error.permanent


def test_long_reasons_stay_on_one_line_and_end_on_a_whole_word() -> None:
    text = "first line:\n" + " ".join(f"word{i}" for i in range(200))
    line = one_line(text)
    assert "\n" not in line and len(line) <= MAX_MESSAGE
    assert line.endswith("…") and line[:-1].split(" ")[-1].startswith("word")
    last = line[:-1].split(" ")[-1]
    assert last in text.split()  # whole, not cut mid-word
