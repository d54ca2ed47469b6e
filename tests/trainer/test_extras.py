"""Installed without its extra (`pip install .`), every trainer command ends with one line that
names what to install, exit 2: no ImportError traceback.

Each case is a real `python -m trainer` process in which the extra's modules cannot be imported
(`sys.modules[name] = None`, Python's own way to make `import name` fail), as after
`pip install .`, which brings mlflow-skinny but neither psycopg2 nor full mlflow's SQL stores.
"""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.servers import ROOT, python_env

# What `pip install .` does not bring: the [trainer] extra's modules, and Evidently.
NOT_IN_BASE = ("psycopg2", "sqlalchemy", "alembic", "evidently")
RUN_WITHOUT = """
import runpy, sys
for name in sys.argv[1].split(","):
    sys.modules[name] = None
sys.argv[1:2] = []
runpy.run_module("trainer", run_name="__main__", alter_sys=True)
"""
COMMANDS = {
    "train": ["train"],
    "evaluate": ["evaluate", "--run-id", "0123abcd"],
    "seed-db": ["seed-db", "postgresql://u:p@127.0.0.1:1/db"],
    "create-bucket": ["create-bucket", "artifacts"],
    "report": ["report", "--log-url", "postgresql://u:p@127.0.0.1:1/db"],
}


def without(
    modules: tuple[str, ...], args: list[str], cwd: Path
) -> subprocess.CompletedProcess[str]:
    """`python -m trainer args` in a process where `modules` cannot be imported."""
    return subprocess.run(
        [sys.executable, "-c", RUN_WITHOUT, ",".join(modules), *args],
        env=python_env({"PYTHONPATH": str(ROOT)}, drop=["MLFLOW_TRACKING_URI"]),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def run_all(
    cases: dict[str, tuple[tuple[str, ...], list[str]]], tmp_path: Path
) -> dict[str, subprocess.CompletedProcess[str]]:
    with ThreadPoolExecutor(max_workers=len(cases)) as pool:
        futures = {name: pool.submit(without, *case, tmp_path) for name, case in cases.items()}
        return {name: future.result() for name, future in futures.items()}


def assert_install_line(result: subprocess.CompletedProcess[str], install: str) -> None:
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: this command needs the ["), lines[0]
    assert lines[0].endswith(f": {install}"), lines[0]


def test_without_the_extras_every_command_names_its_pip_install(tmp_path: Path) -> None:
    results = run_all({name: (NOT_IN_BASE, args) for name, args in COMMANDS.items()}, tmp_path)
    for name, result in results.items():
        install = "pip install '.[report]'" if name == "report" else "pip install '.[trainer]'"
        assert_install_line(result, install)
    assert "(no module psycopg2, sqlalchemy, alembic)" in results["train"].stderr
    assert list(tmp_path.iterdir()) == []  # nothing started: no .mlflow, no data.csv


def test_one_missing_module_is_enough_and_named(tmp_path: Path) -> None:
    results = run_all(
        {
            "no-driver": (("psycopg2",), ["train"]),
            "no-sql-store": (("sqlalchemy",), ["evaluate", "--run-id", "x"]),
            "no-evidently": (("evidently",), COMMANDS["report"]),
            # the trainer's commands do not need Evidently: this one gets to its own error
            "train-without-evidently": (("evidently",), ["evaluate", "--run-id", "x"]),
        },
        tmp_path,
    )
    assert_install_line(results["no-driver"], "pip install '.[trainer]'")
    assert "(no module psycopg2)" in results["no-driver"].stderr
    assert_install_line(results["no-sql-store"], "pip install '.[trainer]'")
    assert "(no module sqlalchemy)" in results["no-sql-store"].stderr
    assert_install_line(results["no-evidently"], "pip install '.[report]'")
    assert "(no module evidently)" in results["no-evidently"].stderr
    other = results["train-without-evidently"]
    assert other.returncode == 1, other.stderr
    assert other.stderr.splitlines() == ["error: CSV file not found: data.csv"]


@pytest.mark.parametrize("args", [["--help"], ["train", "--help"]])
def test_help_works_without_the_extra(tmp_path: Path, args: list[str]) -> None:
    result = without(NOT_IN_BASE, args, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "usage: python -m trainer" in result.stdout
