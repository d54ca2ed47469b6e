"""GET /model-info, /metrics and the OpenAPI document, on the real model."""

from __future__ import annotations

import json
import platform
import re

from fastapi.testclient import TestClient

from tests.app.conftest import IRIS_EXAMPLE, AppFactory, TrainedModel


def test_model_info_names_the_model_its_run_and_how_it_was_trained(
    client: TestClient, trained: TrainedModel
) -> None:
    info = client.get("/model-info").json()
    assert info["uri"] == "models:/sk_model@champion"
    assert (info["name"], info["version"], info["alias"]) == ("sk_model", "1", "champion")
    assert info["run_id"] == trained.run_id
    assert info["flavor"] == "sklearn"
    assert [c["name"] for c in info["signature"]["inputs"]] == list(IRIS_EXAMPLE)
    assert {c["type"] for c in info["signature"]["inputs"]} == {"double"}
    assert info["metrics"] == trained.metrics
    assert info["params"]["train_size"] == "0.8"
    assert info["load_seconds"] > 0
    assert re.match(r"\d{4}-\d\d-\d\dT", info["loaded_at"])
    assert info["host"] == platform.node()
    assert set(info["versions"]) >= {"python", "mlflow", "scikit_learn"}
    assert info["versions"]["mlflow"].startswith("3.17")
    assert len(info["input_example"]) == 10
    assert info["predict_path"] == "lean"


def test_openapi_shows_the_models_fields_and_input_example(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    record = doc["components"]["schemas"]["Record"]
    assert list(record["properties"]) == list(IRIS_EXAMPLE)
    assert record["required"] == list(IRIS_EXAMPLE)
    assert record["properties"]["sepal_length"] == {"type": "number"}
    assert record["additionalProperties"] is False
    assert set(record["example"]) == set(IRIS_EXAMPLE)
    body = doc["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"] == {"$ref": "#/components/schemas/PredictRequest"}
    assert "422" in doc["paths"]["/predict"]["post"]["responses"]


def _metric(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            found = dict(re.findall(r'(\w+)="([^"]*)"', line.split(" ")[0]))
            if all(found.get(k) == v for k, v in labels.items()):
                return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name}{labels} not in /metrics")


def test_metrics_count_requests_rows_classes_and_identify_the_model(
    serve: AppFactory, trained: TrainedModel
) -> None:
    with serve() as c:
        for _ in range(3):
            c.post("/predict", content=json.dumps({"records": [IRIS_EXAMPLE] * 4}))
        c.post("/predict", content=json.dumps({"records": []}))
        text = c.get("/metrics").text
    assert _metric(text, "http_requests_total", route="/predict", status="200") == 3
    assert _metric(text, "http_requests_total", route="/predict", status="422") == 1
    assert _metric(text, "predicted_rows_total", model="sk_model", version="1") == 12
    assert _metric(text, "predictions_by_class_total", model="sk_model", class_="2") == 12
    assert _metric(text, "prediction_duration_seconds_count", model="sk_model") == 3
    assert _metric(text, "model_load_duration_seconds", model="sk_model", version="1") > 0
    assert _metric(text, "model_info", model="sk_model", version="1", run_id=trained.run_id) == 1
    assert _metric(text, "model_ready") == 1
