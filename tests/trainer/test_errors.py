"""Every expected failure: one `error:` line on stderr, exit 1, no traceback, no password;
a run that failed after it started is FAILED and nothing is registered.

A few cases run as real subprocesses, concurrently (importing mlflow costs ~2.5 s of CPU per
process); the rest go through main() in-process, which prints to the same streams.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg2
import pytest

from tests.servers import free_port
from tests.trainer.conftest import (
    SECRET,
    assert_one_error_line,
    client,
    runs,
    store_env,
    trainer,
    with_password,
)
from trainer import seed
from trainer.cli import main
from trainer.data import iris_frame
from trainer.errors import first_line, redact, scrub

Results = dict[str, tuple[subprocess.CompletedProcess[str], float, Path]]
REGISTER = ["--register", "--alias", "champion"]
ONE_CLASS_CSV = "a,b,target\n" + "".join(f"{i},{i * 2},0\n" for i in range(20))
DEAD = f"127.0.0.1:{free_port()}"


def run_all(
    cases: dict[str, tuple[list[str], dict[str, str]]],
    root: Path,
    blank_store: Callable[[Path], Path],
) -> Results:
    """Run each case's CLI in its own folder and SQLite store, all at once."""

    def one(name: str) -> tuple[subprocess.CompletedProcess[str], float, Path]:
        args, extra = cases[name]
        folder = root / name
        started = time.monotonic()
        result = trainer(*args, cwd=folder, env=store_env(folder, extra))
        return result, time.monotonic() - started, folder

    for name in cases:
        (root / name).mkdir()
        blank_store(root / name)
    (root / "one-class-csv" / "rows.csv").write_text(ONE_CLASS_CSV)
    with ThreadPoolExecutor(max_workers=len(cases)) as pool:
        return dict(zip(cases, pool.map(one, cases), strict=True))


