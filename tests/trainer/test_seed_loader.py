"""The seed's load_model_from_registry.py, unchanged, on what `train` leaves after a Postgres run.

It reads data.csv, drops id, timestamp and target, splits 80/20 with random_state=2022 and
prints both accuracies: data.csv must keep the columns as they were read from Postgres.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tests.trainer.conftest import ok_json, store_env, trainer
from trainer import seed
from trainer.data import IRIS_FEATURES

pytestmark = pytest.mark.postgres

SEED_SCRIPT = Path(__file__).with_name("seed_load_model_from_registry.py")


@pytest.fixture(scope="module")
def postgres_run(
    make_database: Callable[[], str],
    tmp_path_factory: pytest.TempPathFactory,
    blank_store: Callable[[Path], Path],
) -> tuple[Path, dict[str, Any]]:
    """A training run on the seeded iris_data table: its folder (store + data.csv), its JSON."""
    url = make_database()
    seed.seed(url, "iris_data")
    folder = blank_store(tmp_path_factory.mktemp("postgres-run"))
    result = trainer("train", "--json", cwd=folder, env=store_env(folder, {"TRAINER_DATA": url}))
    return folder, ok_json(result)


def test_data_csv_keeps_the_columns_read_from_postgres(
    postgres_run: tuple[Path, dict[str, Any]],
) -> None:
    folder, _ = postgres_run
    frame = pd.read_csv(folder / "data.csv")
    assert list(frame.columns) == ["id", "timestamp", *IRIS_FEATURES, "target"]
    assert list(frame["id"]) == list(range(150, 50, -1))  # the latest 100, newest first
    assert frame["timestamp"].notna().all()


def test_the_seeds_loader_prints_both_accuracies_of_the_run(
    postgres_run: tuple[Path, dict[str, Any]],
) -> None:
    folder, run = postgres_run
    result = subprocess.run(
        [sys.executable, str(SEED_SCRIPT), "--run-id", run["run_id"], "--model-name", "sk_model"],
        cwd=folder,
        env=store_env(folder),
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"Train Accuracy : {run['metrics']['train_acc']}",
        f"Valid Accuracy : {run['metrics']['valid_acc']}",
    ]


def test_evaluate_scores_the_same_data_csv(postgres_run: tuple[Path, dict[str, Any]]) -> None:
    folder, run = postgres_run
    result = ok_json(
        trainer("evaluate", "--run-id", run["run_id"], "--json", cwd=folder, env=store_env(folder))
    )
    assert result["metrics"] == run["metrics"]
    assert (result["n_train"], result["n_valid"]) == (80, 20)
