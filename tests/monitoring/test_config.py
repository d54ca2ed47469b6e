"""The monitoring files agree with each other, with docker-compose.yaml and with what operators
are promised (the dashboard panels, the alerts).

Read without Docker: the dashboard's data source is the provisioned one, its queries use only
variables Grafana defines, every alert has unit tests that see it fire and stay silent, and the
compose services mount each file where the others expect it.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest

from app.__main__ import build_parser as app_parser
from tests.monitoring import prometheus as prom
from tests.stack import compose

# What the dashboard must show, as the metrics that carry it.
DASHBOARD_SHOWS = {
    "request rate by status": "http_requests_total",
    "latency p50/p99": "http_request_duration_seconds_bucket",
    "rows predicted": "predicted_rows_total",
    "predicted class shares": "predicted_class_share",
    "per-feature drift": "feature_drift_psi",
    "live accuracy": "live_accuracy",
    "model version served": "model_info",
    "its source": "model_source",
    "model load failures": "model_load_failures_total",
    "prediction-log queue": "prediction_log_queue_rows",
    "prediction-log drops": "prediction_log_rows_dropped_total",
}
ALERTS = {
    "ApiDown",
    "ModelNotReady",
    "ApiErrorRatioHigh",
    "ApiLatencyP99High",
    "FeatureDrift",
    "LiveAccuracyLow",
    "PredictionLogDroppingRows",
    "ReplicasServeDifferentVersions",
}


@pytest.fixture(scope="module")
def services() -> dict[str, dict[str, Any]]:
    return compose.load()["services"]


def datasource() -> dict[str, Any]:
    (source,) = prom.load_yaml(prom.DATASOURCES)["datasources"]
    return dict(source)


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """{container path: host path} of a service's bind mounts (short syntax)."""
    found = {}
    for volume in service.get("volumes", []):
        host, inside, *_ = str(volume).split(":")
        if host.startswith("./"):
            found[inside] = host
    return found


def flag(argv: list[str], name: str) -> str | None:
    values = [arg.split("=", 1)[1] for arg in argv if arg.startswith(f"--{name}=")]
    return values[-1] if values else None


# -- the dashboard -----------------------------------------------------------------------------


def test_every_panel_and_query_uses_the_provisioned_prometheus() -> None:
    source = datasource()
    assert source["type"] == "prometheus"
    assert prom.dashboards(), "no dashboard in monitoring/grafana/dashboards"
    for file, dashboard in prom.dashboards().items():
        for panel in prom.panels(dashboard):
            if panel["type"] == "row":
                continue
            where = f"{file} / {panel['title']}"
            assert panel["datasource"] == {"type": "prometheus", "uid": source["uid"]}, where
            assert panel["targets"], f"{where}: no query"
            for target in panel["targets"]:
                assert target["datasource"] == panel["datasource"], f"{where} {target['refId']}"
                assert target["expr"].strip(), f"{where} {target['refId']}: empty query"
        # A dashboard exported for sharing names ${DS_...} inputs Grafana's file provider
        # cannot fill in.
        assert "__inputs" not in dashboard and "${DS_" not in str(dashboard), file


def test_dashboards_have_unique_uids_panel_ids_and_ref_ids() -> None:
    uids = [d["uid"] for d in prom.dashboards().values()]
    assert len(uids) == len(set(uids))
    for file, dashboard in prom.dashboards().items():
        ids = [panel["id"] for panel in prom.panels(dashboard)]
        assert len(ids) == len(set(ids)), file
        for panel in prom.panels(dashboard):
            refs = [t["refId"] for t in panel.get("targets", [])]
            assert len(refs) == len(set(refs)), f"{file} / {panel['title']}"


def test_queries_use_only_variables_grafana_defines() -> None:
    for q in prom.dashboard_queries():
        q.promql()  # raises on an unknown $variable
    with pytest.raises(KeyError, match=r"\$model"):
        prom.PanelQuery("d", "p", "A", 'up{model="$model"}', False).promql()


def test_dashboard_shows_everything_operators_are_promised() -> None:
    read = set().union(*(prom.metric_names(q.expr) for q in prom.dashboard_queries()))
    missing = {what: name for what, name in DASHBOARD_SHOWS.items() if name not in read}
    assert not missing, f"no panel reads {missing}"


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('sum by (status) (rate(requests_total{route=~"/pred.*"}[1m]))', {"requests_total"}),
        ("histogram_quantile(0.99, sum by (le) (rate(x_bucket[$__rate_interval])))", {"x_bucket"}),
        (
            '(sum(rate(a_total{status=~"5.."}[1m])) or vector(0)) / sum(rate(a_total[1m]))',
            {"a_total"},
        ),
        ("accuracy < 0.8 and on (job, model) accuracy_rows >= 50", {"accuracy", "accuracy_rows"}),
        ("model_info == 1", {"model_info"}),
        ('max without (instance) (up{job="api"}) offset 5m', {"up"}),
    ],
)
def test_metric_names_reads_selectors_not_functions_labels_or_keywords(
    expr: str, names: set[str]
) -> None:
    assert prom.metric_names(expr) == names


