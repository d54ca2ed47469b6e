"""API keys, /admin visibility, and the request and body time limits."""

from __future__ import annotations

import json
import logging
import socket
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr, ValidationError

from app.api.application import create_app
from app.model.predictor import ModelIdentity
from app.settings import Settings
from tests.app.conftest import IRIS_EXAMPLE, AppFactory, TrainedModel, wait_ready
from tests.app.fakes import FakeModel
from tests.servers import free_port, python_env, running

KEY = "s3cret-key-for-tests-only"


def test_without_a_key_admin_does_not_exist_and_predict_is_open(client: TestClient) -> None:
    assert client.post("/admin/reload").status_code == 404
    assert "/admin/reload" not in client.get("/openapi.json").json()["paths"]
    assert client.post("/predict", json=IRIS_EXAMPLE).status_code == 200


@pytest.fixture(scope="module")
def keyed(serve: AppFactory) -> Any:
    with serve(api_key=KEY) as c:
        yield c


@pytest.mark.parametrize(
    ("method", "path"), [("POST", "/predict"), ("GET", "/model-info"), ("POST", "/admin/reload")]
)
def test_with_a_key_protected_routes_answer_401_then_403_then_work(
    keyed: TestClient, method: str, path: str
) -> None:
    body = IRIS_EXAMPLE if path == "/predict" else None
    missing = keyed.request(method, path, json=body)
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    assert missing.json()["error"]["code"] == "unauthorized"
    wrong = keyed.request(method, path, headers={"Authorization": "Bearer nope"}, json=body)
    assert wrong.status_code == 403
    assert "nope" not in wrong.text
    basic = keyed.request(method, path, headers={"Authorization": f"Basic {KEY}"}, json=body)
    assert basic.status_code == 401
    right = keyed.request(method, path, headers={"Authorization": f"Bearer {KEY}"}, json=body)
    assert right.status_code == 200


PROBES = ("/healthz", "/readyz", "/ping", "/health", "/version")
OBSERVED = ("/metrics", "/docs", "/redoc", "/openapi.json")


@pytest.mark.parametrize("path", OBSERVED)
def test_with_a_key_metrics_and_docs_answer_401_without_it_and_200_with_it(
    keyed: TestClient, path: str
) -> None:
    missing = keyed.get(path)
    assert missing.status_code == 401
    assert missing.json()["error"]["code"] == "unauthorized"
    assert "sk_model" not in missing.text and "petal" not in missing.text
    assert keyed.get(path, headers={"Authorization": "Bearer nope"}).status_code == 403
    right = keyed.get(path, headers={"Authorization": f"Bearer {KEY}"})
    assert right.status_code == 200
    if path == "/metrics":
        assert "model_info{" in right.text
    elif path == "/openapi.json":
        assert "/predict" in right.json()["paths"]
    else:  # the page loads the document from the guarded path
        assert "/openapi.json" in right.text and "<html" in right.text.lower()


def test_probes_stay_open_with_a_key(keyed: TestClient) -> None:
    for path in PROBES:
        assert keyed.get(path).status_code == 200, path


def test_metrics_public_and_docs_public_open_only_what_they_name(serve: AppFactory) -> None:
    with serve(api_key=KEY, metrics_public=True) as c:
        assert c.get("/metrics").status_code == 200
        assert (
            "security"
            not in c.get("/openapi.json", headers={"Authorization": f"Bearer {KEY}"}).json()[
                "paths"
            ]["/metrics"]["get"]
        )
        assert [c.get(p).status_code for p in ("/docs", "/redoc", "/openapi.json")] == [401] * 3
        assert c.post("/predict", json=IRIS_EXAMPLE).status_code == 401
    with serve(api_key=KEY, docs_public=True) as c:
        assert [c.get(p).status_code for p in ("/docs", "/redoc", "/openapi.json")] == [200] * 3
        assert c.get("/openapi.json").json()["paths"]["/metrics"]["get"]["security"]
        assert c.get("/metrics").status_code == 401
        assert c.post("/admin/reload").status_code == 401


def test_without_a_key_metrics_and_docs_are_open(client: TestClient) -> None:
    for path in (*OBSERVED, *PROBES):
        assert client.get(path).status_code == 200, path


