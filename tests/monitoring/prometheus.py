"""Prometheus and the Grafana dashboard, driven for real: promtool and Prometheus from the pinned
prom/prometheus image (docker), queries through Prometheus' HTTP API.

Also for the compose test: `check_stack(prometheus_url)` waits until the API's target is up and
every dashboard query returns data (but the shadow model's panels: it runs none), and says which
did not.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import IN_CI
from tests.stack import compose

MONITORING = compose.ROOT / "monitoring"
PROMETHEUS_DIR = MONITORING / "prometheus"
PROMETHEUS_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
RULES_DIR = PROMETHEUS_DIR / "rules"
RULE_TESTS_DIR = PROMETHEUS_DIR / "tests"
GRAFANA_DIR = MONITORING / "grafana"
DATASOURCES = GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml"
DASHBOARD_PROVIDERS = GRAFANA_DIR / "provisioning" / "dashboards" / "model-serving.yml"
DASHBOARDS_DIR = GRAFANA_DIR / "dashboards"
API_JOB = "api"
# Where the compose service mounts monitoring/prometheus; the image's default config path.
CONTAINER_CONFIG_DIR = "/etc/prometheus"

# What Grafana puts in place of its variables before a query reaches Prometheus. Tests use
# values that cover a short run scraped every second; any other $variable is an error.
GRAFANA_VARIABLES = {"__rate_interval": "1m", "__interval": "15s", "__range": "5m"}
_GRAFANA_VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")


# -- the image ---------------------------------------------------------------------------------


def prometheus_image() -> str:
    """The image docker-compose.yaml pins for the `prometheus` service."""
    return str(compose.raw()["services"]["prometheus"]["image"])


def docker_unavailable(image: str) -> str | None:
    """Why `image` cannot be run here (no docker, no engine, no image), or None if it can."""
    if shutil.which("docker") is None:
        return "no docker command"
    try:
        info = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        return "the Docker engine does not answer"
    if info.returncode != 0:
        return f"no Docker engine: {info.stderr.strip()[-300:]}"
    inspect = subprocess.run(
        ["docker", "image", "inspect", image], capture_output=True, text=True, timeout=30
    )
    if inspect.returncode != 0:
        return f"image {image} is not present (no registry here)"
    return None


def require_image(image: str) -> None:
    """Skip the test when `image` cannot run here; with CI=true, fail instead."""
    import pytest

    reason = docker_unavailable(image)
    if reason is None:
        return
    message = (
        f"{reason}; run `../shared/docker-offline/setup {image}` (root) to get an engine "
        "and the stand-in image"
    )
    if IN_CI:
        pytest.fail(message + " (CI=true: the monitoring tests must run)")
    pytest.skip(message)


def promtool(
    image: str, *args: str, mounts: Mapping[Path, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """`promtool args...` in the image, with host directories mounted read-only, no network."""
    volumes = [f"--volume={host}:{inside}:ro" for host, inside in (mounts or {}).items()]
    argv = ["docker", "run", "--rm", "--network=none", *volumes]
    argv += ["--entrypoint=/bin/promtool", image, *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)


@contextlib.contextmanager
def prometheus_container(image: str, config_dir: Path, port: int) -> Iterator[str]:
    """Prometheus from `image` on 127.0.0.1:`port` (host network: it scrapes loopback targets),
    config from `config_dir`/prometheus.yml; yields its URL once ready, removes it after."""
    name = f"ms-test-prometheus-{uuid.uuid4().hex[:10]}"
    argv = ["docker", "run", "--detach", f"--name={name}", "--network=host"]
    argv += [f"--volume={config_dir}:{CONTAINER_CONFIG_DIR}:ro", image]
    argv += [
        f"--config.file={CONTAINER_CONFIG_DIR}/prometheus.yml",
        "--storage.tsdb.path=/prometheus",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    subprocess.run(argv, check=True, capture_output=True, text=True, timeout=60)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, container=name)
        yield url
    finally:
        # -v: the image's anonymous /prometheus volume goes too.
        subprocess.run(["docker", "rm", "-f", "-v", name], capture_output=True, timeout=60)


def container_logs(name: str) -> str:
    result = subprocess.run(["docker", "logs", name], capture_output=True, text=True, timeout=30)
    return (result.stdout + result.stderr)[-4000:]


def wait_ready(url: str, container: str | None = None, timeout: float = 60.0) -> None:
    """Wait until Prometheus answers /-/ready with 200."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError as exc:
            last = exc
        time.sleep(0.2)
    logs = container_logs(container) if container else ""
    raise TimeoutError(f"Prometheus at {url} not ready after {timeout}s ({last}):\n{logs}")


# -- configuration -----------------------------------------------------------------------------


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


API_KEY_FILE = "api-key"
"""The file, beside the config, the API's key is read from when a test's API has one."""


