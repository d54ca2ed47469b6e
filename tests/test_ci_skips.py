"""tests/conftest.py's rule: with CI=true a skipped test fails the run, naming the test and
why it skipped; without CI a skip stays a skip; an xfail is never a skip."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

TESTS = """
import pytest

@pytest.fixture
def engine():
    pytest.skip("no engine here")

def test_runs():
    pass

def test_skips_itself():
    pytest.skip("no kubectl on PATH")

def test_needs_an_engine(engine):
    pass

@pytest.mark.xfail(reason="known bug", strict=True)
def test_known_bug():
    assert False
"""


def _run(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, ci: str | None
) -> pytest.RunResult:
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    # The project's own conftest, as a plugin of a run of its own.
    return pytester.runpytest("-p", "tests.conftest", "-ra")


def test_with_ci_a_skip_fails_the_run_naming_the_test_and_the_reason(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_rule=TESTS)
    result = _run(pytester, monkeypatch, "true")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=1, failed=1, errors=1, xfailed=1)
    result.stdout.fnmatch_lines_random(
        [
            "FAILED test_rule.py::test_skips_itself*skipped with CI=true*no kubectl on PATH*",
            "ERROR test_rule.py::test_needs_an_engine*skipped with CI=true*no engine here*",
        ]
    )


@pytest.mark.parametrize("ci", [None, "", "false"])
def test_without_ci_a_skip_stays_a_skip(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, ci: str | None
) -> None:
    pytester.makepyfile(test_rule=TESTS)
    result = _run(pytester, monkeypatch, ci)
    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes(passed=1, skipped=2, xfailed=1)
    result.stdout.no_fnmatch_line("*skipped with CI=true*")


def test_with_ci_a_module_skipped_whole_fails_the_run(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(
        test_gone="import pytest\npytest.skip('no Docker engine', allow_module_level=True)\n",
        test_here="def test_runs():\n    pass\n",
    )
    result = _run(pytester, monkeypatch, "1")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["*skipped with CI=true*", "test_gone.py: *no Docker engine*"])
