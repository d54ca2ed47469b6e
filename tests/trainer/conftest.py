"""Helpers for the trainer's end-to-end tests: run the CLI, read an MLflow store."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import mlflow
import pytest

from tests.servers import python_env, run_cli

SECRET = "hunter2-s3cret"


def store_env(store: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for a CLI run against the SQLite store in `store`."""
    return python_env(
        {"MLFLOW_TRACKING_URI": f"sqlite:///{store}/mlflow.db", **(extra or {})},
        drop=[k for k in os.environ if k.startswith("TRAINER_")],
    )


def trainer(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run_cli("trainer", *args, env=env, cwd=cwd, timeout=120)


def ok_json(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """The one JSON object a successful --json run printed (and nothing else on stdout)."""
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1, result.stdout
    payload = json.loads(lines[0])
    assert isinstance(payload, dict)
    return payload


def assert_one_error_line(result: subprocess.CompletedProcess[str], contains: str) -> str:
    """Exit 1, empty stdout, exactly one `error: ...` line on stderr, no traceback, no secret."""
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    assert contains in lines[0], lines[0]
    assert "Traceback" not in result.stderr
    assert SECRET not in result.stderr
    return lines[0]


def with_password(url: str) -> str:
    """`url` with SECRET as its password (the test server trusts local connections)."""
    parts = urlsplit(url)
    if parts.password is not None:
        return url
    netloc = f"{parts.username or 'postgres'}:{SECRET}@{parts.hostname}:{parts.port or 5432}"
    return urlunsplit(parts._replace(netloc=netloc))


def client(store: Path) -> mlflow.MlflowClient:
    return mlflow.MlflowClient(tracking_uri=f"sqlite:///{store}/mlflow.db")


def runs(store: Path, experiment: str = "new-exp") -> list[mlflow.entities.Run]:
    c = client(store)
    exp = c.get_experiment_by_name(experiment)
    return [] if exp is None else list(c.search_runs([exp.experiment_id]))


@pytest.fixture
def clean_settings() -> Any:
    """Clear the cached settings around a test that changes TRAINER_* variables."""
    from trainer.settings import get_settings

    get_settings.cache_clear()
    yield get_settings
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def blank_store(tmp_path_factory: pytest.TempPathFactory) -> Callable[[Path], Path]:
    """Copy an empty, already migrated SQLite store into a folder (saves ~1 s per new store)."""
    template = tmp_path_factory.mktemp("blank-store")
    client(template).search_experiments()  # creates the tables

    def copy(folder: Path) -> Path:
        shutil.copy(template / "mlflow.db", folder / "mlflow.db")
        return folder

    return copy