def config_for(
    scrape_targets: list[str], directory: Path, interval: str = "1s", api_key: str | None = None
) -> Path:
    """The project's prometheus.yml and rules, copied to `directory`, scraping `scrape_targets`
    every `interval` and evaluating the rules as often, with `api_key` from a file beside the
    config (the project's own `authorization`, pointed there), or without any key. Readable by
    the image's user."""
    config = load_yaml(PROMETHEUS_CONFIG)
    config["global"]["scrape_interval"] = interval
    config["global"]["evaluation_interval"] = interval
    (job,) = [job for job in config["scrape_configs"] if job["job_name"] == API_JOB]
    job.pop("dns_sd_configs", None)
    job["static_configs"] = [{"targets": scrape_targets}]
    directory.mkdir(parents=True, exist_ok=True)
    if api_key is None:
        job.pop("authorization", None)
    else:
        assert "credentials_file" in job["authorization"], "the key is read from a file"
        job["authorization"]["credentials_file"] = f"{CONTAINER_CONFIG_DIR}/{API_KEY_FILE}"
        (directory / API_KEY_FILE).write_text(api_key + "\n")
    (directory / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    shutil.copytree(RULES_DIR, directory / "rules", dirs_exist_ok=True)
    for path in [directory, *directory.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return directory


def rules() -> list[dict[str, Any]]:
    """Every rule in monitoring/prometheus/rules: recording and alerting."""
    found = []
    for path in sorted(RULES_DIR.glob("*.yml")):
        for group in load_yaml(path)["groups"]:
            found += group["rules"]
    return found


def alert_rules() -> list[dict[str, Any]]:
    """Every alerting rule in monitoring/prometheus/rules."""
    return [rule for rule in rules() if "alert" in rule]


def recorded_names() -> set[str]:
    """The series the recording rules make."""
    return {rule["record"] for rule in rules() if "record" in rule}


# -- the dashboard -----------------------------------------------------------------------------


@dataclass(frozen=True)
class PanelQuery:
    dashboard: str
    panel: str
    ref_id: str
    expr: str  # as written in the dashboard, Grafana variables and all
    instant: bool

    @property
    def label(self) -> str:
        return f"{self.dashboard} / {self.panel} / {self.ref_id}"

    def promql(self, variables: Mapping[str, str] = GRAFANA_VARIABLES) -> str:
        """The query Prometheus receives once Grafana has substituted its variables."""

        def substitute(match: re.Match[str]) -> str:
            name = match[1] or match[2]
            if name not in variables:
                raise KeyError(f"{self.label}: unknown variable ${name} in {self.expr!r}")
            return variables[name]

        return _GRAFANA_VARIABLE.sub(substitute, self.expr)


def dashboards() -> dict[str, dict[str, Any]]:
    """Every dashboard JSON the provisioning loads, by file name."""
    return {
        path.name: json.loads(path.read_text()) for path in sorted(DASHBOARDS_DIR.glob("*.json"))
    }


def panels(dashboard: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, those inside collapsed rows included."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


SHADOW_PANELS = frozenset({"Shadow agreement", "Shadow vs served accuracy", "Shadow model"})
"""The panels of the shadow model (SHADOW_MODEL_URI): data only where a shadow runs."""


def dashboard_queries(*, shadow: bool = True) -> list[PanelQuery]:
    """Every query of every panel of every provisioned dashboard (without `shadow`, but the
    shadow model's panels, for a stack that runs none)."""
    queries = []
    for file, dashboard in dashboards().items():
        for panel in panels(dashboard):
            if not shadow and panel["title"] in SHADOW_PANELS:
                continue
            for target in panel.get("targets", []):
                queries.append(
                    PanelQuery(
                        dashboard=file,
                        panel=panel["title"],
                        ref_id=target["refId"],
                        expr=target["expr"],
                        instant=bool(target.get("instant")),
                    )
                )
    return queries


# -- PromQL ------------------------------------------------------------------------------------

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENTIFIER = re.compile(r"(?<![\w.:])([A-Za-z_:][\w:]*)(\s*\()?")
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring",
             "group_left", "group_right", "inf", "nan", "atan2"}  # fmt: skip


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (function names, labels and keywords aside).

    Enough for the expressions this project writes: selectors, functions, aggregations with
    by/without, binary operators with on/ignoring/group_*."""
    text = _STRING.sub('""', expr)
    text = _MATCHERS.sub("{}", text)
    text = _RANGE.sub("[]", text)
    text = _GROUPING.sub(" ", text)
    names = set()
    for match in _IDENTIFIER.finditer(text):
        name, call = match[1], match[2]
        if call or name.lower() in _KEYWORDS:
            continue
        names.add(name)
    return names


def exported_names(exposition: str) -> set[str]:
    """Every sample name in a /metrics exposition (histograms as _bucket, _sum and _count)."""
    from prometheus_client.parser import text_string_to_metric_families

    names = set()
    for family in text_string_to_metric_families(exposition):
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
        if family.type == "histogram":
            names.update(f"{family.name}{suffix}" for suffix in ("_bucket", "_sum", "_count"))
        if family.type == "counter":
            names.add(f"{family.name}_total")
    return names


# -- Prometheus' HTTP API ----------------------------------------------------------------------


def api_get(url: str, path: str, params: Mapping[str, str] | None = None) -> Any:
    """GET Prometheus' API; the `data` of a successful answer, else an error with its reason."""
    query = f"?{urllib.parse.urlencode(params)}" if params else ""
    try:
        with urllib.request.urlopen(f"{url}{path}{query}", timeout=10) as resp:
            body = json.load(resp)
    except urllib.error.HTTPError as exc:
        body = json.load(exc)
    if body.get("status") != "success":
        raise PrometheusError(f"{path} {params}: {body.get('errorType')}: {body.get('error')}")
    return body["data"]


class PrometheusError(RuntimeError):
    """Prometheus refused a request (a query that does not parse, ...)."""


def query(url: str, expr: str, at: float | None = None) -> list[dict[str, Any]]:
    """The instant vector (or scalar, as one sample) `expr` evaluates to now (or at `at`, a
    Unix time)."""
    params = {"query": expr} if at is None else {"query": expr, "time": f"{at:.3f}"}
    data = api_get(url, "/api/v1/query", params)
    if data["resultType"] in ("scalar", "string"):
        return [{"metric": {}, "value": data["result"]}]
    assert data["resultType"] == "vector", data
    return list(data["result"])


def finite_values(result: list[dict[str, Any]]) -> list[float]:
    values = [float(sample["value"][1]) for sample in result]
    return [v for v in values if math.isfinite(v)]


def targets(url: str, job: str = API_JOB) -> list[dict[str, Any]]:
    """The active targets of `job`."""
    data = api_get(url, "/api/v1/targets", {"state": "active"})
    return [t for t in data["activeTargets"] if t["labels"].get("job") == job]


def wait_target_up(url: str, job: str = API_JOB, timeout: float = 60.0) -> dict[str, Any]:
    """Wait until `job` has a target and all of them are up; returns the first."""
    deadline = time.monotonic() + timeout
    found: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        found = targets(url, job)
        if found and all(t["health"] == "up" for t in found):
            return found[0]
        time.sleep(0.25)
    states = [(t["scrapeUrl"], t["health"], t["lastError"]) for t in found]
    raise AssertionError(f"job {job!r} not up after {timeout}s: {states or 'no target'}")


def wait_scraped_since(url: str, since: float, job: str = API_JOB, timeout: float = 60.0) -> None:
    """Wait until every target of `job` has been scraped after Unix time `since`."""
    deadline = time.monotonic() + timeout
    last: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        last = query(url, f'timestamp(up{{job="{job}"}})')
        if last and all(float(s["value"][1]) > since for s in last):
            return
        time.sleep(0.25)
    raise AssertionError(f"job {job!r} not scraped since {since} within {timeout}s: {last}")


def exercise(url: str, drive: Callable[[], object], timeout: float = 60.0) -> None:
    """Once the API's target is up: `drive()` a load, wait for a scrape, `drive()` again.

    The first round creates the series (a label set appears with its first request), the
    second makes them grow between two scrapes, which rate() and histogram_quantile() need."""
    wait_target_up(url, timeout=timeout)
    drive()
    since = time.time()
    wait_scraped_since(url, since, timeout=timeout)
    drive()


def queries_without_data(url: str, queries: list[PanelQuery]) -> dict[str, str]:
    """{query label: why} for every query that errs or returns no finite value now."""
    missing = {}
    for q in queries:
        try:
            result = query(url, q.promql())
        except PrometheusError as exc:
            missing[q.label] = f"error: {exc}"
            continue
        if not finite_values(result):
            missing[q.label] = f"no data: {q.promql()}" + (f" -> {result}" if result else "")
    return missing


def wait_dashboard_data(
    url: str, queries: list[PanelQuery] | None = None, timeout: float = 45.0
) -> dict[str, str]:
    """Poll until each dashboard query has returned data once, or `timeout` passes; what never
    did. (A rate over a window that the load has left shows no data again later.)"""
    pending = dashboard_queries() if queries is None else queries
    deadline = time.monotonic() + timeout
    while True:
        missing = queries_without_data(url, pending)
        pending = [q for q in pending if q.label in missing]
        if not pending or time.monotonic() > deadline:
            return missing
        time.sleep(1.0)


def check_stack(url: str, drive: Callable[[], object], timeout: float = 120.0) -> None:
    """For the compose test: with Prometheus at `url`, the API's target is up and, once
    `drive()` has loaded the API twice around a scrape (`exercise`), every dashboard query
    returns data (but the shadow model's panels). `drive` is typically
    `tests.monitoring.load.Load(client, api_key).run`."""
    exercise(url, drive, timeout=timeout)
    # The compose stack runs no shadow model (no @challenger is registered there).
    missing = wait_dashboard_data(url, dashboard_queries(shadow=False), timeout=timeout)
    assert not missing, "dashboard queries without data:\n" + "\n".join(
        f"  {label}: {why}" for label, why in missing.items()
    )
