"""The shadow model (SHADOW_MODEL_URI): it predicts the served rows off the answer's path, and
nothing it does (raise, hang, take 100 times as long) reaches the served answers, their latency
or /readyz; what it did is counted, scored by /feedback, logged, and it follows its alias."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import mlflow
import psycopg2
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError

from app.settings import Settings
from tests.app.conftest import AppFactory, TrainedModel
from tests.app.serving.shadow_models import Shadow, log_shadow, save_shadow
from tests.iris import iris_data
from tests.servers import wait_for


def series(client: TestClient, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """Every sample of the metric `name` in /metrics, by its sorted labels."""
    found: dict[tuple[tuple[str, str], ...], float] = {}
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for sample in family.samples:
            if sample.name == name:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def total(client: TestClient, name: str, **labels: str) -> float:
    return sum(
        v
        for k, v in series(client, name).items()
        if all(dict(k).get(key) == want for key, want in labels.items())
    )


def timed_predictions(
    client: TestClient, records: list[dict[str, float]], prefix: str = "r"
) -> tuple[list[Any], list[float]]:
    """One request per record: the predictions, and each request's seconds."""
    answers, seconds = [], []
    for i, record in enumerate(records):
        start = time.perf_counter()
        response = client.post("/predict", json=record, headers={"X-Request-ID": f"{prefix}-{i}"})
        seconds.append(time.perf_counter() - start)
        assert response.status_code == 200, response.text
        answers.append(response.json()["predictions"][0])
    return answers, seconds


