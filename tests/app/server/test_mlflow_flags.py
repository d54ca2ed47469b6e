"""`python -m app` takes `mlflow models serve`'s command line: the same flags, the same meaning."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from app import __main__ as cli
from app.settings import Settings
from tests.app.conftest import IRIS_EXAMPLE, TrainedModel
from tests.servers import ROOT, free_port, python_env, running

MLFLOW_VARS = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")


def _run(args: list[str]) -> subprocess.CompletedProcess[str]:
    env = python_env(drop=("MODEL_URI", "RUN_ID"))
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_mlflow_serve_command_line_serves_invocations(
    trained: TrainedModel, reference: Any, tmp_path: Path
) -> None:
    port = free_port()
    env = python_env(
        {"MLFLOW_TRACKING_URI": trained.tracking_uri}, drop=(*MLFLOW_VARS, "MODEL_URI")
    )
    args = [
        sys.executable, "-m", "app", "-m", trained.alias_uri, "-h", "127.0.0.1",
        "-p", str(port), "-w", "1", "-t", "15", "--env-manager", "local",
    ]  # fmt: skip
    with running(args, env, tmp_path / "app.log") as server:
        server.wait_http(f"http://127.0.0.1:{port}/ping", timeout=60)
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations",
            data=json.dumps({"dataframe_records": [IRIS_EXAMPLE]}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            body = json.load(response)
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(20) == 0, server.output()
    assert body == {"predictions": reference([IRIS_EXAMPLE])}


def test_flags_become_the_settings_they_name(monkeypatch: pytest.MonkeyPatch) -> None:
    from app.server import supervisor

    seen: list[Settings] = []

    def serve(settings: Settings) -> int:
        seen.append(settings)
        return 0

    monkeypatch.setattr(supervisor, "serve", serve)
    monkeypatch.setattr(supervisor, "configure_logging", lambda level: None)
    for name in ("MODEL_URI", "RUN_ID", "HOST", "PORT", "WORKERS", "REQUEST_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    argv = ["-m", "models:/m@a", "-h", "0.0.0.0", "-p", "5001", "-w", "3", "-t", "42.5"]
    assert cli.main([*argv, "--no-conda"]) == 0
    assert cli.main(["--model-uri", "models:/m/2", "--timeout", "7", "--env-manager", "local"]) == 0
    first, second = seen
    assert (first.model_uri, first.host, first.port, first.workers) == (
        "models:/m@a", "0.0.0.0", 5001, 3,
    )  # fmt: skip
    assert first.request_timeout == 42.5  # mlflow's --timeout: seconds to serve a request
    assert (second.model_uri, second.request_timeout) == ("models:/m/2", 7.0)


@pytest.mark.parametrize("manager", ["virtualenv", "conda", "uv", "docker"])
def test_other_env_managers_are_refused_with_one_line(manager: str) -> None:
    result = _run(["-m", "models:/m@a", "--env-manager", manager])
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: --env-manager {manager}")
    assert "--env-manager local" in lines[0]


def test_help_is_long_only_since_h_is_the_host() -> None:
    result = _run(["--help"])
    assert result.returncode == 0
    assert "-h HOST, --host HOST" in result.stdout
    assert "--env-manager" in result.stdout
    bad = _run(["-h"])  # -h takes a host, as in mlflow models serve
    assert bad.returncode == 2 and "expected one argument" in bad.stderr
