"""The dashboard, the recording rules and the alerts against a real Prometheus that scraped a fleet
of the real API under load: three `python -m app` processes (as three replicas) of two workers
each, one prediction log, each scraped directly.

Grafana cannot run here, so the dashboard is tested the way Grafana uses it: every panel's query,
its variables substituted as Grafana does, is sent to Prometheus' HTTP API and must return data.
The API serves a model trained by the trainer CLI; Prometheus is the pinned image, scraping every
second with the project's own config and rules.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg2
import pytest

from model_serving import baseline
from tests.app.conftest import TrainedModel, carried_baseline
from tests.iris import iris_data
from tests.monitoring import prometheus as prom
from tests.monitoring.load import SINGLES, Load
from tests.servers import free_port, python_env, run_cli, running

pytestmark = [pytest.mark.prometheus, pytest.mark.integration, pytest.mark.postgres]

API_KEY = "monitoring-test-admin-key"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
REPLICAS = 3
START_S = 120.0
# How long the load's effect may take to show in every panel (scrapes and rules every second).
DATA_TIMEOUT_S = 45.0


@dataclass
class Scraped:
    api_urls: list[str]
    log_url: str
    prometheus_url: str
    exposition: str
    load: Load
    counted: dict[str, float]
    counted_at: float  # Unix time: Prometheus had scraped the whole load by then
    missing: dict[str, str]


def wait_counted(url: str, expected: Counter[int], timeout: float = 30.0) -> dict[str, float]:
    """Wait until Prometheus' last scrape counted every /predict answer the load got."""
    want = {str(status): float(n) for status, n in expected.items()}
    deadline = time.monotonic() + timeout
    counted: dict[str, float] = {}
    while time.monotonic() < deadline:
        result = prom.query(url, 'sum by (status) (http_requests_total{route="/predict"})')
        counted = {s["metric"]["status"]: float(s["value"][1]) for s in result}
        if counted == want:
            break
        time.sleep(0.25)
    return counted


