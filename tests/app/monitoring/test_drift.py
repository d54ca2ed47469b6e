"""Drift as counts: rows per feature and baseline bin, and the baseline they are compared with
(the PSI itself is Prometheus' recording rules', tested with promtool and a real Prometheus)."""

from __future__ import annotations

import time

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from model_serving import baseline
from tests.app.conftest import AppFactory, TrainedModel, carried_baseline


def samples(client: TestClient, name: str) -> dict[tuple[str, ...], float]:
    """The samples of `name`, by the values of their labels other than model and version, in
    the labels' alphabetical order (bin before feature)."""
    found: dict[tuple[str, ...], float] = {}
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for sample in family.samples:
            if sample.name == name:
                labels = dict(sample.labels)
                assert (labels.pop("model"), labels.pop("version")) == ("sk_model", "1")
                found[tuple(v for _, v in sorted(labels.items()))] = sample.value
    return found


def wait_rows(client: TestClient, rows: float, timeout: float = 10.0) -> dict[tuple, float]:
    """The bin counts once every feature counted `rows` rows (binned off the request path)."""
    deadline = time.monotonic() + timeout
    counts: dict[tuple[str, ...], float] = {}
    while time.monotonic() < deadline:
        counts = samples(client, "drift_bin_rows_total")
        per_feature: dict[str, float] = {}
        for (_, feature), n in counts.items():
            per_feature[feature] = per_feature.get(feature, 0) + n
        if per_feature and all(n == rows for n in per_feature.values()):
            return counts
        time.sleep(0.05)
    raise AssertionError(f"never {rows} rows per feature: {counts}")


def test_rows_are_counted_in_the_baselines_bins_as_the_trainer_binned_them(
    serve: AppFactory, trained: TrainedModel, iris_records: list[dict[str, float]]
) -> None:
    found = carried_baseline(trained)
    with serve(max_request_rows=1000) as client:
        # Before any request: every bin of every feature is there, at 0.
        counts = samples(client, "drift_bin_rows_total")
        assert len(counts) == 4 * baseline.BINS and set(counts.values()) == {0.0}
        shares = samples(client, "drift_baseline_share")
        assert samples(client, "drift_baseline_rows") == {(): found["rows"]}
        assert client.post("/predict", json={"records": iris_records}).status_code == 200
        single = {**iris_records[0], "petal_length": 100.0}  # past every edge: the top bin
        assert client.post("/predict", json=single).status_code == 200
        counts = wait_rows(client, len(iris_records) + 1)
        training = samples(client, "training_class_share")
        critical = samples(client, "drift_psi_chi2_critical")[()]
    for feature, spec in found["features"].items():
        assert [shares[(str(b), feature)] for b in range(baseline.BINS)] == spec["shares"]
        expected = [0] * baseline.BINS
        for record in [*iris_records, single]:
            expected[baseline.bin_index(spec["edges"], record[feature])] += 1
        assert [counts[(str(b), feature)] for b in range(baseline.BINS)] == expected, feature
    assert counts[(str(baseline.BINS - 1), "petal_length")] >= 1
    assert set(training) == {("0",), ("1",), ("2",)}
    assert abs(sum(training.values()) - 1) < 1e-9
    # chi-square(9) at 1 - 0.05 / 4 features: 21.03 (scipy.stats.chi2.ppf), within 1%.
    assert abs(critical - 21.03) < 0.21


def test_without_drift_metrics_no_bin_is_counted(
    serve: AppFactory, iris_records: list[dict[str, float]]
) -> None:
    with serve(drift_metrics=False) as client:
        assert client.post("/predict", json={"records": iris_records[:5]}).status_code == 200
        time.sleep(0.5)
        text = client.get("/metrics").text
    assert "drift_bin_rows_total{" not in text and "drift_baseline_share{" not in text
    assert 'predicted_rows_total{model="sk_model",version="1"} 5.0' in text


def test_feedback_keeps_the_newest_predictions_within_its_row_bound(
    serve: AppFactory, iris_records: list[dict[str, float]]
) -> None:
    """Memory for POST /feedback is bounded by rows, not only requests: big batches push the
    oldest requests out (without the log, their feedback answers 404). A request id is scored
    once: the second feedback is refused (409)."""

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
        assert feedback("second", 40) == 404  # its newest predictions pushed out
        assert feedback("third", 40) == feedback("big", len(iris_records)) == 409  # scored
