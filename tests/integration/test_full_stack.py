"""End to end, as `docker compose up` runs it: create-bucket, seed-db, mlflow-server on Postgres
with artifacts in S3, trainer, api; then a retrain and roll-out of a new version.

Each flow runs twice (the `tracking` fixture): against compose's server, whose clients write
artifacts to S3 themselves, and against `mlflow server --serve-artifacts` whose clients (the
trainer and the API) have no S3 setting at all.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient
from mlflow.tracking._model_registry import utils as registry_utils
from mlflow.tracking._tracking_service import utils as tracking_utils

from tests.integration.conftest import (
    BUCKET,
    PROXIED_PREFIX,
    TrackingServer,
    assert_port_free,
    check,
    run_service,
)
from tests.integration.local_stack import Endpoints, localize_argv, localize_healthcheck
from tests.iris import FEATURES
from tests.servers import free_port, running
from tests.stack import compose

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

API_START_S = 180.0
S3_SETTINGS = ("MLFLOW_S3_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
# The operations page's roll-out: `docker compose run --rm trainer <this>`, then POST /admin/reload.
ROLLOUT = ["python", "-m", "trainer", "train", "--register", "sk_model", "--alias", "champion"]


@pytest.fixture(scope="module")
def trained(tracking: TrackingServer, services: dict[str, Any], workdir: Path) -> dict[str, Any]:
    """The trainer service's JSON result."""
    service = services["trainer"]
    argv = localize_argv(compose.command(service))
    out = check(run_service(argv, tracking.client_env(service), workdir))
    return json.loads(out)


@pytest.fixture(scope="module")
def rows(seeded: dict[str, Any]) -> pd.DataFrame:
    return pd.DataFrame([row[:4] for row in seeded["rows"]], columns=list(FEATURES))


@contextlib.contextmanager
def api(
    services: dict[str, Any], env: dict[str, str], workdir: Path, name: str
) -> Iterator[tuple[httpx.Client, int]]:
    """The api service (`python -m app`), ready; stopped with its process group afterwards."""
    service = services["api"]
    port = free_port()
    argv = localize_argv(compose.command(service), port=port)
    with running(argv, env, workdir / f"api-{name}.log", cwd=workdir) as server:
        server.wait_http(f"http://127.0.0.1:{port}/readyz", timeout=API_START_S)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            yield client, port
    assert_port_free(port)


def loaded_directly(
    tracking: TrackingServer, uri: str, frame: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> list[Any]:
    """Predictions of `mlflow.pyfunc.load_model(uri)` in this process, against the stack."""
    # Model URIs resolve through MLflow's global tracking/registry URIs; scope them to this test.
    monkeypatch.setattr(tracking_utils, "_tracking_uri", tracking.url)
    monkeypatch.setattr(registry_utils, "_registry_uri", tracking.url)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking.url)
    for name in ("MLFLOW_REGISTRY_URI", *S3_SETTINGS):
        monkeypatch.delenv(name, raising=False)
    if not tracking.proxied:
        monkeypatch.setenv("MLFLOW_S3_ENDPOINT_URL", tracking.endpoints.s3)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    return list(mlflow.pyfunc.load_model(uri).predict(frame).tolist())


# -- the one-shot services -----------------------------------------------------------------------


def test_create_bucket_creates_it_once(bucket: dict[str, str]) -> None:
    assert f"created bucket {BUCKET}" in bucket["first"]
    assert f"bucket {BUCKET} already exists" in bucket["second"]


def test_seed_db_fills_iris_data_once(seeded: dict[str, Any]) -> None:
    assert len(seeded["rows"]) == 150
    assert {row[4] for row in seeded["rows"]} == {0, 1, 2}
    assert "inserted 150 rows" in seeded["first"]
    assert "already has rows" in seeded["second"]


# -- the tracking server -------------------------------------------------------------------------


def test_tracking_server_answers_other_containers_by_service_name(
    tracking: TrackingServer,
) -> None:
    """MLflow 3 rejects unknown Host headers: compose's --allowed-hosts lets the stack in."""
    search = f"{tracking.url}/api/2.0/mlflow/experiments/search?max_results=1"
    inside = httpx.get(search, headers={"Host": "mlflow-server:5000"})
    assert inside.status_code == 200, inside.text
    browser = httpx.get(search, headers={"Host": "localhost:5001"})
    assert browser.status_code == 200, browser.text
    attacker = httpx.get(search, headers={"Host": "attacker.example"})
    assert attacker.status_code == 403


