"""How requests enter the app: the lanes (/predict, V2) are served straight from the app as
shipped, yet sit beneath any middleware a user adds and beneath FastAPI's own telemetry."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.application import create_app
from app.settings import Settings
from tests.app.conftest import IRIS_EXAMPLE, TrainedModel, wait_ready

V2_INFER = "/v2/models/sk_model/infer"
V2_BODY = {
    "inputs": [
        {"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": [5.1, 3.5, 1.4, 0.2]}
    ]
}


class Stamp:
    """A user's middleware: stamps every answer and remembers the paths it saw."""

    def __init__(self, app: ASGIApp, seen: list[str]) -> None:
        self.app = app
        self.seen = seen

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self.seen.append(scope["path"])

        async def stamped(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), (b"x-stamp", b"1")]
            await send(message)

        await self.app(scope, receive, stamped)


def _app(trained: TrainedModel) -> Any:
    return create_app(Settings(model_uri=trained.alias_uri), tracking_uri=trained.tracking_uri)


def test_middleware_a_user_adds_sees_the_lanes_requests(trained: TrainedModel) -> None:
    seen: list[str] = []
    app = _app(trained)
    app.add_middleware(Stamp, seen=seen)
    with TestClient(app) as client:
        wait_ready(client)
        seen.clear()
        answers = [
            client.post("/predict", json=IRIS_EXAMPLE),
            client.post(V2_INFER, json=V2_BODY),
            client.post("/predict", json={}),
            client.get("/model-info"),
        ]
        metrics = client.get("/metrics").text
    assert [a.status_code for a in answers] == [200, 200, 422, 200]
    assert all(a.headers.get("x-stamp") == "1" and a.headers["x-request-id"] for a in answers)
    assert seen[:4] == ["/predict", V2_INFER, "/predict", "/model-info"]
    assert 'route="/predict",status="422"' in metrics


def test_fastapi_telemetry_traces_the_lanes_requests(trained: TrainedModel) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = _app(trained)
    app._telemetry["tracer_provider"] = provider  # FastAPI's native OpenTelemetry, configured
    with TestClient(app) as client:
        wait_ready(client)
        exporter.clear()
        assert client.post("/predict", json=IRIS_EXAMPLE).status_code == 200
    finished = exporter.get_finished_spans()
    spans = [(s.name, (s.attributes or {}).get("http.response.status_code")) for s in finished]
    assert any("POST" in name and status == 200 for name, status in spans), spans