def test_predict_public_keeps_predict_open_but_not_admin(serve: AppFactory) -> None:
    with serve(api_key=KEY, predict_public=True) as c:
        assert c.post("/predict", json=IRIS_EXAMPLE).status_code == 200
        assert c.post("/admin/reload").status_code == 401


def test_a_short_api_key_is_refused_at_start() -> None:
    with pytest.raises(ValidationError, match="at least 16"):
        Settings(model_uri="runs:/abc/m", api_key=SecretStr("short"))


class StuckModel(FakeModel):
    """Honours the Predictor contract; its predict calls wait until `release` is set."""

    identity = ModelIdentity(uri="models:/slow@live", name="slow", version="1")

    def __init__(self) -> None:
        super().__init__()
        self.predicting = threading.Event()
        self.release = threading.Event()

    def predict(self, data: Any, params: Any = None) -> list[Any]:
        self.predicting.set()
        self.release.wait(30)
        return [0] * len(data)


def test_a_request_over_the_timeout_answers_504() -> None:
    model = StuckModel()
    settings = Settings(model_uri="models:/slow@live", request_timeout=0.3)
    with TestClient(create_app(settings, predictor_factory=lambda: model)) as client:
        wait_ready(client)
        start = time.monotonic()
        try:
            answer = client.post("/predict", json=IRIS_EXAMPLE)
            assert time.monotonic() - start < 1.5
            assert model.predicting.is_set(), "the request reached the model"
            assert not model.release.is_set()  # the answer came while the model was stuck
        finally:
            model.release.set()
    assert answer.status_code == 504
    assert answer.json()["error"]["code"] == "timeout"


def test_slow_clients_get_408_and_cannot_pin_the_server(
    trained: TrainedModel, tmp_path: Path
) -> None:
    port = free_port()
    env = python_env(
        {"MLFLOW_TRACKING_URI": trained.tracking_uri, "MODEL_URI": trained.alias_uri,
         "BODY_TIMEOUT": "1.5"},
        drop=("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"),
    )  # fmt: skip
    with running([sys.executable, "-m", "app", "--port", str(port)], env, tmp_path / "a.log") as s:
        s.wait_http(f"http://127.0.0.1:{port}/readyz", timeout=60)
        slow = []
        for _ in range(50):  # a body of 100 bytes announced, 10 sent
            sock = socket.create_connection(("127.0.0.1", port))
            sock.sendall(
                b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: 100\r\n\r\n" + b'{"records"'
            )
            slow.append(sock)
        start = time.monotonic()
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/predict",
            data=json.dumps(IRIS_EXAMPLE).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 200
        assert time.monotonic() - start < 1.0, "a normal client was served while 50 dawdled"
        answers = []
        for sock in slow:
            sock.settimeout(5)
            answer = b""
            while not answer.endswith(b"}}") and (chunk := sock.recv(4096)):
                answer += chunk
            answers.append(answer)
            sock.close()
    assert all(a.startswith(b"HTTP/1.1 408") for a in answers), answers[0][:200]
    assert all(b'"code":"request_timeout"' in a for a in answers)


def test_request_bodies_and_credentials_stay_out_of_the_logs(
    keyed: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    secret_value = "private-value-98765"
    wrong_key = "guessed-key-5555555555"
    with caplog.at_level(logging.DEBUG):
        keyed.post("/predict", json={**IRIS_EXAMPLE, "petal_width": secret_value},
                   headers={"Authorization": f"Bearer {KEY}"})  # fmt: skip
        keyed.post("/predict", json=IRIS_EXAMPLE, headers={"Authorization": f"Bearer {wrong_key}"})
        keyed.post("/predict", content=b"{" + secret_value.encode(),
                   headers={"Authorization": f"Bearer {KEY}"})  # fmt: skip
    assert caplog.records, "something was logged at DEBUG, so the check means something"
    for text in (secret_value, wrong_key, KEY):
        assert text not in caplog.text


def test_the_openapi_example_hides_training_rows_behind_the_key(
    keyed: TestClient, serve: AppFactory
) -> None:
    auth = {"Authorization": f"Bearer {KEY}"}
    record = keyed.get("/openapi.json", headers=auth).json()["components"]["schemas"]["Record"]
    assert "example" not in record
    with serve(api_key=KEY, predict_public=True) as public:
        doc = public.get("/openapi.json", headers=auth).json()
        shown = doc["components"]["schemas"]["Record"]
    assert set(shown["example"]) == set(IRIS_EXAMPLE)