def test_tracking_server_passes_its_compose_healthcheck(
    tracking: TrackingServer, services: dict[str, Any]
) -> None:
    argv = localize_healthcheck(services["mlflow-server"], tracking.port)
    result = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr


# -- training ------------------------------------------------------------------------------------


def test_trainer_logs_registers_and_aliases_the_model(
    trained: dict[str, Any], tracking: TrackingServer
) -> None:
    assert trained["skipped"] is False
    assert trained["model_uri"] == f"runs:/{trained['run_id']}/sk_model"
    assert (trained["registered_name"], trained["alias"]) == ("sk_model", "champion")
    assert trained["metrics"]["valid_acc"] >= 0.9

    client = MlflowClient(tracking_uri=tracking.url, registry_uri=tracking.url)
    run = client.get_run(trained["run_id"])
    assert run.info.status == "FINISHED"
    assert client.get_experiment(run.info.experiment_id).name == "new-exp"
    assert run.data.metrics == pytest.approx(trained["metrics"])
    champion = client.get_model_version_by_alias("sk_model", "champion")
    assert (champion.version, champion.run_id) == (str(trained["version"]), trained["run_id"])


def test_model_files_are_in_the_bucket(
    trained: dict[str, Any], tracking: TrackingServer, s3: Any
) -> None:
    client = MlflowClient(tracking_uri=tracking.url, registry_uri=tracking.url)
    run = client.get_run(trained["run_id"])
    (model,) = client.search_logged_models(
        experiment_ids=[run.info.experiment_id],
        filter_string=f"source_run_id = '{trained['run_id']}'",
    )
    version = client.get_model_version("sk_model", str(trained["version"]))
    assert version.source == f"models:/{model.model_id}", "the version is not this model"
    location = model.artifact_location
    if tracking.proxied:
        # The client only ever saw the server's proxy URI.
        assert location.startswith("mlflow-artifacts:/"), location
        prefix = f"{PROXIED_PREFIX}/{urlsplit(location).path.lstrip('/')}"
    else:
        assert location.startswith(f"s3://{BUCKET}/"), location
        prefix = urlsplit(location).path.lstrip("/")
    listing = s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    files = {obj["Key"].removeprefix(prefix).lstrip("/") for obj in listing.get("Contents", [])}
    assert {"MLmodel", "model.skops", "input_example.json"} <= files, files


# -- serving -------------------------------------------------------------------------------------


def _logged_model(tracking: TrackingServer, run_id: str) -> Any:
    client = MlflowClient(tracking_uri=tracking.url)
    experiment = client.get_run(run_id).info.experiment_id
    (model,) = client.search_logged_models(
        experiment_ids=[experiment], filter_string=f"source_run_id = '{run_id}'"
    )
    return model


# Every kind of model URI the stack can name: a run's model, the alias, a version, the logged
# model's id, and its files where they live (s3:// with direct artifacts; mlflow-artifacts:/
# when the server proxies them).
URI_KINDS = ["run", "champion", "version", "model_id", "storage"]


