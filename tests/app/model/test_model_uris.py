"""Every URI MLflow loads a model from is served; one it cannot load is refused with its reason.

The registry-backed kinds (runs:/, models:/name@alias, models:/name/version, models:/<id>)
and the stores' own schemes (s3://, mlflow-artifacts:/) are served against real servers in
tests/integration/test_full_stack.py; here, the local ones: a folder, as `mlflow models serve
-m <folder>` takes it, and file://.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mlflow
import pytest
from mlflow import MlflowClient

from tests.app.conftest import IRIS_EXAMPLE, AppFactory, TrainedModel
from tests.servers import free_port, python_env, run_cli, running

MLFLOW_VARS = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")


def _logged_model(trained: TrainedModel) -> Any:
    client = MlflowClient(tracking_uri=trained.tracking_uri)
    experiment = client.get_run(trained.run_id).info.experiment_id
    (logged,) = client.search_logged_models(
        experiment_ids=[experiment], filter_string=f"source_run_id = '{trained.run_id}'"
    )
    return logged


@pytest.fixture(scope="module")
def model_folder(trained: TrainedModel, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The trained model's files in a plain folder, outside any MLflow store."""
    dst = tmp_path_factory.mktemp("exported")
    location = _logged_model(trained).artifact_location  # where the files are, by the store
    local = mlflow.artifacts.download_artifacts(artifact_uri=location, dst_path=str(dst / "m"))
    assert (Path(local) / "MLmodel").is_file()
    return Path(local)


def test_a_local_folder_serves_with_no_tracking_store_at_all(
    model_folder: Path,
    trained: TrainedModel,
    reference: Callable[[list[dict[str, float]]], list[Any]],
    iris_records: list[dict[str, float]],
    tmp_path: Path,
) -> None:
    port = free_port()
    env = python_env({"MODEL_URI": str(model_folder)}, drop=MLFLOW_VARS)
    args = [sys.executable, "-m", "app", "--port", str(port)]
    with running(args, env, tmp_path / "app.log", cwd=tmp_path) as server:
        server.wait_http(f"http://127.0.0.1:{port}/readyz", timeout=60)
        import httpx

        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            answer = client.post("/predict", json={"records": iris_records})
            info = client.get("/model-info").json()
    assert answer.status_code == 200, answer.text
    assert answer.json()["predictions"] == reference(iris_records)
    assert info["uri"] == str(model_folder)
    assert info["run_id"] == trained.run_id  # from the model's own MLmodel file
    assert info["version"] is None
    assert not (tmp_path / ".mlflow").exists(), "serving a folder created a tracking store"


def test_file_uri_serves_and_reload_keeps_it_pinned(
    serve: AppFactory, model_folder: Path, reference: Callable[..., list[Any]]
) -> None:
    uri = model_folder.as_uri()
    assert uri.startswith("file:///")
    with serve(uri, api_key="uri-test-key-0123456789") as client:
        key = {"Authorization": "Bearer uri-test-key-0123456789"}
        answer = client.post("/predict", json=IRIS_EXAMPLE, headers=key)
        reload = client.post("/admin/reload", headers=key)
    assert answer.json()["predictions"] == reference([IRIS_EXAMPLE])
    assert answer.json()["model"]["uri"] == uri
    assert reload.status_code == 200
    assert reload.json()["status"] == "unchanged"  # a folder names one fixed model


def test_a_logged_model_id_serves_under_its_logged_name(
    serve: AppFactory, trained: TrainedModel
) -> None:
    logged = _logged_model(trained)
    with serve(f"models:/{logged.model_id}") as app:
        info = app.get("/model-info").json()
    assert (info["name"], info["model_id"], info["run_id"]) == (
        "sk_model", logged.model_id, trained.run_id,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("uri", "reason"),
    [
        ("nosuchscheme://somewhere/model", "Could not find a registered artifact repository"),
        ("/nonexistent/folder/model", "No such artifact"),
    ],
)
def test_a_uri_mlflow_cannot_load_stops_the_start_with_its_reason_in_one_line(
    uri: str, reason: str, tmp_path: Path
) -> None:
    result = run_cli(
        "app", env=python_env({"MODEL_URI": uri}, drop=MLFLOW_VARS), cwd=tmp_path, timeout=90
    )
    assert result.returncode == 1
    giving_up = [ln for ln in result.stderr.splitlines() if "giving up" in ln]
    assert len(giving_up) == 1, result.stderr
    assert reason in giving_up[0]
    assert "Traceback" not in result.stderr
