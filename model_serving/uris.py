"""The grammar of MLflow model URIs this project reads, in one place.

The API serves any URI MLflow can load a model from (a local path, file://, s3://,
mlflow-artifacts:/, runs:/, models:/). Only two kinds name something that can move, and so are
resolved and followed on reload: `models:/<name>@<alias>` (an alias) and `runs:/...` (a run's
model, fixed once the run has it). `models:/<name>/<version>` names one registered version;
every other URI names one fixed folder of files (pinned).
"""

from __future__ import annotations

import re

RUNS = re.compile(r"^runs:/(?P<run_id>[^/]+)/(?P<path>.+)$")
"""runs:/<run_id>/<path>: the model logged under <path> in a run."""
ALIAS = re.compile(r"^models:/(?P<name>[^/@]+)@(?P<alias>[^/@]+)$")
"""models:/<name>@<alias>: the registered version an alias points at now."""
VERSION = re.compile(r"^models:/(?P<name>[^/@]+)/(?P<version>[0-9]+)$")
"""models:/<name>/<version>: one registered version."""


def runs_uri(run_id: str, name: str) -> str:
    return f"runs:/{run_id}/{name}"


def alias_uri(name: str, alias: str) -> str:
    return f"models:/{name}@{alias}"


def version_uri(name: str, version: str | int) -> str:
    return f"models:/{name}/{version}"
