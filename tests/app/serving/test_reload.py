"""Reloading a new model version without a restart: admin API, alias polling, failures."""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from app.api.application import create_app
from app.settings import Settings
from tests.app.conftest import IRIS_EXAMPLE, wait_ready
from tests.servers import python_env, run_cli, wait_for

KEY = "test-admin-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}


class Store:
    """A fresh MLflow store where the trainer CLI can register new versions of sk_model."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.tracking_uri = f"sqlite:///{workdir}/mlflow.db"

    def train(self, *extra: str) -> dict[str, Any]:
        result = run_cli(
            "trainer", "train", "--register", "--alias", "champion", "--json", *extra,
            env=python_env({"MLFLOW_TRACKING_URI": self.tracking_uri}), cwd=self.workdir,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        out: dict[str, Any] = json.loads(result.stdout)
        return out

    def model_dir(self, version: str) -> Path:
        import mlflow

        client = mlflow.MlflowClient(self.tracking_uri, registry_uri=self.tracking_uri)
        uri = client.get_model_version_download_uri("sk_model", version)
        return Path(uri.removeprefix("file://"))


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    store = Store(tmp_path_factory.mktemp("reload-store"))
    store.train()
    return store


def _client(store: Store, **overrides: Any) -> TestClient:
    settings = Settings(model_uri="models:/sk_model@champion", api_key=SecretStr(KEY), **overrides)
    app = create_app(settings, tracking_uri=store.tracking_uri)
    return TestClient(app, raise_server_exceptions=False)


@pytest.fixture
def served(store: Store) -> Iterator[TestClient]:
    with _client(store, predict_public=True) as client:
        wait_ready(client)
        yield client


def _version(client: TestClient) -> str:
    return str(client.get("/model-info").json()["version"])


def test_reload_swaps_in_the_version_the_alias_now_names(store: Store, served: TestClient) -> None:
    before = _version(served)
    assert served.post("/admin/reload", headers=AUTH).json()["status"] == "unchanged"
    new = store.train("--C", "0.5")
    answer = served.post("/admin/reload", headers=AUTH)
    assert answer.status_code == 200
    body = answer.json()
    assert body["status"] == "reloaded"
    assert body["previous"]["version"] == before
    assert body["model"]["version"] == new["version"] != before
    assert _version(served) == new["version"]
    assert served.get("/model-info").json()["run_id"] == new["run_id"]
    predicted = served.post("/predict", json=IRIS_EXAMPLE).json()
    assert predicted["model"]["version"] == new["version"]
    metrics = served.get("/metrics", headers=AUTH).text
    assert 'model_reloads_total{result="success"} 1.0' in metrics
    assert 'model_reloads_total{result="unchanged"} 1.0' in metrics
    assert f'version="{new["version"]}"' in metrics


def test_requests_during_a_reload_all_succeed_each_from_one_model(
    store: Store, served: TestClient
) -> None:
    store.train("--C", "0.3")
    # Each hammering thread's answers, in the order it sent its requests (one at a time).
    answers: list[list[tuple[int, str | None]]] = [[] for _ in range(4)]
    stop = threading.Event()

    def hammer(mine: list[tuple[int, str | None]]) -> None:
        while not stop.is_set():
            response = served.post("/predict", json={"records": [IRIS_EXAMPLE] * 20})
            version = response.json()["model"]["version"] if response.status_code == 200 else None
            mine.append((response.status_code, version))

    threads = [threading.Thread(target=hammer, args=(mine,)) for mine in answers]
    for t in threads:
        t.start()
    try:
        wait_for(lambda: all(len(mine) >= 3 for mine in answers), what="3 answers per thread")
        before = [len(mine) for mine in answers]
        reload = served.post("/admin/reload", headers=AUTH)
        after = [len(mine) for mine in answers]
        # Each thread's next request but one began after the reload had answered.
        wait_for(
            lambda: all(len(m) >= n + 2 for m, n in zip(answers, after, strict=True)),
            what="2 answers per thread after the reload",
        )
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    assert reload.json()["status"] == "reloaded"
    assert all(status == 200 for mine in answers for status, _ in mine)
    old, new = reload.json()["previous"]["version"], reload.json()["model"]["version"]
    assert {v for mine in answers for _, v in mine} == {old, new}
    for mine, n_before, n_after in zip(answers, before, after, strict=True):
        versions = [v for _, v in mine]
        assert set(versions[:n_before]) == {old}, "before the reload, the old model answered"
        assert set(versions[n_after + 1 :]) == {new}, "after it, the new one"
        switch = versions.index(new)
        assert set(versions[switch:]) == {new}, f"a thread went back to the old model: {versions}"


def test_a_failed_reload_keeps_the_old_model_serving_and_says_why(
    store: Store, served: TestClient
) -> None:
    before = _version(served)
    broken = store.train("--C", "0.7")
    shutil.rmtree(store.model_dir(broken["version"]))  # its files are gone: it cannot load
    answer = served.post("/admin/reload", headers=AUTH)
    assert answer.status_code == 502
    error = answer.json()["error"]
    assert error["code"] == "reload_failed"
    assert f"still serving sk_model version {before}" in error["message"]
    assert _version(served) == before
    assert served.post("/predict", json=IRIS_EXAMPLE).status_code == 200
    assert 'model_reloads_total{result="failure"} 1.0' in served.get("/metrics", headers=AUTH).text
    store.train()  # leave the alias on a loadable version for the next tests


def test_alias_polling_picks_up_a_new_version(store: Store) -> None:
    with _client(store, model_reload_interval=0.3, predict_public=True) as client:
        wait_ready(client)
        before = _version(client)
        new = store.train("--C", "0.9")
        deadline = time.monotonic() + 20
        while _version(client) == before and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _version(client) == new["version"]


def test_a_uri_that_pins_one_model_is_unchanged_on_reload() -> None:
    from app.model.predictor import ModelIdentity
    from app.serving.slot import same_model

    serving = ModelIdentity("models:/m-1", "m-1", None, None, "run-a", "m-1")
    assert same_model(ModelIdentity("models:/m-1", "m-1"), serving)  # resolves to no version
    runs = ModelIdentity("runs:/run-a/m", "m", run_id="run-a")
    assert same_model(runs, serving)
    alias_v1 = ModelIdentity("models:/sk@c", "sk", "1", "c", "run-a")
    alias_v2 = ModelIdentity("models:/sk@c", "sk", "2", "c", "run-b")
    assert same_model(alias_v1, alias_v1)
    assert not same_model(alias_v2, alias_v1)
