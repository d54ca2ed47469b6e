"""Readiness, load failures and retries, with a fake model and with unreachable servers."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.api.application import create_app
from app.model.predictor import LoadError
from app.settings import Settings
from tests.app.conftest import IRIS_EXAMPLE, wait_ready
from tests.app.fakes import FakeModel
from tests.servers import free_port


class GatedModel(FakeModel):
    """The fake model, whose load waits for a gate and fails while `attempts_left`."""

    attempts_left = 0

    def __init__(self, gate: threading.Event) -> None:
        super().__init__()
        self.gate = gate

    def load(self) -> None:
        self.gate.wait(10)
        if GatedModel.attempts_left > 0:
            GatedModel.attempts_left -= 1
            raise LoadError("tracking server unreachable")
        super().load()


def test_unready_until_loaded_while_liveness_answers() -> None:
    gate = threading.Event()
    GatedModel.attempts_left = 0
    app = create_app(
        Settings(model_uri="models:/fake@live"), predictor_factory=lambda: GatedModel(gate)
    )
    with TestClient(app) as client:
        assert client.get("/healthz").status_code == 200
        not_ready = client.get("/readyz")
        assert not_ready.status_code == 503
        assert not_ready.json()["error"]["code"] == "not_ready"
        assert client.get("/ping").status_code == 503
        assert client.post("/predict", json=IRIS_EXAMPLE).status_code == 503
        assert client.get("/model-info").status_code == 503
        gate.set()
        wait_ready(client, timeout=5)
        assert client.get("/ping").status_code == 200
        assert client.post("/predict", json=IRIS_EXAMPLE).json()["predictions"] == [17.8]


def test_transient_load_failures_are_retried_then_serve() -> None:
    gate = threading.Event()
    gate.set()
    GatedModel.attempts_left = 2
    app = create_app(
        Settings(model_uri="models:/fake@live", model_load_timeout=30),
        predictor_factory=lambda: GatedModel(gate),
    )
    with TestClient(app) as client:
        wait_ready(client, timeout=10)
        metrics = client.get("/metrics").text
    assert "model_load_failures_total 2.0" in metrics


def test_missing_model_gives_up_at_once_with_the_reason(tmp_path: Any) -> None:
    fatal = threading.Event()
    store = f"sqlite:///{tmp_path}/empty.db"
    app = create_app(
        Settings(model_uri="models:/nope@champion", model_load_timeout=60),
        tracking_uri=store,
        on_fatal=fatal.set,
    )
    start = time.monotonic()
    with TestClient(app) as client:
        assert fatal.wait(30), "a model that does not exist is not retried for the whole budget"
        readyz = client.get("/readyz").json()
    assert time.monotonic() - start < 30
    assert "nope" in readyz["error"]["message"]


def test_unreachable_tracking_server_is_retried_until_the_budget_then_fatal(
    caplog: pytest.LogCaptureFixture,
) -> None:
    fatal = threading.Event()
    dead = f"http://127.0.0.1:{free_port()}"
    app = create_app(
        Settings(model_uri="models:/sk_model@champion", model_load_timeout=3),
        tracking_uri=dead,
        on_fatal=fatal.set,
    )
    with TestClient(app) as client:
        assert client.get("/readyz").status_code == 503
        assert fatal.wait(20)
        failures = client.get("/metrics").text
    attempts = [
        line for line in failures.splitlines() if line.startswith("model_load_failures_total")
    ]
    assert float(attempts[0].split()[-1]) >= 2, "it retried before giving up"
    giving_up = [r for r in caplog.records if r.getMessage().startswith("giving up")]
    assert len(giving_up) == 1
    assert "not loaded after 3s" in giving_up[0].getMessage()