@pytest.fixture(scope="module")
def scraped(
    prometheus_image: str,
    trained: TrainedModel,
    make_database: Callable[[], str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Scraped]:
    workdir = tmp_path_factory.mktemp("monitoring")
    ports = [free_port() for _ in range(REPLICAS)]
    log_url = make_database()
    env = python_env(
        {
            "MLFLOW_TRACKING_URI": trained.tracking_uri,
            "MODEL_URI": trained.alias_uri,
            "API_KEY": API_KEY,
            "PREDICT_PUBLIC": "true",
            "PREDICTION_LOG_URL": log_url,
            "WORKERS": "2",
        }
    )
    api_urls = [f"http://127.0.0.1:{port}" for port in ports]
    targets = [f"127.0.0.1:{p}" for p in ports]
    config = prom.config_for(targets, workdir / "prometheus", api_key=API_KEY)
    with contextlib.ExitStack() as stack:
        apis = [
            stack.enter_context(
                running(
                    [sys.executable, "-m", "app", "--host", "127.0.0.1", "--port", str(port)],
                    env,
                    workdir / f"api-{port}.log",
                    cwd=trained.workdir,
                )
            )
            for port in ports
        ]
        prom_url = stack.enter_context(
            prom.prometheus_container(prometheus_image, config, free_port())
        )
        clients = [stack.enter_context(httpx.Client(base_url=url, timeout=10)) for url in api_urls]
        for api, url in zip(apis, api_urls, strict=True):
            api.wait_http(f"{url}/readyz", timeout=START_S)
        load = Load(clients[0], api_key=API_KEY, others=clients[1:])
        # Every target scraped with its drift counters at 0 before any row: the first sample
        # of each series is 0, as in a fleet that has run for a while.
        prom.wait_target_up(prom_url, timeout=60)
        prom.wait_scraped_since(prom_url, time.time())
        prom.exercise(prom_url, load.run)
        counted = wait_counted(prom_url, load.statuses)
        counted_at = time.time()
        missing = prom.wait_dashboard_data(prom_url, timeout=DATA_TIMEOUT_S)
        exposition = clients[0].get("/metrics", headers=AUTH).text
        yield Scraped(api_urls, log_url, prom_url, exposition, load, counted, counted_at, missing)


def settled(url: str, since: float, timeout: float = 30.0) -> list[dict[str, Any]]:
    """Prometheus' rules, once every target was scraped after `since` and every rule
    evaluated after that."""
    prom.wait_scraped_since(url, since)
    scraped_at = time.time()
    deadline = time.monotonic() + timeout
    while True:
        groups = prom.api_get(url, "/api/v1/rules")["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        evaluated = [datetime.fromisoformat(rule["lastEvaluation"]) for rule in rules]
        if all(e.timestamp() > scraped_at for e in evaluated) or time.monotonic() > deadline:
            return rules
        time.sleep(0.25)


def logged_rows(url: str) -> list[dict[str, float]]:
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute("SELECT features FROM prediction_log")
        return [row[0] for row in cur.fetchall()]


def wait_logged(url: str, rows: int, timeout: float = 30.0) -> list[dict[str, float]]:
    deadline = time.monotonic() + timeout
    found: list[dict[str, float]] = []
    while time.monotonic() < deadline:
        found = logged_rows(url)
        if len(found) >= rows:
            break
        time.sleep(0.25)
    return found


def test_prometheus_scrapes_the_api_and_counts_every_answer(scraped: Scraped) -> None:
    targets = prom.targets(scraped.prometheus_url)
    assert all(target["health"] == "up" for target in targets)
    assert sorted(t["scrapeUrl"] for t in targets) == sorted(
        f"{url}/metrics" for url in scraped.api_urls
    )
    # Valid requests answered 200, every invalid one a 4xx (never a 5xx), and Prometheus saw
    # exactly those answers.
    statuses = scraped.load.statuses
    assert statuses[200] == 2 * (20 + 3) and statuses[422] == 2 * 10 and statuses[415] == 2
    assert scraped.counted == {str(s): float(n) for s, n in statuses.items()}
    assert scraped.load.reloads == [200] * 2 * REPLICAS


def test_every_dashboard_query_returns_data(scraped: Scraped) -> None:
    assert not scraped.missing, (
        f"{len(scraped.missing)} of {len(prom.dashboard_queries())} dashboard queries return no "
        f"data (feedback answers: {scraped.load.feedback}):\n"
        + "\n".join(f"  {label}: {why}" for label, why in scraped.missing.items())
    )


def test_error_ratio_panel_shows_no_5xx_for_bad_input(scraped: Scraped) -> None:
    (q5xx, q4xx) = [q for q in prom.dashboard_queries() if q.panel == "Error ratio"]
    # Right after the load, as the panel shows it then.
    (five,) = prom.query(scraped.prometheus_url, q5xx.promql(), at=scraped.counted_at)
    (four,) = prom.query(scraped.prometheus_url, q4xx.promql(), at=scraped.counted_at)
    assert float(five["value"][1]) == 0.0
    assert 0.0 < float(four["value"][1]) < 1.0


def test_dashboard_and_alerts_name_only_metrics_the_api_exports(scraped: Scraped) -> None:
    exported = prom.exported_names(scraped.exposition) | prom.recorded_names()
    unknown = {
        q.label: sorted(prom.metric_names(q.expr) - exported) for q in prom.dashboard_queries()
    }
    for rule in prom.alert_rules():
        # `up` is Prometheus' own, per target.
        unknown[f"alert {rule['alert']}"] = sorted(
            prom.metric_names(rule["expr"]) - exported - {"up"}
        )
    unknown = {k: v for k, v in unknown.items() if v}
    assert not unknown, f"metrics the API does not export: {json.dumps(unknown, indent=2)}"


def test_rules_evaluate_cleanly_and_no_alert_fires_on_a_healthy_api(scraped: Scraped) -> None:
    rules = settled(scraped.prometheus_url, scraped.counted_at)
    assert sorted(r["name"] for r in rules) == sorted(
        r.get("alert") or r["record"] for r in prom.rules()
    )
    # Evaluated at least once, without error (a query Prometheus cannot run is health "err").
    for rule in rules:
        assert rule["health"] == "ok", (rule["name"], rule.get("lastError"))
        assert rule["lastEvaluation"] > "2000", rule["name"]
    alerts = prom.api_get(scraped.prometheus_url, "/api/v1/alerts")["alerts"]
    assert alerts == []


def test_recorded_psi_is_the_psi_of_every_logged_row_across_the_fleet(
    scraped: Scraped, trained: TrainedModel
) -> None:
    rows = 2 * (SINGLES + len(iris_data()[0]))  # two rounds of the load, every replica's
    logged = wait_logged(scraped.log_url, rows)
    assert len(logged) == rows
    settled(scraped.prometheus_url, time.time())
    recorded = {
        s["metric"]["feature"]: float(s["value"][1])
        for s in prom.query(scraped.prometheus_url, "feature_drift_psi")
    }
    counted = {
        s["metric"]["feature"]: float(s["value"][1])
        for s in prom.query(scraped.prometheus_url, "feature_drift_rows")
    }
    found = carried_baseline(trained)
    expected = {
        feature: baseline.psi(
            spec["shares"], baseline.shares(spec["edges"], [r[feature] for r in logged])
        )
        for feature, spec in found["features"].items()
    }
    assert counted == {feature: float(rows) for feature in expected}
    assert recorded.keys() == expected.keys()
    for feature, psi in expected.items():
        assert abs(recorded[feature] - psi) < 1e-9, (feature, recorded[feature], psi)


def test_the_offline_report_agrees_with_the_recorded_figures_on_the_same_rows(
    scraped: Scraped, trained: TrainedModel, tmp_path: Path
) -> None:
    """The report's PSI (against the run's baseline) and live accuracy are the recorded ones,
    to float precision: the same statistic on the same rows. Its drift verdicts are
    Evidently's own tests on the training rows, another statistic."""
    rows = 2 * (SINGLES + len(iris_data()[0]))
    assert len(wait_logged(scraped.log_url, rows)) == rows
    settled(scraped.prometheus_url, time.time())
    env = python_env({"MLFLOW_TRACKING_URI": trained.tracking_uri})
    args = ["report", "--log-url", scraped.log_url, "--json", "--output", "report.html"]
    result = run_cli("trainer", *args, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    recorded = {
        s["metric"]["feature"]: float(s["value"][1])
        for s in prom.query(scraped.prometheus_url, "feature_drift_psi")
    }
    assert summary["predictions"] == rows
    assert summary["psi"].keys() == recorded.keys()
    for feature, value in recorded.items():
        assert abs(summary["psi"][feature] - value) < 1e-9, feature
    (accuracy,) = prom.query(scraped.prometheus_url, "live_accuracy")
    assert abs(summary["live_accuracy"] - float(accuracy["value"][1])) < 1e-12


def test_every_feedback_is_scored_once_wherever_it_lands(scraped: Scraped) -> None:
    load = scraped.load
    # Each went to another replica than the one that answered: found through the log.
    assert load.feedback == [200] * len(load.feedback) and len(load.feedback) == 6
    labelled = sum(len(labels) for _, _, labels in load.labelled)
    right = sum(
        sum(p == y for p, y in zip(predicted, labels, strict=True))
        for _, predicted, labels in load.labelled
    )
    settled(scraped.prometheus_url, time.time())
    (rows,) = prom.query(scraped.prometheus_url, "live_accuracy_rows")
    (accuracy,) = prom.query(scraped.prometheus_url, "live_accuracy")
    assert float(rows["value"][1]) == labelled
    assert abs(float(accuracy["value"][1]) - right / labelled) < 1e-12
    # A second feedback for any of them, on any replica: refused, not counted again.
    request_id, _, labels = load.labelled[0]
    for url in scraped.api_urls:
        again = httpx.post(f"{url}/feedback", json={"request_id": request_id, "labels": labels})
        assert again.status_code == 409, again.text


def test_api_metrics_page_is_what_prometheus_scraped(scraped: Scraped) -> None:
    scrape = urllib.request.Request(f"{scraped.api_urls[0]}/metrics", headers=AUTH)
    with urllib.request.urlopen(scrape, timeout=5) as resp:
        assert resp.headers["content-type"].startswith("text/plain")
    assert httpx.get(f"{scraped.api_urls[0]}/metrics").status_code == 401
    ready = prom.query(scraped.prometheus_url, 'model_ready{job="api"}')
    assert [float(s["value"][1]) for s in ready] == [1.0] * REPLICAS
