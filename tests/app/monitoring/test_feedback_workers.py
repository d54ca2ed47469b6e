"""POST /feedback across the workers of one host, without any database: the worker a feedback
lands on finds the prediction in whichever worker made it, and scores it once."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.app.conftest import TrainedModel
from tests.iris import iris_data
from tests.servers import free_port, python_env, running

pytestmark = pytest.mark.integration

REQUESTS = 40
ROWS = 3


def fresh(
    url: str, path: str, json: object, headers: dict[str, str] | None = None
) -> httpx.Response:
    """One request on a connection of its own: the kernel hands each to either worker."""
    with httpx.Client(base_url=url, timeout=10) as client:
        return client.post(path, json=json, headers={"connection": "close", **(headers or {})})


def feedback_rows(url: str) -> dict[str, float]:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "feedback_rows_total":
                found[sample.labels["outcome"]] = (
                    found.get(sample.labels["outcome"], 0) + sample.value
                )
    return found


def test_feedback_reaches_the_worker_that_predicted_and_scores_once(
    trained: TrainedModel, tmp_path: Path
) -> None:
    records, labels = iris_data()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = python_env(
        {"MLFLOW_TRACKING_URI": trained.tracking_uri, "MODEL_URI": trained.alias_uri},
        drop=("MLFLOW_REGISTRY_URI", "PREDICTION_LOG_URL"),
    )
    args = [sys.executable, "-m", "app", "--port", str(port), "--workers", "2"]
    with running(args, env, tmp_path / "app.log") as server:
        server.wait_http(f"{url}/readyz", timeout=90)
        answers = []
        for i in range(REQUESTS):
            rows = records[i * ROWS : (i + 1) * ROWS]
            answer = fresh(url, "/predict", {"records": rows}, {"x-request-id": f"req-{i}"})
            assert answer.status_code == 200, answer.text
            answers.append(answer.json()["predictions"])
        statuses, right = [], 0
        for i, predicted in enumerate(answers):
            truth = labels[i * ROWS : (i + 1) * ROWS]
            result = fresh(url, "/feedback", {"request_id": f"req-{i}", "labels": truth})
            statuses.append(result.status_code)
            if result.status_code == 200:
                assert result.json()["correct"] == sum(
                    p == y for p, y in zip(predicted, truth, strict=True)
                )
                right += result.json()["correct"]
        again = [
            fresh(url, "/feedback", {"request_id": f"req-{i}", "labels": [0] * ROWS})
            for i in range(REQUESTS)
        ]
        counted = feedback_rows(url)
        unknown = fresh(url, "/feedback", {"request_id": "never-seen", "labels": [0]})
    assert statuses == [200] * REQUESTS, statuses
    assert [a.status_code for a in again] == [409] * REQUESTS
    assert counted == {"right": right, "wrong": REQUESTS * ROWS - right} or (
        right == REQUESTS * ROWS and counted == {"right": right}
    )
    assert unknown.status_code == 404
    assert "PREDICTION_LOG_URL" in unknown.json()["error"]["message"]