# name: (args, extra env, what the error line says, whether a run was started and FAILED)
SUBPROCESS: dict[str, tuple[list[str], dict[str, str], str, bool]] = {
    "unreachable-tracking": (
        ["train"],
        {"MLFLOW_TRACKING_URI": f"http://u:{SECRET}@{DEAD}"},
        f"cannot reach the MLflow tracking server at http://u:***@{DEAD}",
        False,
    ),
    "unreachable-database": (
        ["train", "--data", f"postgresql://u:{SECRET}@{DEAD}/db", *REGISTER],
        {},
        f"cannot connect to database postgresql://u:***@{DEAD}/db",
        True,
    ),
    "one-class-csv": (
        ["train", "--data", "rows.csv", *REGISTER],
        {},
        "the training labels have 1 class(es) ('target'); at least 2 are needed",
        True,
    ),
    "bucket-unreachable": (
        ["create-bucket", "b", "--endpoint-url", f"http://{DEAD}", "--timeout", "2"],
        {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": SECRET},
        f"S3 endpoint http://{DEAD} unreachable, gave up after 2s",
        False,
    ),
}


@pytest.fixture(scope="module")
def results(
    tmp_path_factory: pytest.TempPathFactory, blank_store: Callable[[Path], Path]
) -> Results:
    cases = {name: (args, extra) for name, (args, extra, _, _) in SUBPROCESS.items()}
    return run_all(cases, tmp_path_factory.mktemp("errors"), blank_store)


@pytest.mark.parametrize("name", list(SUBPROCESS))
def test_the_real_cli_fails_with_one_clear_line(results: Results, name: str) -> None:
    result, elapsed, folder = results[name]
    _, _, message, started = SUBPROCESS[name]
    assert_one_error_line(result, message)
    # All cases run at once on a 2-core machine (each process imports MLflow); the bound is
    # against MLflow's own retries, which go on for minutes, not a speed figure.
    assert elapsed < 60, f"{name} took {elapsed:.1f}s to fail"
    if started:
        [run] = runs(folder)
        assert run.info.status == "FAILED"
        assert SECRET not in str(run.data.params)
        assert client(folder).search_registered_models() == []


# name: (args, extra env, CSV content of rows.csv or None, message, whether a run FAILED)
IN_PROCESS: dict[str, tuple[list[str], dict[str, str], str | None, str, bool]] = {
    "missing-csv": (["train", "--data", "missing.csv"], {}, None, "CSV file not found", False),
    "bad-scheme": (["train", "--data", f"mysql://u:{SECRET}@h/db"], {}, None, "scheme", False),
    "bad-run-id": (["evaluate", "--run-id", "0123abc"], {}, None, "id=0123abc not found", False),
    "bad-model-uri": (
        ["evaluate", "--model-uri", "models:/nope@champion"],
        {},
        None,
        "nope",
        False,
    ),
    "evaluate-no-csv": (
        ["evaluate", "--run-id", "x", "--data-csv", "no.csv"],
        {},
        None,
        "no.c",
        False,
    ),
    "bad-setting": (["train"], {"TRAINER_LIMIT": "many"}, None, "TRAINER_LIMIT", False),
    "seed-needs-postgres": (["seed-db", "rows.csv"], {}, None, "needs a postgresql://", False),
    "data-out-folder": (["train", "--data-out", "no/d.csv"], {}, None, "folder no does not", False),
    "empty-csv": (["train", "--data", "rows.csv"], {}, "a,b,target\n", "has no rows", True),
    "no-label": (["train", "--data", "rows.csv"], {}, "a,b\n1,2\n", "no label column", True),
    "unreadable-csv": (
        ["train", "--data", "rows.csv"],
        {},
        "\udcff\udcfe\x00",
        "cannot read",
        True,
    ),
    "label-option": (["train", "--label", "species", *REGISTER], {}, None, "'species'", True),
}


def call_main(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("name", list(IN_PROCESS))
def test_expected_failures_end_with_one_clear_line(
    name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    clean_settings: Any,
    blank_store: Callable[[Path], Path],
) -> None:
    args, extra, content, message, started = IN_PROCESS[name]
    monkeypatch.chdir(blank_store(tmp_path))
    iris_frame().to_csv(tmp_path / "data.csv", index=False)
    if content is not None:
        (tmp_path / "rows.csv").write_bytes(content.encode("utf-8", "surrogateescape"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    for key, value in extra.items():
        monkeypatch.setenv(key, value)
    code, out, err = call_main(args, capsys)
    assert (code, out) == (1, "")
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert message in err and SECRET not in err and "Traceback" not in err
    assert [r.info.status for r in runs(tmp_path)] == (["FAILED"] if started else [])
    assert client(tmp_path).search_registered_models() == []


@pytest.mark.parametrize(
    "args",
    [
        ["train", "--C", "-1"],
        ["train", "--train-size", "1.5"],
        ["train", "--kernel", "cubic"],
        ["train", "--gamma", "lots"],
        ["train", "--limit", "0"],
        ["train", "--skip-if-exists"],
        ["train", "--alias", "prod"],
        ["evaluate"],
        ["evaluate", "--run-id", "a", "--model-uri", "b"],
        ["seed-db", "--interval", "0"],
        ["create-bucket"],
        ["fly"],
    ],
)
def test_bad_options_are_usage_errors(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(args)
    assert caught.value.code == 2
    assert "usage:" in capsys.readouterr().err


def test_bad_options_exit_2_with_usage_from_the_real_cli(tmp_path: Path) -> None:
    result = trainer("train", "--train-size", "2", cwd=tmp_path, env=store_env(tmp_path))
    assert result.returncode == 2
    assert "--train-size: must be between 0 and 1" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


# -- Postgres sources failing inside the run ---------------------------------------------------


@pytest.fixture(scope="module")
def databases(make_database: Callable[[], str]) -> dict[str, str]:
    """An empty database, a seeded one, and one whose label has a single class."""
    empty, seeded, one_class = (with_password(make_database()) for _ in range(3))
    seed.seed(seeded, "iris_data")
    seed.seed(one_class, "iris_data")
    conn = psycopg2.connect(one_class)
    with conn, conn.cursor() as cur:
        cur.execute("UPDATE iris_data SET target = 0")
    conn.close()
    return {"empty": empty, "seeded": seeded, "one-class": one_class}


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("db", "args", "message"),
    [
        ("empty", [], "table 'iris_data' does not exist"),
        ("seeded", ["--table", "flowers"], "table 'flowers' does not exist"),
        ("seeded", ["--label", "species"], "table 'iris_data' has no label column 'species'"),
        ("one-class", [], "the training labels have 1 class(es)"),
    ],
)
def test_postgres_failures_mark_the_run_failed_and_register_nothing(
    databases: dict[str, str],
    db: str,
    args: list[str],
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    clean_settings: Any,
    blank_store: Callable[[Path], Path],
) -> None:
    monkeypatch.chdir(blank_store(tmp_path))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    monkeypatch.setenv("TRAINER_DATA", databases[db])
    code, out, err = call_main(["train", *REGISTER, *args], capsys)
    assert (code, out) == (1, "")
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert message in err and SECRET not in err
    [run] = runs(tmp_path)
    assert run.info.status == "FAILED"
    assert SECRET not in str(run.data.params)
    assert client(tmp_path).search_registered_models() == []


# -- the redaction helpers -----------------------------------------------------------------------


def test_redact_hides_only_the_password() -> None:
    assert redact(f"postgresql://me:{SECRET}@db:5432/x") == "postgresql://me:***@db:5432/x"
    assert redact("postgresql://me@db/x") == "postgresql://me@db/x"
    assert redact("data/iris.csv") == "data/iris.csv"


def test_scrub_hides_passwords_of_urls_inside_any_text() -> None:
    text = f"API request to http://u:{SECRET}@host:5000/api failed; see s3://k:{SECRET}@b/x"
    assert SECRET not in scrub(text)
    assert "http://u:***@host:5000/api" in scrub(text)
    assert first_line(ValueError(f"one http://a:{SECRET}@b\ntwo")) == "one http://a:***@b"
