"""promtool on the project's Prometheus files: `check config`, `check rules`, `test rules`.

promtool is the one in the image docker-compose.yaml pins (on this machine kind, the stand-in of
../shared/docker-offline). The rule unit tests are only worth something if they fail when an
alert is broken: each alert in turn is made to never fire, and its tests must notice.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.monitoring import prometheus as prom

pytestmark = pytest.mark.prometheus
INSIDE = prom.CONTAINER_CONFIG_DIR


def passed(result: subprocess.CompletedProcess[str]) -> str:
    """promtool's output, once it exited 0."""
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    return out


def test_prometheus_config_and_its_rules_pass_promtool_check(
    prometheus_image: str, tmp_path: Path
) -> None:
    # The API's key where compose puts its secret (promtool checks the file is there).
    (job,) = prom.load_yaml(prom.PROMETHEUS_CONFIG)["scrape_configs"]
    key_file = job["authorization"]["credentials_file"]
    assert key_file.startswith("/run/secrets/"), "the key comes from a compose secret"
    (tmp_path / "api-key").write_text("a-key-of-at-least-16-chars\n")
    (tmp_path / "api-key").chmod(0o644)
    mounts = {prom.PROMETHEUS_DIR: INSIDE, tmp_path / "api-key": key_file}
    out = passed(
        prom.promtool(
            prometheus_image, "check", "config", f"{INSIDE}/prometheus.yml", mounts=mounts
        )
    )
    # The config's rule_files glob finds the rules, and they parse.
    n_files, n_rules = len(list(prom.RULES_DIR.glob("*.yml"))), len(prom.rules())
    assert f"SUCCESS: {n_files} rule files found" in out
    assert f"SUCCESS: {n_rules} rules found" in out
    rules = [f"{INSIDE}/rules/{p.name}" for p in sorted(prom.RULES_DIR.glob("*.yml"))]
    out = passed(prom.promtool(prometheus_image, "check", "rules", *rules, mounts=mounts))
    assert f"SUCCESS: {n_rules} rules found" in out


def test_alert_rule_unit_tests_pass(prometheus_image: str) -> None:
    tests = [f"{INSIDE}/tests/{p.name}" for p in sorted(prom.RULE_TESTS_DIR.glob("*.yml"))]
    assert tests
    out = passed(
        prom.promtool(
            prometheus_image, "test", "rules", *tests, mounts={prom.PROMETHEUS_DIR: INSIDE}
        )
    )
    assert "FAILED" not in out


def test_unit_tests_fail_for_an_alert_that_never_fires(
    prometheus_image: str, tmp_path: Path
) -> None:
    alerts = [rule["alert"] for rule in prom.alert_rules()]
    for alert in alerts:
        # A copy of monitoring/prometheus in which only `alert` is broken.
        copy = tmp_path / alert
        shutil.copytree(prom.PROMETHEUS_DIR, copy)
        for path in (copy / "rules").glob("*.yml"):
            data = yaml.safe_load(path.read_text())
            for group in data["groups"]:
                for rule in group["rules"]:
                    if rule.get("alert") == alert:
                        rule["expr"] = "vector(1) == 0"
            path.write_text(yaml.safe_dump(data, sort_keys=False))
    for path in [tmp_path, *tmp_path.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    tests = [
        f"{INSIDE}/{alert}/tests/{p.name}"
        for alert in alerts
        for p in sorted(prom.RULE_TESTS_DIR.glob("*.yml"))
    ]
    result = prom.promtool(prometheus_image, "test", "rules", *tests, mounts={tmp_path: INSIDE})
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    # Only the copy in which `alert` is broken can fail a test of `alert`.
    failed = set(re.findall(r"alertname: (\w+),", result.stderr))
    assert failed == set(alerts), out