@pytest.fixture(scope="module")
def shadows(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Shadow model folders: one that answers class 0 at once, one 100 times slower than the
    served model (0.1 s a call), one that raises, one that never answers."""
    root = tmp_path_factory.mktemp("shadows")
    return {
        "zero": save_shadow(root / "zero", Shadow(answer=0)),
        "slow": save_shadow(root / "slow", Shadow(answer=0, delay=0.1)),
        "raises": save_shadow(root / "raises", Shadow(mode="raise")),
        "hangs": save_shadow(root / "hangs", Shadow(mode="hang")),
    }


@pytest.fixture(scope="module")
def baseline(client: TestClient) -> TestClient:
    """The same served model without a shadow (one app for the module)."""
    return client


def assert_unharmed(client: TestClient, records: list[dict[str, float]], plain: TestClient) -> None:
    """The same answers as without a shadow, about as fast, and ready. Each request goes to
    the app without a shadow, then to this one, so that both see the machine as it is; the
    bound leaves room for a shared machine's noise, not for a shadow on the answer's path (the
    slow shadow's 0.1 s a call, or the hung one's forever, would be in every request's time)."""
    answers: list[Any] = []
    plain_answers: list[Any] = []
    seconds: list[float] = []
    plain_seconds: list[float] = []
    for i, record in enumerate(records[:40]):
        for app, got, took in ((plain, plain_answers, plain_seconds), (client, answers, seconds)):
            start = time.perf_counter()
            response = app.post("/predict", json=record, headers={"X-Request-ID": f"unharmed-{i}"})
            took.append(time.perf_counter() - start)
            assert response.status_code == 200, response.text
            got.append(response.json()["predictions"][0])
    assert answers == plain_answers
    limit = 2 * statistics.median(plain_seconds) + 0.003
    assert statistics.median(seconds) < limit, (seconds, plain_seconds)
    assert sorted(seconds)[35] < 0.05, seconds  # 9 in 10 requests
    assert client.get("/readyz").status_code == 200


def test_a_shadow_that_raises_is_counted_and_the_answers_are_unchanged(
    serve: AppFactory,
    shadows: dict[str, str],
    iris_records: list[dict[str, float]],
    baseline: TestClient,
) -> None:
    with serve(shadow_model_uri=shadows["raises"]) as client:
        wait_for(lambda: client.get("/model-info").json()["shadow"]["model"], what="shadow")
        assert_unharmed(client, iris_records, baseline)
        wait_for(lambda: total(client, "shadow_failed_rows_total") == 40, what="40 failures")
        assert total(client, "shadow_rows_total") == 0
        assert total(client, "model_ready") == 1


def test_a_hung_shadow_drops_what_it_cannot_take_and_the_answers_are_unchanged(
    serve: AppFactory,
    shadows: dict[str, str],
    iris_records: list[dict[str, float]],
    baseline: TestClient,
) -> None:
    with serve(shadow_model_uri=shadows["hangs"], shadow_queue_rows=5) as client:

        def shadow() -> dict[str, Any]:
            return dict(client.get("/model-info").json()["shadow"])

        wait_for(lambda: shadow()["model"], what="shadow loaded")
        client.post("/predict", json=iris_records[0])  # the row the shadow hangs on
        wait_for(lambda: shadow()["queue_rows"] == 0, what="the shadow took the first row")
        assert_unharmed(client, iris_records, baseline)  # 40 more: 5 wait, 35 dropped
        assert total(client, "shadow_rows_dropped_total") == 35
        assert shadow()["queue_rows"] == 5
        assert total(client, "shadow_rows_total") == 0


def test_a_slow_shadow_is_compared_scored_and_logged_and_the_answers_are_unchanged(
    serve: AppFactory,
    shadows: dict[str, str],
    iris_records: list[dict[str, float]],
    baseline: TestClient,
    database: str,
    trained: TrainedModel,
) -> None:
    labels = iris_data()[1]
    with serve(shadow_model_uri=shadows["slow"], prediction_log_url=database) as client:
        info = client.get("/model-info").json()
        wait_for(lambda: client.get("/model-info").json()["shadow"]["model"], what="shadow")
        assert info["shadow"]["uri"] == shadows["slow"] and info["shadow"]["sample"] == 1.0
        assert_unharmed(client, iris_records, baseline)
        served, _ = timed_predictions(baseline, iris_records[:40], "oracle")
        pair = {"model": "sk_model", "version": "1", "shadow_version": ""}
        wait_for(lambda: total(client, "shadow_rows_total", **pair) == 40, 30, "40 shadowed")
        # The shadow answers class 0: it agrees with the served model where that said 0.
        assert total(client, "shadow_agreeing_rows_total", **pair) == served.count(0)
        assert total(client, "shadow_failed_rows_total") == 0

        def logged() -> list[tuple[str, int, int]]:
            with psycopg2.connect(database) as conn, conn.cursor() as cur:
                try:
                    cur.execute(
                        "SELECT request_id, row_index, prediction FROM prediction_shadow"
                        " WHERE request_id LIKE 'unharmed-%' ORDER BY request_id"
                    )
                except psycopg2.errors.UndefinedTable:
                    return []  # the first write creates it
                found = cur.fetchall()
            conn.close()
            return found if len(found) == 40 else []

        rows = wait_for(logged, what="the shadow's 40 rows in the log")
        assert {r[0] for r in rows} == {f"unharmed-{i}" for i in range(40)}
        assert {(r[1], r[2]) for r in rows} == {(0, 0)}

        # The same labels score both: the paired table by both outcomes.
        answers = [
            client.post("/feedback", json={"request_id": f"unharmed-{i}", "labels": [labels[i]]})
            for i in range(40)
        ]
        assert all(a.status_code == 200 for a in answers), answers[0].text
        assert answers[0].json()["shadow"]["accuracy"] == (1.0 if labels[0] == 0 else 0.0)
        cells = {
            (s, h): total(client, "shadow_feedback_rows_total", served=s, shadow=h)
            for s in ("right", "wrong")
            for h in ("right", "wrong")
        }
        expected = {(s, h): 0 for s in ("right", "wrong") for h in ("right", "wrong")}
        for prediction, label in zip(served, labels[:40], strict=True):
            cell = ("right" if prediction == label else "wrong", "right" if label == 0 else "wrong")
            expected[cell] += 1
        assert cells == expected


def test_the_shadow_follows_its_alias(
    serve: AppFactory,
    trained: TrainedModel,
    iris_records: list[dict[str, float]],
    reference: Callable[..., list[Any]],
) -> None:
    mlflow.set_tracking_uri(trained.tracking_uri)
    client_ = mlflow.MlflowClient(trained.tracking_uri)
    first = log_shadow(Shadow(answer=0), "shadow_model")
    client_.set_registered_model_alias("shadow_model", "challenger", first)
    uri = "models:/shadow_model@challenger"
    with serve(shadow_model_uri=uri, model_reload_interval=0.2) as client:

        def version() -> str | None:
            model = client.get("/model-info").json()["shadow"]["model"]
            return model["version"] if model else None

        assert wait_for(version, what="the shadow loaded") == first
        second = log_shadow(Shadow(answer=1), "shadow_model")
        client_.set_registered_model_alias("shadow_model", "challenger", second)
        wait_for(lambda: version() == second, what="the shadow follows @challenger")
        answer = client.post("/predict", json={"records": iris_records[:10]}).json()
        assert answer["predictions"] == reference(iris_records[:10])
        assert answer["model"]["version"] == "1"  # the served model is the champion still
        pair = {"shadow_model": "shadow_model", "shadow_version": second}
        wait_for(lambda: total(client, "shadow_rows_total", **pair) == 10, what="shadowed")
        assert total(client, "shadow_agreeing_rows_total", **pair) == answer["predictions"].count(1)
        assert total(client, "shadow_model_info", shadow_version=second) == 1


def test_a_shadow_that_cannot_be_loaded_leaves_the_service_ready_and_says_why(
    serve: AppFactory, iris_records: list[dict[str, float]], baseline: TestClient
) -> None:
    with serve(shadow_model_uri="models:/no_such_model@challenger") as client:
        shadow = wait_for(
            lambda: (s := client.get("/model-info").json()["shadow"])["last_error"] and s,
            what="the shadow's load failed",
        )
        assert shadow["model"] is None and "no_such_model" in shadow["last_error"]
        assert_unharmed(client, iris_records, baseline)
        assert total(client, "shadow_model_load_failures_total") >= 1
        assert total(client, "model_load_failures_total") == 0


def test_a_shadow_sample_out_of_range_is_refused() -> None:
    with pytest.raises(ValidationError, match="shadow_sample"):
        Settings(model_uri="models:/m@a", shadow_sample=1.5)
