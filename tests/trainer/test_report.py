"""`python -m trainer report`: the prediction log against the served run's training rows.

The log is model_serving.prediction_log's tables in a fresh Postgres database, filled here as
the API fills them; the run is a real training run in a SQLite store. The HTML is opened in
headless Chromium, as a person would open it.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg2
import pytest
from psycopg2.extras import Json, execute_values

from model_serving.prediction_log import DDL, FEEDBACK_TABLE, LOG_COLUMNS, LOG_TABLE
from tests.servers import free_port
from tests.trainer.browser import render
from tests.trainer.conftest import (
    SECRET,
    assert_one_error_line,
    client,
    ok_json,
    store_env,
    trainer,
    with_password,
)
from trainer.cli import main
from trainer.data import IRIS_FEATURES, iris_frame

pytestmark = pytest.mark.postgres

START = datetime(2025, 6, 1, tzinfo=UTC)
OLD = datetime(2020, 1, 1, tzinfo=UTC)
OTHER_RUN = "0" * 32
SERVED = 90  # rows of the served run logged from START, one a second
FEEDBACK = 40  # the first 40 of them got a true label, 10 of those disagree with the prediction
OLD_ROWS = 20  # rows of the served run logged long before, with petal_width far off
OTHER_ROWS = 10


def log_rows(run_id: str | None, shift: dict[str, float], n: int, start: datetime) -> list[Any]:
    """n logged predictions of `run_id`, iris rows with `shift` added to some features; the
    prediction is the iris label. Requests of 3 rows each."""
    rows = iris_frame().sample(n=n, random_state=n, replace=n > 150).reset_index(drop=True)
    prefix = f"{run_id}-{start.year}"
    out = []
    for i, (_, row) in enumerate(rows.iterrows()):  # the index is 0..n-1
        features = {f: float(row[f]) + shift.get(f, 0.0) for f in IRIS_FEATURES}
        out.append(
            (
                start + timedelta(seconds=i),
                f"{prefix}-{i // 3}",
                i % 3,
                "sk_model",
                "1",
                run_id,
                Json(features),
                Json(int(row["target"])),
                1.5,
            )
        )
    return out


def fill_log(url: str, run_id: str) -> None:
    conn = psycopg2.connect(url)
    with conn, conn.cursor() as cur:
        cur.execute(DDL)
        rows = [
            *log_rows(run_id, {"sepal_length": 2.0}, SERVED, START),
            *log_rows(run_id, {"petal_width": 5.0}, OLD_ROWS, OLD),
            *log_rows(OTHER_RUN, {}, OTHER_ROWS, START + timedelta(hours=1)),
        ]
        execute_values(cur, f"INSERT INTO {LOG_TABLE} ({', '.join(LOG_COLUMNS)}) VALUES %s", rows)
        cur.execute(
            f"SELECT request_id, row_index, prediction FROM {LOG_TABLE}"
            " WHERE run_id = %s AND ts >= %s ORDER BY ts LIMIT %s",
            (run_id, START, FEEDBACK),
        )
        labels = [
            (request_id, row_index, Json(prediction if i >= 10 else (prediction + 1) % 3))
            for i, (request_id, row_index, prediction) in enumerate(cur.fetchall())
        ]
        execute_values(
            cur, f"INSERT INTO {FEEDBACK_TABLE} (request_id, row_index, label) VALUES %s", labels
        )
    conn.close()


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, blank_store: Callable[[Path], Path]) -> Path:
    return blank_store(tmp_path_factory.mktemp("report-store"))


@pytest.fixture(scope="module")
def run_id(store: Path) -> str:
    return str(ok_json(trainer("train", "--json", cwd=store, env=store_env(store)))["run_id"])


@pytest.fixture(scope="module")
def log_url(make_database: Callable[[], str], run_id: str) -> str:
    url = make_database()
    fill_log(url, run_id)
    return with_password(url)


def report(store: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return trainer("report", *args, cwd=store, env=store_env(store))


def in_process(args: list[str], store: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> Any:
    """main(["report", *args]) against `store`: (exit code, stdout, stderr)."""
    monkeypatch.chdir(store)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store}/mlflow.db")
    code = main(["report", *args])
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(args, code, out, err)


def test_the_report_shows_drift_and_live_accuracy_of_the_served_run(
    store: Path, run_id: str, log_url: str, tmp_path: Path
) -> None:
    output = tmp_path / "report.html"
    since = "2025-05-31T00:00:00Z"
    result = report(store, "--log-url", log_url, "--since", since, "--output", str(output))
    assert result.returncode == 0, result.stderr
    assert SECRET not in result.stdout + result.stderr
    assert result.stdout.startswith(f"wrote {output}: {SERVED} predictions of run {run_id}")
    assert "drift in 1 of 4 features" in result.stdout
    assert "live accuracy 0.750 on 40 rows with feedback" in result.stdout

    page = render(output, tmp_path)
    for feature in IRIS_FEATURES:
        assert feature in page.text, feature
    assert "Dataset Drift" in page.text
    assert "Drift is detected for 25.0% of columns (1 out of 4)" in page.text
    assert f"sk_model v1 (run {run_id})" in page.text
    assert "10 rows of other runs left out" in page.text
    assert "Confusion Matrix" in page.text
    assert "Accuracy" in page.text
    assert page.screenshot.stat().st_size > 50_000  # a rendered page, not a blank one


def test_the_run_with_the_most_rows_in_the_period_is_picked_and_since_defaults_to_all(
    store: Path, run_id: str, log_url: str, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    args = ["--log-url", log_url, "--json", "--output", "all.html"]
    summary = ok_json(in_process(args, store, monkeypatch, capsys))
    assert (summary["run_id"], summary["model"]) == (run_id, "sk_model v1")
    assert summary["predictions"] == SERVED + OLD_ROWS
    assert summary["other_runs"] == OTHER_ROWS
    assert summary["features"] == list(IRIS_FEATURES)
    assert summary["drifted_features"] == 2  # sepal_length, and petal_width of the old rows
    assert (summary["feedback_rows"], summary["live_accuracy"]) == (FEEDBACK, 0.75)
    assert summary["first"] == "2020-01-01T00:00:00+00:00"
    assert (store / "all.html").is_file()


def test_without_feedback_the_report_says_so(
    store: Path,
    run_id: str,
    log_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: Any,
) -> None:
    after_feedback = (START + timedelta(seconds=FEEDBACK)).isoformat()
    output = tmp_path / "late.html"
    args = ["--log-url", log_url, "--since", after_feedback, "--json", "--output", str(output)]
    summary = ok_json(in_process(args, store, monkeypatch, capsys))
    assert summary["predictions"] == SERVED - FEEDBACK
    assert (summary["feedback_rows"], summary["live_accuracy"]) == (0, None)
    page = render(output, tmp_path)
    assert "No logged prediction of this run has a true label yet" in page.text
    assert all(feature in page.text for feature in IRIS_FEATURES)


def test_clear_one_line_errors(
    store: Path,
    run_id: str,
    log_url: str,
    make_database: Callable[[], str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    empty = with_password(make_database())
    conn = psycopg2.connect(empty)
    with conn, conn.cursor() as cur:
        cur.execute(DDL)
    conn.close()
    no_tables = with_password(make_database())
    dead = f"postgresql://u:{SECRET}@127.0.0.1:{free_port()}/log"
    bare_run = client(store).create_run(client(store).create_experiment("bare")).info.run_id
    conn = psycopg2.connect(log_url)
    with conn, conn.cursor() as cur:
        rows = log_rows(bare_run, {}, 5, START)
        execute_values(cur, f"INSERT INTO {LOG_TABLE} ({', '.join(LOG_COLUMNS)}) VALUES %s", rows)
    conn.close()
    redacted = empty.replace(SECRET, "***")
    cases = {
        "no rows": ([empty], f"no predictions logged in {redacted}"),
        "none since": (
            [log_url, "--since", "2030-01-01T00:00:00"],
            "no predictions logged since 2030-01-01T00:00:00+00:00",
        ),
        "no log tables": (
            [no_tables],
            f"no prediction log in {no_tables.replace(SECRET, '***')}: table prediction_log",
        ),
        "unreachable": ([dead], "cannot connect to database postgresql://u:***@127.0.0.1"),
        "not postgres": (["sqlite:///log.db"], "--log-url must be a postgresql:// URL"),
        "unknown run": ([log_url, "--run-id", "feedbeef"], "no predictions of run feedbeef"),
        "run not in MLflow": ([log_url, "--run-id", OTHER_RUN], f"Run with id={OTHER_RUN}"),
        "run without reference data": (
            [log_url, "--run-id", bare_run],
            f"run {bare_run} has no training data (reference/training.csv)",
        ),
    }
    for args, message in cases.values():
        url, *rest = args
        result = in_process(["--log-url", url, *rest], store, monkeypatch, capsys)
        assert_one_error_line(result, message)
    assert not (store / "report.html").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "report needs --log-url (or TRAINER_LOG_URL)"),
        (["--log-url", "postgresql://x/y", "--since", "yesterday"], "must be an ISO 8601 time"),
    ],
)
def test_usage_errors_exit_2(
    args: list[str], message: str, store: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    monkeypatch.delenv("TRAINER_LOG_URL", raising=False)
    with pytest.raises(SystemExit) as exit_info:
        in_process(args, store, monkeypatch, capsys)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_the_log_url_can_come_from_the_environment(
    store: Path,
    run_id: str,
    log_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: Any,
    clean_settings: Any,
) -> None:
    monkeypatch.setenv("TRAINER_LOG_URL", log_url)
    args = ["--json", "--output", str(tmp_path / "r.html")]
    assert ok_json(in_process(args, store, monkeypatch, capsys))["run_id"] == run_id
