"""The code's shape, as a newcomer meets it: every package says what it holds, no module is
too long to read in one sitting and no function too long to hold in one's head, and the
tests are laid out as the code they test."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("app", "trainer", "model_serving")
MAX_MODULE_LINES = 300
MAX_FUNCTION_LINES = 60


def modules() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_modules_and_functions_stay_short(path: Path) -> None:
    source = path.read_text()
    lines = source.count("\n")
    assert lines <= MAX_MODULE_LINES, f"{lines} lines: split it by concept"
    spans = {
        node.name: (node.end_lineno or node.lineno) - node.lineno + 1
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    }
    long = [f"{name} ({n} lines)" for name, n in spans.items() if n > MAX_FUNCTION_LINES]
    assert long == [], f"over {MAX_FUNCTION_LINES} lines"


def test_every_package_says_what_it_holds() -> None:
    silent = [
        str(init.parent.relative_to(ROOT))
        for pkg in PACKAGES
        for init in (ROOT / pkg).rglob("__init__.py")
        if len(ast.get_docstring(ast.parse(init.read_text())) or "") < 40
    ]
    assert silent == []


def test_the_app_tests_mirror_the_app_packages() -> None:
    """A test folder under tests/app/ is named for the package it tests."""
    packages = {p.parent.relative_to(ROOT / "app") for p in (ROOT / "app").rglob("__init__.py")}
    folders = {
        p.parent.relative_to(ROOT / "tests/app") for p in (ROOT / "tests/app").rglob("test_*.py")
    }
    assert folders - packages == set(), "test folders with no package of that name in app/"
