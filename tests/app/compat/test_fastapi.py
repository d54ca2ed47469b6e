"""Without a FastAPI whose middleware stack the app can rebuild, the lanes run inside
FastAPI's own stack: the same answers, still beneath the request middleware (ids, metrics)
and any middleware a user adds."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.api.application import create_app
from app.compat import fastapi as fastapi_compat
from app.settings import Settings
from tests.app.compat.conftest import Forcing, fallback_warnings
from tests.app.conftest import TrainedModel, wait_ready
from tests.app.server.test_entry import Stamp


def test_the_lanes_are_served_directly_on_the_locked_fastapi(trained: TrainedModel) -> None:
    app = create_app(Settings(model_uri=trained.alias_uri), tracking_uri=trained.tracking_uri)
    with TestClient(app) as client:
        wait_ready(client)
        assert app._direct is not None  # type: ignore[attr-defined]


def test_without_it_the_lanes_answer_inside_fastapis_stack(
    trained: TrainedModel,
    iris_records: list[dict[str, float]],
    reference: Callable[[list[dict[str, float]]], list[Any]],
    force_fallback: Forcing,
    caplog: pytest.LogCaptureFixture,
) -> None:
    force_fallback(fastapi_compat, fastapi_compat.supported)
    app = create_app(Settings(model_uri=trained.alias_uri), tracking_uri=trained.tracking_uri)
    seen: list[str] = []
    app.add_middleware(Stamp, seen=seen)
    rows = iris_records[:10]
    with TestClient(app) as client:
        wait_ready(client)
        answer = client.post("/predict", json={"records": rows}, headers={"X-Request-ID": "r-1"})
        bad = client.post("/predict", json={"records": [{"nope": 1}]})
        metrics = client.get("/metrics").text
    assert app._direct is None  # type: ignore[attr-defined]
    assert answer.status_code == 200 and answer.json()["predictions"] == reference(rows)
    assert answer.headers["x-request-id"] == "r-1" and answer.headers["x-stamp"] == "1"
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_input"
    assert seen.count("/predict") == 2, "the user's middleware sees the lane's requests"
    assert 'http_requests_total{method="POST",route="/predict",status="200"} 1.0' in metrics
    assert 'http_requests_total{method="POST",route="/predict",status="422"} 1.0' in metrics
    assert len(fallback_warnings(caplog, "fastapi")) == 1
