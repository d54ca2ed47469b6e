"""The dashboard and alert rules against a real Prometheus that scraped the real API under load.

Grafana cannot run here, so the dashboard is tested the way Grafana uses it: every panel's query,
its variables substituted as Grafana does, is sent to Prometheus' HTTP API and must return data.
The API is `python -m app` on a model trained by the trainer CLI; Prometheus is the pinned
image, scraping it every second with the project's own config and rules.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime

import httpx
import pytest

from tests.app.conftest import TrainedModel
from tests.monitoring import prometheus as prom
from tests.monitoring.load import Load
from tests.servers import free_port, python_env, running

pytestmark = [pytest.mark.prometheus, pytest.mark.integration, pytest.mark.postgres]

API_KEY = "monitoring-test-admin-key"
START_S = 60.0
DRIFT_INTERVAL_S = 1.0
# How long the load's effect may take to show in every panel (scrapes every second; drift and
# accuracy may be computed on a period of the API's own).
DATA_TIMEOUT_S = 45.0


@dataclass
class Scraped:
    api_url: str
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
    port = free_port()
    env = python_env(
        {
            "MLFLOW_TRACKING_URI": trained.tracking_uri,
            "MODEL_URI": trained.alias_uri,
            "API_KEY": API_KEY,
            "PREDICT_PUBLIC": "true",
            # The prediction log: its database.
            "PREDICTION_LOG_URL": make_database(),
            # Drift measured every second (5 s by default): see the alert rules' test.
            "DRIFT_INTERVAL": str(DRIFT_INTERVAL_S),
        }
    )
    argv = [sys.executable, "-m", "app", "--host", "127.0.0.1", "--port", str(port)]
    api_url = f"http://127.0.0.1:{port}"
    config = prom.config_for(f"127.0.0.1:{port}", workdir / "prometheus")
    with (
        running(argv, env, workdir / "api.log", cwd=trained.workdir) as api,
        prom.prometheus_container(prometheus_image, config, free_port()) as prom_url,
        httpx.Client(base_url=api_url, timeout=10) as client,
    ):
        api.wait_http(f"{api_url}/readyz", timeout=START_S)
        load = Load(client, api_key=API_KEY)
        prom.exercise(prom_url, load.run)
        counted = wait_counted(prom_url, load.statuses)
        counted_at = time.time()
        missing = prom.wait_dashboard_data(prom_url, timeout=DATA_TIMEOUT_S)
        exposition = client.get("/metrics").text
        yield Scraped(api_url, prom_url, exposition, load, counted, counted_at, missing)


def test_prometheus_scrapes_the_api_and_counts_every_answer(scraped: Scraped) -> None:
    (target,) = prom.targets(scraped.prometheus_url)
    assert target["health"] == "up"
    assert target["scrapeUrl"] == f"{scraped.api_url}/metrics"
    # Valid requests answered 200, every invalid one a 4xx (never a 5xx), and Prometheus saw
    # exactly those answers.
    statuses = scraped.load.statuses
    assert statuses[200] == 2 * (20 + 3) and statuses[422] == 2 * 10 and statuses[415] == 2
    assert scraped.counted == {str(s): float(n) for s, n in statuses.items()}
    assert scraped.load.reloads == [200, 200]


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
    exported = prom.exported_names(scraped.exposition)
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


def test_alert_rules_evaluate_cleanly_and_none_fires_on_a_healthy_api(scraped: Scraped) -> None:
    # Drift is measured on the rows seen so far: a measure taken in the middle of the load (a
    # few rows, the iris rows come class by class) is a PSI far over 0.2, which the window
    # holding the whole load is not. So judge the rules once they were evaluated on a scrape
    # of a measure taken after the load.
    settled = scraped.counted_at + 2 * DRIFT_INTERVAL_S + 1
    deadline = time.monotonic() + 30
    while True:
        groups = prom.api_get(scraped.prometheus_url, "/api/v1/rules")["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        evaluated = [datetime.fromisoformat(rule["lastEvaluation"]) for rule in rules]
        if all(e.timestamp() > settled for e in evaluated) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert sorted(r["name"] for r in rules) == sorted(r["alert"] for r in prom.alert_rules())
    # Evaluated at least once, without error (a query Prometheus cannot run is health "err").
    for rule in rules:
        assert rule["health"] == "ok", (rule["name"], rule.get("lastError"))
        assert rule["lastEvaluation"] > "2000", rule["name"]
    alerts = prom.api_get(scraped.prometheus_url, "/api/v1/alerts")["alerts"]
    assert alerts == []


def test_api_metrics_page_is_what_prometheus_scraped(scraped: Scraped) -> None:
    with urllib.request.urlopen(f"{scraped.api_url}/metrics", timeout=5) as resp:
        assert resp.headers["content-type"].startswith("text/plain")
    ready = prom.query(scraped.prometheus_url, 'model_ready{job="api"}')
    assert [float(s["value"][1]) for s in ready] == [1.0]
