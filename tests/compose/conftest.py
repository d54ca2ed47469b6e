"""The stack under test: one compose project for the whole session, taken down with its volumes
whatever happens; every container's logs attached to a step that fails.

test_stack.py's steps run first, then test_fleet.py scales the same project up to the fleet
(no second stack to build and start), then test_security.py, then the steps marked
`last_step` (down -v)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.compose.stack import LAST, Stack, engine_problem
from tests.conftest import IN_CI

HERE = Path(__file__).parent
_timings: list[dict[str, float]] = []
_figures: list[dict[str, str]] = []


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    problem = engine_problem()
    if problem:
        if IN_CI:
            pytest.fail(
                f"{problem} (CI=true: the compose tests must run; .ci/run sets up an engine "
                "with ../shared/docker-offline/setup)"
            )
        pytest.skip(f"{problem}: the compose tests need a Docker engine with Compose v2")
    stack = Stack(tmp_path_factory.mktemp("compose"))
    _timings.append(stack.timings)
    _figures.append(stack.figures)
    try:
        yield stack
    finally:
        stack.down()


MODULES = ("test_stack.py", "test_fleet.py", "test_security.py")
"""The order the modules share the stack in: the single API's steps, then the fleet's, then
the containers' locks read back (it creates containers, starts none)."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The compose tests in MODULES' order; the steps marked `last_step` after all of them,
    and right after: the stack is not kept up while the rest of the suite runs."""
    here = [i for i, item in enumerate(items) if item.path.parent == HERE]
    if not here:
        return
    ours = [items[i] for i in here]
    ours.sort(key=lambda item: MODULES.index(item.path.name) if item.path.name in MODULES else 0)
    ours.sort(key=lambda item: bool(getattr(getattr(item, "function", None), LAST, False)))
    at = here[0]
    rest = [item for item in items if item.path.parent != HERE]
    items[:] = rest[:at] + ours + rest[at:]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Iterator[None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()  # type: ignore[attr-defined]
    stack = getattr(item, "funcargs", {}).get("stack")
    if report.when == "call" and report.failed and isinstance(stack, Stack):
        path, logs = stack.keep_logs(item.name)
        report.sections.append((f"docker compose logs (also in {path})", logs))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """How long the stack took to come up: CI's time budget, seen in every run."""
    for timings in _timings:
        if timings:
            figures = ", ".join(f"{what} {seconds:.0f}s" for what, seconds in timings.items())
            terminalreporter.write_line(f"compose stack: {figures}")
    for counted in _figures:
        for what, figure in counted.items():
            terminalreporter.write_line(f"compose stack, {what}: {figure}")