@pytest.mark.parametrize("which", URI_KINDS)
def test_api_serves_what_mlflow_loads(
    which: str,
    trained: dict[str, Any],
    tracking: TrackingServer,
    services: dict[str, Any],
    rows: pd.DataFrame,
    workdir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    service = services["api"]
    logged = _logged_model(tracking, trained["run_id"])
    uri = {
        "run": f"runs:/{trained['run_id']}/sk_model",
        "champion": compose.environment(service)["MODEL_URI"],  # models:/sk_model@champion
        "version": f"models:/sk_model/{trained['version']}",
        "model_id": f"models:/{logged.model_id}",
        "storage": logged.artifact_location,
    }[which]
    if which == "storage":
        scheme = "mlflow-artifacts:/" if tracking.proxied else f"s3://{BUCKET}/"
        assert uri.startswith(scheme), uri
    env = tracking.client_env(service, MODEL_URI=uri)
    expected = loaded_directly(tracking, uri, rows, monkeypatch)
    # Trained on the latest 100 rows by id (classes 1 and 2 of the seeded iris order).
    assert len(expected) == len(rows) and set(expected) <= {0, 1, 2}

    with api(services, env, workdir, f"{tracking.mode}-{which}") as (client, port):
        healthcheck = localize_healthcheck(service, port)
        assert subprocess.run(healthcheck, capture_output=True, timeout=30).returncode == 0

        many = client.post("/predict", json={"records": rows.to_dict(orient="records")})
        assert many.status_code == 200, many.text
        assert many.json()["predictions"] == expected
        one = client.post("/predict", json=rows.iloc[0].to_dict())
        assert one.status_code == 200, one.text
        assert one.json()["predictions"] == expected[:1]
        assert one.json()["model"]["run_id"] == trained["run_id"]

        info = client.get("/model-info").json()
    assert info["uri"] == uri
    assert info["run_id"] == trained["run_id"]
    assert info["metrics"] == pytest.approx(trained["metrics"])
    assert info["model_id"] == logged.model_id
    if which in ("champion", "version"):
        assert info["name"] == "sk_model"
        assert info["alias"] == ("champion" if which == "champion" else None)
        assert info["version"] == str(trained["version"])
    else:
        assert info["version"] is None  # names no registered version: served pinned
    if which in ("run", "model_id"):
        assert info["name"] == "sk_model"  # the run's name for its model


def test_second_up_keeps_the_model_and_a_rollout_serves_the_new_version(
    trained: dict[str, Any],
    tracking: TrackingServer,
    services: dict[str, Any],
    workdir: Path,
) -> None:
    service = services["trainer"]
    env = tracking.client_env(service)
    # `docker compose up -d` again: the trainer service runs again and must not retrain.
    again = json.loads(check(run_service(localize_argv(compose.command(service)), env, workdir)))
    assert again["skipped"] is True
    assert (str(again["version"]), again["run_id"]) == (str(trained["version"]), trained["run_id"])

    # The operations page's roll-out: retrain (moves champion), then reload the running api.
    api_env = tracking.client_env(services["api"])
    key = api_env["API_KEY"]
    assert key, "the compose file gives the api an API_KEY from .env"
    with api(services, api_env, workdir, f"{tracking.mode}-rollout") as (client, _):
        before = client.get("/model-info").json()
        rolled = check(run_service(localize_argv([*ROLLOUT, "--json"]), env, workdir))
        new = json.loads(rolled)
        assert int(new["version"]) == int(before["version"]) + 1
        assert new["run_id"] != before["run_id"]
        assert client.post("/admin/reload").status_code == 401
        reload = client.post("/admin/reload", headers={"Authorization": f"Bearer {key}"})
        assert reload.status_code == 200, reload.text
        assert reload.json()["status"] == "reloaded"
        info = client.get("/model-info").json()
        served = client.post("/predict", json={"records": [dict.fromkeys(FEATURES, 5.0)]})
    assert (info["version"], info["run_id"]) == (str(new["version"]), new["run_id"])
    assert served.json()["model"]["version"] == str(new["version"])


# -- the api's healthcheck fails while it cannot be ready ---------------------------------------


def test_api_healthcheck_fails_until_the_model_is_loaded(
    services: dict[str, Any], base_endpoints: Endpoints, workdir: Path
) -> None:
    service = services["api"]
    closed = free_port()  # nothing listens: the API keeps retrying, alive but not ready
    endpoints = Endpoints(base_endpoints.s3, f"http://127.0.0.1:{closed}", base_endpoints.databases)
    port = free_port()
    argv = localize_argv(compose.command(service), port=port)
    with running(argv, endpoints.env(service), workdir / "api-unready.log", cwd=workdir) as server:
        server.wait_http(f"http://127.0.0.1:{port}/healthz", timeout=API_START_S)
        assert httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 503
        healthcheck = localize_healthcheck(service, port)
        result = subprocess.run(healthcheck, capture_output=True, text=True, timeout=30)
        assert result.returncode != 0
        assert "503" in result.stderr
    assert_port_free(port)
