"""The prediction log, request ids and POST /feedback, against the machine's PostgreSQL."""

from __future__ import annotations

import json
import re
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psycopg2
import pytest
from fastapi.testclient import TestClient

from app.monitoring.copytext import output_texts as _outputs
from tests.app.conftest import IRIS_EXAMPLE, AppFactory, TrainedModel
from tests.iris import iris_data
from tests.servers import free_port, python_env, running

pytestmark = pytest.mark.postgres


def rows_in(url: str, sql: str = "SELECT count(*) FROM prediction_log") -> Any:
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute(sql)
        result = cur.fetchall()
    conn.close()
    return result


def wait_rows(url: str, n: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    count = -1
    while time.monotonic() < deadline:
        try:
            count = rows_in(url)[0][0]
        except psycopg2.errors.UndefinedTable:
            count = 0
        if count >= n:
            return
        time.sleep(0.1)
    raise AssertionError(f"{count} rows logged, expected {n}")


def metric(client: TestClient, name: str) -> float:
    text = client.get("/metrics").text
    found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


def test_every_predicted_row_is_logged_with_its_request_and_model(
    serve: AppFactory,
    database: str,
    trained: TrainedModel,
    iris_records: list[dict[str, float]],
    reference: Callable[..., list[Any]],
) -> None:
    batches = [iris_records[i : i + n] for i, n in ((0, 1), (1, 7), (8, 30), (38, 1))]
    with serve(prediction_log_url=database) as client:
        answers = [
            client.post("/predict", json={"records": batch}, headers={"X-Request-ID": f"req-{i}"})
            for i, batch in enumerate(batches)
        ]
        wait_rows(database, sum(map(len, batches)))
        assert metric(client, "prediction_log_rows_written_total") == sum(map(len, batches))
    assert [a.headers["x-request-id"] for a in answers] == ["req-0", "req-1", "req-2", "req-3"]
    logged = rows_in(
        database,
        "SELECT request_id, row_index, model_name, model_version, run_id, features, prediction,"
        " latency_ms FROM prediction_log ORDER BY request_id, row_index",
    )
    by_request: dict[str, list[Any]] = {}
    for row in logged:
        by_request.setdefault(row[0], []).append(row)
    for i, batch in enumerate(batches):
        mine = by_request[f"req-{i}"]
        assert [r[1] for r in mine] == list(range(len(batch)))
        assert {(r[2], r[3], r[4]) for r in mine} == {("sk_model", "1", trained.run_id)}
        assert [r[5] for r in mine] == batch  # the input values, by feature name
        assert [r[6] for r in mine] == answers[i].json()["predictions"] == reference(batch)
        assert all(r[7] > 0 for r in mine)


def test_request_ids_come_back_on_every_answer_and_bad_ones_are_refused(
    client: TestClient,
) -> None:
    generated = client.post("/predict", json=IRIS_EXAMPLE)
    assert re.fullmatch(r"[0-9a-f]{12}-[0-9a-f]+", generated.headers["x-request-id"])
    error = client.post("/predict", json={}, headers={"X-Request-ID": "mine.1"})
    assert (error.status_code, error.headers["x-request-id"]) == (422, "mine.1")
    assert client.get("/nope", headers={"X-Request-ID": "x"}).headers["x-request-id"] == "x"
    for bad in ("a" * 129, "has space", "semi;colon"):
        refused = client.post("/predict", json=IRIS_EXAMPLE, headers={"X-Request-ID": bad})
        assert refused.status_code == 422
        assert refused.json()["error"]["details"][0]["loc"] == ["header", "x-request-id"]
        assert bad not in refused.text
        assert refused.headers["x-request-id"] != bad


def test_a_database_that_is_down_costs_no_request_and_overflow_is_counted(
    serve: AppFactory,
) -> None:
    dead = f"postgresql://nobody@127.0.0.1:{free_port()}/nothing"
    with serve(prediction_log_url=dead, prediction_log_queue_rows=25) as client:
        for _ in range(10):
            answer = client.post("/predict", json={"records": [IRIS_EXAMPLE] * 5})
            assert answer.status_code == 200
        deadline = time.monotonic() + 20
        while (
            time.monotonic() < deadline
            and metric(client, "prediction_log_write_failures_total") == 0
        ):
            time.sleep(0.1)
        assert metric(client, "prediction_log_write_failures_total") >= 1
        assert metric(client, "prediction_log_rows_dropped_total") >= 25  # 50 rows, room for 25
        assert metric(client, "prediction_log_queue_rows") <= 25


def test_feedback_is_counted_stored_beside_the_log_and_scored_once_by_any_process(
    serve: AppFactory, database: str, iris_records: list[dict[str, float]]
) -> None:
    truth = iris_data()[1]
    with serve(prediction_log_url=database) as client:
        answer = client.post("/predict", json={"records": iris_records[:50]})
        rid = answer.headers["x-request-id"]
        predicted = answer.json()["predictions"]
        labels = truth[:50]
        short = client.post("/feedback", json={"request_id": rid, "labels": [1, 2]})
        assert short.status_code == 422 and "expected 50 labels" in short.text
        result = client.post("/feedback", json={"request_id": rid, "labels": labels})
        assert result.status_code == 200, result.text
        expected = sum(p == y for p, y in zip(predicted, labels, strict=True))
        assert result.json()["correct"] == expected
        assert result.json()["accuracy"] == expected / 50
        assert result.json()["stored"] is True
        text = client.get("/metrics").text
        right = f'feedback_rows_total{{model="sk_model",outcome="right",version="1"}} {expected}.0'
        assert (
            right in text
            or right.replace('outcome="right",version="1"', 'version="1",outcome="right"') in text
        )
        again = client.post("/feedback", json={"request_id": rid, "labels": labels})
        assert again.status_code == 409 and "already scored" in again.json()["error"]["message"]
        unknown = client.post("/feedback", json={"request_id": "never-seen", "labels": [1]})
        assert unknown.status_code == 404
        garbled = client.post(
            "/feedback", content=b"\xff{", headers={"content-type": "application/json"}
        )
        assert garbled.status_code == 422 and garbled.json()["error"]["code"] == "invalid_input"
        later = client.post("/predict", json={"records": iris_records[50:60]})
        later_id = later.headers["x-request-id"]
        wait_rows(database, 60)
    # Another process (a restart, another replica) finds a request in the log; one scored
    # anywhere is not scored again.
    with serve(prediction_log_url=database) as client:
        found = client.post("/feedback", json={"request_id": later_id, "labels": truth[50:60]})
        assert found.status_code == 200, found.text
        assert found.json()["rows"] == 10 and found.json()["model"] == {
            "name": "sk_model",
            "version": "1",
        }
        assert (
            client.post("/feedback", json={"request_id": rid, "labels": labels}).status_code == 409
        )
        mismatch = client.post("/feedback", json={"request_id": later_id, "labels": [1]})
        assert mismatch.status_code == 422
    stored = rows_in(
        database, "SELECT count(*), count(DISTINCT request_id) FROM prediction_feedback"
    )
    assert stored == [(60, 2)]


def test_sigterm_writes_what_is_queued_and_the_log_lines_name_the_request(
    trained: TrainedModel, database: str, tmp_path: Path
) -> None:
    port = free_port()
    env = python_env(
        {
            "MLFLOW_TRACKING_URI": trained.tracking_uri,
            "MODEL_URI": trained.alias_uri,
            "PREDICTION_LOG_URL": database,
        },
        drop=("MLFLOW_REGISTRY_URI",),
    )
    args = [sys.executable, "-m", "app", "--port", str(port)]
    with running(args, env, tmp_path / "app.log") as server:
        server.wait_http(f"http://127.0.0.1:{port}/readyz", timeout=60)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
            for _ in range(20):
                body = {"records": [IRIS_EXAMPLE] * 10}
                assert client.post("/predict", json=body).status_code == 200
            overflow = {"records": [IRIS_EXAMPLE, {**IRIS_EXAMPLE, "sepal_width": 1.7e308}]}
            refused = client.post("/predict", json=overflow, headers={"X-Request-ID": "trace-me"})
        assert refused.status_code == 422
        assert refused.json()["error"]["details"][0]["loc"] == ["records", 1]
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(30) == 0, server.output()
        log = server.output()
    assert rows_in(database)[0][0] == 200  # every row written before the process ended
    refused_lines = [ln for ln in log.splitlines() if "the model refused the input" in ln]
    assert refused_lines and all("[trace-me]" in ln for ln in refused_lines)
    assert json.dumps(1.7e308) not in log


@pytest.mark.parametrize(
    "predictions",
    [[0, 2, 1], [0.5, -1e300, 3.0], [], ["setosa", "a,b", 'q"uote\\', "tab\there"], [1, "x", None]],
)
def test_predictions_are_logged_as_their_json(predictions: list[Any]) -> None:
    """Numbers are encoded together and cut at the commas; anything else one by one. Either
    way each row's column holds that row's JSON (COPY text: backslashes doubled)."""
    logged = [json.loads(text.replace("\\\\", "\\")) for text in _outputs(predictions)]
    assert logged == predictions
