"""Drift (PSI per feature, class shares) against the baseline the trainer logs with the model."""

from __future__ import annotations

import time
from typing import Any

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from tests.app.conftest import AppFactory


def gauges(client: TestClient, name: str) -> dict[str, float]:
    """The samples of gauge `name`, by their feature / class label."""
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for sample in family.samples:
            if sample.name == name:
                labels = sample.labels
                found[labels.get("feature") or labels.get("class_", "")] = sample.value
    return found


def wait_for_psi(client: TestClient, condition: Any, timeout: float = 20.0) -> dict[str, float]:
    deadline = time.monotonic() + timeout
    psi: dict[str, float] = {}
    while time.monotonic() < deadline:
        psi = gauges(client, "feature_drift_psi")
        if psi and condition(psi):
            return psi
        time.sleep(0.1)
    raise AssertionError(f"PSI never met the condition: {psi}")


def test_shifting_one_feature_raises_its_psi_past_02_and_no_other(
    serve: AppFactory, iris_records: list[dict[str, float]]
) -> None:
    with serve(drift_interval=0.2, drift_window_rows=300, max_request_rows=1000) as client:
        assert client.post("/predict", json={"records": iris_records * 2}).status_code == 200
        like_training = wait_for_psi(client, lambda psi: len(psi) == 4)
        assert max(like_training.values()) < 0.1, like_training
        training = gauges(client, "training_class_share")
        assert set(training) == {"0", "1", "2"}
        assert abs(sum(training.values()) - 1) < 1e-9

        shifted = [{**r, "petal_length": r["petal_length"] + 2.5} for r in iris_records] * 2
        assert client.post("/predict", json={"records": shifted}).status_code == 200
        drifted = wait_for_psi(client, lambda psi: psi["petal_length"] > 0.2)
        predicted = gauges(client, "predicted_class_share")
    others = {k: v for k, v in drifted.items() if k != "petal_length"}
    assert max(others.values()) < 0.1, drifted
    assert abs(sum(predicted.values()) - 1) < 1e-9
    assert predicted["2"] > training["2"]  # longer petals: more virginica predicted


def test_feedback_keeps_the_newest_predictions_within_its_row_bound(
    serve: AppFactory, iris_records: list[dict[str, float]]
) -> None:
    """Memory for POST /feedback is bounded by rows, not only requests: big batches push the
    oldest requests out (without the log, their feedback answers 404)."""

    def predict(records: list[dict[str, float]], rid: str) -> None:
        answer = client.post("/predict", json={"records": records}, headers={"X-Request-ID": rid})
        assert answer.status_code == 200, answer.text

    def feedback(rid: str, rows: int) -> int:
        labels = [0] * rows
        answer = client.post("/feedback", json={"request_id": rid, "labels": labels})
        if answer.status_code == 200:
            assert answer.json()["rows"] == rows
        return answer.status_code

    with serve(feedback_memory_rows=100) as client:
        for rid, start in (("first", 0), ("second", 40), ("third", 80)):
            predict(iris_records[start : start + 40], rid)  # 120 rows kept > 100: one goes
        assert feedback("first", 40) == 404
        assert feedback("second", 40) == feedback("third", 40) == 200
        predict(iris_records[:40], "second")  # an id sent again: its newest predictions count
        predict(iris_records, "big")  # 150 rows, alone over the bound: kept, the others go
        assert feedback("big", len(iris_records)) == 200
        assert feedback("second", 40) == feedback("third", 40) == 404
