"""With several workers, readiness counts the live workers that have their model."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from app.monitoring.metrics import SHARED_DIR_ENV
from app.serving.workers import mark_ready, ready_workers


def test_ready_workers_counts_live_workers_that_marked_themselves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(SHARED_DIR_ENV, raising=False)
    assert ready_workers() is None  # one process: nothing to count
    monkeypatch.setenv(SHARED_DIR_ENV, str(tmp_path))
    assert ready_workers() == 0
    mark_ready(True)
    assert ready_workers() == 1
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    (tmp_path / f"ready-{gone.stdout.strip()}").touch()  # a worker that died marked
    assert ready_workers() == 1
    mark_ready(False)
    assert ready_workers() == 0
