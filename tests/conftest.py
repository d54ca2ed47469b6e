"""Fixtures shared by every test package: the machine's PostgreSQL, fresh databases, and
figures printed in the terminal summary; and the rule that a skip fails a run with CI=true."""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Callable, Generator, Iterator
from urllib.parse import urlsplit, urlunsplit

import psycopg2
import pytest
from psycopg2 import sql


def in_ci() -> bool:
    """Whether this run is CI's (CI=true), where every test must run."""
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


IN_CI = in_ci()
ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


# MLflow's URI variables as the session found them, before any fixture ran.
_PRISTINE_MLFLOW_ENV = {
    k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
}


def _reset_mlflow_uris() -> None:
    for key, value in _PRISTINE_MLFLOW_ENV.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    if "mlflow" in sys.modules:
        from mlflow.tracking._model_registry import utils as registry_utils
        from mlflow.tracking._tracking_service import utils as tracking_utils

        # mlflow declares both `= None` at module level; they hold the URI once one is set.
        tracking_utils._tracking_uri = _PRISTINE_MLFLOW_ENV["MLFLOW_TRACKING_URI"]  # type: ignore[assignment]
        registry_utils._registry_uri = _PRISTINE_MLFLOW_ENV["MLFLOW_REGISTRY_URI"]  # type: ignore[assignment]


@pytest.fixture(autouse=True)
def _isolate_mlflow_globals() -> Iterator[None]:
    """Every test starts and ends with the session's original MLflow tracking/registry URIs:
    code under test (the app's loader, the trainer run in-process) and session fixtures set
    MLflow's process-wide ones, which would otherwise steer later tests to their stores."""
    _reset_mlflow_uris()
    yield
    _reset_mlflow_uris()


@pytest.fixture(scope="session")
def postgres_admin_url() -> str:
    """The server's admin URL; skips locally, fails in CI, when PostgreSQL is unreachable."""
    try:
        psycopg2.connect(ADMIN_URL, connect_timeout=3).close()
    except psycopg2.OperationalError as exc:
        message = f"PostgreSQL at {ADMIN_URL} is unreachable: {exc}".strip()
        if IN_CI:
            pytest.fail(message + " (CI=true: Postgres tests must run)")
        pytest.skip(message)
    return ADMIN_URL


@pytest.fixture(scope="session")
def make_database(postgres_admin_url: str) -> Iterator[Callable[[], str]]:
    """A factory of fresh, empty databases (URL returned); all are dropped at session end."""
    created: list[str] = []

    def make() -> str:
        name = f"ms_test_{uuid.uuid4().hex[:12]}"
        conn = psycopg2.connect(postgres_admin_url)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        conn.close()
        created.append(name)
        return _with_database(postgres_admin_url, name)

    yield make

    conn = psycopg2.connect(postgres_admin_url)
    conn.autocommit = True
    with conn.cursor() as cur:
        for name in created:
            cur.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
    conn.close()


@pytest.fixture
def database(make_database: Callable[[], str]) -> str:
    """One fresh database for this test."""
    return make_database()


_FIGURES = pytest.StashKey[list[str]]()


@pytest.fixture(scope="session")
def figures(pytestconfig: pytest.Config) -> list[str]:
    """Lines a test appends to be printed in the run's terminal summary, under "figures"
    (CI runs pytest with -ra, not -s: a test's own output would be captured)."""
    return pytestconfig.stash.setdefault(_FIGURES, [])


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    lines = config.stash.get(_FIGURES, [])
    if lines:
        terminalreporter.section("figures")
        for line in lines:
            terminalreporter.write_line(line)
    skipped = config.stash.get(_SKIPPED_MODULES, [])
    if skipped:
        terminalreporter.section(CI_SKIP, red=True)
        for line in skipped:
            terminalreporter.write_line(line)


# A skip fails a run with CI=true: a test that CI skipped did not run. A skip in a test or its
# fixtures fails that test; a module skipped whole fails the run, named in the summary. (An
# xfail is reported as a skip too, but is not one: it stays as it is.)
CI_SKIP = "skipped with CI=true, where every test must run"
_SKIPPED_MODULES = pytest.StashKey[list[str]]()


def _skip_reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    longrepr = report.longrepr
    return str(longrepr[2]) if isinstance(longrepr, tuple) else str(longrepr)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.skipped and not hasattr(report, "wasxfail") and in_ci():
        report.outcome = "failed"
        report.longrepr = f"{CI_SKIP}: {_skip_reason(report)}"
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(
    collector: pytest.Collector,
) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
    report = yield
    if report.skipped and in_ci():
        skipped = collector.config.stash.setdefault(_SKIPPED_MODULES, [])
        skipped.append(f"{report.nodeid}: {_skip_reason(report)}")
    return report


def pytest_sessionfinish(session: pytest.Session) -> None:
    if session.config.stash.get(_SKIPPED_MODULES, []) and session.exitstatus in (
        pytest.ExitCode.OK,
        pytest.ExitCode.NO_TESTS_COLLECTED,
    ):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
