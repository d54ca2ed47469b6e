"""Fixtures of the monitoring tests: the pinned Prometheus image, a real model to serve."""

from __future__ import annotations

import pytest

# tests/app's session fixture: a model trained by the trainer CLI into a SQLite store.
from tests.app.conftest import trained  # noqa: F401
from tests.monitoring import prometheus


@pytest.fixture(scope="session")
def prometheus_image() -> str:
    """docker-compose.yaml's prom/prometheus image, present on a running Docker engine; skips
    without one (fails when CI=true)."""
    image = prometheus.prometheus_image()
    prometheus.require_image(image)
    return image
