"""Where MLflow's stores are when nothing says otherwise: the embedded default.

Both the trainer and the API use `<cwd>/.mlflow/`: the SQLite tracking store `mlflow.db` and
the artifact folder `artifacts/`, whenever `MLFLOW_TRACKING_URI` is unset.
"""

from __future__ import annotations

import os
from pathlib import Path

EMBEDDED_DIR = Path(".mlflow")
"""The embedded default's folder, relative to the working directory."""


def embedded_dir() -> Path:
    """The embedded default's folder, absolute (from the current working directory)."""
    return Path.cwd() / EMBEDDED_DIR


def embedded_tracking_uri() -> str:
    """sqlite:///<cwd>/.mlflow/mlflow.db."""
    return f"sqlite:///{embedded_dir() / 'mlflow.db'}"


def embedded_artifact_uri() -> str:
    """file:// URI of <cwd>/.mlflow/artifacts, for experiments created on the embedded store."""
    return (embedded_dir() / "artifacts").as_uri()


def default_tracking_uri() -> str:
    """MLFLOW_TRACKING_URI if set (surrounding blanks ignored), else the embedded store."""
    return (os.environ.get("MLFLOW_TRACKING_URI") or "").strip() or embedded_tracking_uri()
