"""`python -m trainer train --data log`: a model fitted on the prediction log's labelled rows
over a time range, the run recording which rows (range, count, label source)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg2
import pytest
from psycopg2.extras import Json, execute_values

from model_serving.prediction_log import DDL, FEEDBACK_TABLE, LOG_COLUMNS, LOG_TABLE
from tests.iris import iris_data
from tests.trainer.conftest import assert_one_error_line, client, ok_json, store_env, trainer

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, blank_store: Callable[[Path], Path]) -> Path:
    return blank_store(tmp_path_factory.mktemp("from-log"))


def fill_log(url: str, run_id: str | None) -> None:
    """150 iris rows logged, one a minute from 2026-12-01T00:00Z; rows 0-119 labelled (POST
    /feedback), the labels of 100-119 as strings (JSON carries either)."""
    records, labels = iris_data()
    log, feedback = [], []
    for i, (record, label) in enumerate(zip(records, labels, strict=True)):
        ts = f"2026-12-01T{i // 60:02d}:{i % 60:02d}:00+00"
        log.append((ts, f"r{i}", 0, "sk_model", "1", run_id, Json(record), Json(0), 1.0))
        if i < 120:
            feedback.append((f"r{i}", 0, Json(str(label) if i >= 100 else label)))
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute(DDL)
        execute_values(cur, f"INSERT INTO {LOG_TABLE} ({', '.join(LOG_COLUMNS)}) VALUES %s", log)
        execute_values(
            cur, f"INSERT INTO {FEEDBACK_TABLE} (request_id, row_index, label) VALUES %s", feedback
        )
    conn.close()


def run_of(store: Path, result: dict[str, Any]) -> Any:
    return client(store).get_run(result["run_id"])


def test_train_on_the_logged_labelled_rows_of_a_range_and_register_a_challenger(
    store: Path, database: str
) -> None:
    env = store_env(store)
    first = ok_json(trainer("train", "--json", "--register", cwd=store, env=env))
    fill_log(database, first["run_id"])
    result = ok_json(
        trainer(
            "train",
            "--data",
            "log",
            "--log-url",
            database,
            "--since",
            "2026-12-01T00:10:00Z",
            "--until",
            "2026-12-01T01:50:00Z",
            "--register",
            "sk_model",
            "--alias",
            "challenger",
            "--json",
            cwd=store,
            env=env,
        )  # fmt: skip
    )
    run = run_of(store, result)
    params, tags = run.data.params, run.data.tags
    # Minutes 10 to 109 are in the range; of them, those before 120 have labels: 100 rows.
    assert params["log_rows"] == "100"
    assert int(params["n_train"]) + int(params["n_valid"]) == 100
    assert params["log_first_ts"].startswith("2026-12-01T00:10:00")
    assert params["log_last_ts"].startswith("2026-12-01T01:49:00")
    assert params["log_since"].startswith("2026-12-01T00:10:00")
    assert params["data"] == "log" and "prediction_feedback" in params["label_source"]
    assert tags["training.data"] == "prediction log" and tags["training.log_rows"] == "100"
    assert result["version"] == "2"
    alias = client(store).get_model_version_by_alias("sk_model", "challenger")
    assert str(alias.version) == "2"
    assert result["metrics"]["valid_acc"] > 0.8  # iris is learnable from these rows too

    with_training = ok_json(
        trainer(
            "train",
            "--data",
            "log",
            "--log-url",
            database,
            "--with-training",
            "--json",
            cwd=store,
            env=env,
        )  # fmt: skip
    )
    params = run_of(store, with_training).data.params
    # All 120 labelled rows, and the first run's 120 training rows.
    assert params["log_rows"] == "120" and params["with_training"] == first["run_id"]
    assert int(params["n_train"]) + int(params["n_valid"]) == 240


def test_a_range_without_labelled_rows_is_one_error_line(store: Path, database: str) -> None:
    fill_log(database, None)
    result = trainer(
        "train", "--data", "log", "--log-url", database, "--since", "2026-12-01T02:00:00Z",
        cwd=store, env=store_env(store),
    )  # fmt: skip
    assert_one_error_line(result, "no logged rows with a true label from 2026-12-01T02:00:00")


def test_data_log_needs_a_log_url(store: Path) -> None:
    result = trainer("train", "--data", "log", cwd=store, env=store_env(store))
    assert result.returncode == 2 and "--data log needs --log-url" in result.stderr