# -- alert rules -------------------------------------------------------------------------------


def test_every_promised_alert_is_there_once() -> None:
    alerts = [rule["alert"] for rule in prom.alert_rules()]
    assert sorted(alerts) == sorted(ALERTS)
    for rule in prom.alert_rules():
        assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
        assert {"summary", "description"} <= set(rule["annotations"]), rule["alert"]


def test_every_alert_has_unit_tests_that_see_it_fire_and_stay_silent() -> None:
    fires: set[str] = set()
    silent: set[str] = set()
    for path in sorted(prom.RULE_TESTS_DIR.glob("*.yml")):
        suite = prom.load_yaml(path)
        rule_files = {(path.parent / f).resolve() for f in suite["rule_files"]}
        assert rule_files <= {p.resolve() for p in prom.RULES_DIR.glob("*.yml")}, path
        for case in suite["tests"]:
            for check in case.get("alert_rule_test", []):
                (fires if check["exp_alerts"] else silent).add(check["alertname"])
    assert fires >= ALERTS, f"never seen firing: {ALERTS - fires}"
    assert silent >= ALERTS, f"never seen silent: {ALERTS - silent}"


# -- compose -----------------------------------------------------------------------------------


def test_prometheus_service_reads_this_config_and_scrapes_the_api(
    services: dict[str, Any],
) -> None:
    service = services["prometheus"]
    assert "profiles" not in service, "a plain `docker compose up` starts Prometheus"
    argv = compose.command(service)
    config = flag(argv, "config.file")
    assert config is not None
    assert mounts(service)[config.rsplit("/", 1)[0]] == "./monitoring/prometheus"
    assert config.rsplit("/", 1)[1] == prom.PROMETHEUS_CONFIG.name
    assert flag(argv, "web.listen-address") in (None, ":9090", "0.0.0.0:9090")
    assert "127.0.0.1:9090:9090" in service["ports"]

    (job,) = prom.load_yaml(prom.PROMETHEUS_CONFIG)["scrape_configs"]
    api_port = app_parser().parse_args(compose.command(services["api"])[3:]).port
    assert job["job_name"] == prom.API_JOB
    # Every replica of the api service, by DNS: one with docker-compose.yaml, many in the fleet.
    (found,) = job["dns_sd_configs"]
    assert (found["names"], found["type"], found["port"]) == (["api"], "A", api_port)
    assert job.get("metrics_path", "/metrics") == "/metrics"
    # The API's key (/metrics needs it): the compose secret api-key, made from the api
    # service's own API_KEY and mounted where the job reads it; the config holds no key.
    assert set(job["authorization"]) == {"credentials_file"}
    assert job["authorization"]["credentials_file"] == "/run/secrets/api-key"
    assert service["secrets"] == ["api-key"]
    assert compose.raw()["secrets"]["api-key"] == {"environment": "API_KEY"}
    assert compose.raw()["services"]["api"]["environment"]["API_KEY"] == "${API_KEY:-}"
    assert compose.healthcheck(service)[:4] == [
        "promtool",
        "query",
        "instant",
        "http://127.0.0.1:9090",
    ]


def test_grafana_service_is_optional_and_provisioned_from_monitoring(
    services: dict[str, Any],
) -> None:
    service = services["grafana"]
    assert service["profiles"] == ["grafana"]
    repository, _, tag = service["image"].rpartition(":")
    assert repository == "grafana/grafana" and tag[0].isdigit()  # the OSS edition, pinned
    assert mounts(service) == {
        "/etc/grafana/provisioning": "./monitoring/grafana/provisioning",
        "/etc/grafana/dashboards": "./monitoring/grafana/dashboards",
    }
    (provider,) = prom.load_yaml(prom.DASHBOARD_PROVIDERS)["providers"]
    assert provider["options"]["path"] == "/etc/grafana/dashboards"
    home = compose.environment(service)["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home.rsplit("/", 1)[1] in prom.dashboards()
    url = urlsplit(datasource()["url"])
    assert (url.hostname, url.port) == ("prometheus", 9090)
    assert compose.depends_on(service) == {"prometheus": "service_healthy"}
