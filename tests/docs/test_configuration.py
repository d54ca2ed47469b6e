"""The configuration page is the settings' own docstrings: every setting documented, and the
committed page what the generator writes now."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from app.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen", ROOT / "docs" / "gen_configuration.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_setting_has_a_docstring(generator: ModuleType) -> None:
    assert generator.undocumented() == []


def test_the_page_is_what_the_settings_say_now(generator: ModuleType) -> None:
    assert (ROOT / "docs" / "configuration.md").read_text() == generator.page(), (
        "docs/configuration.md is stale: run python docs/gen_configuration.py"
    )


def test_the_page_names_every_setting_once_with_its_default(generator: ModuleType) -> None:
    text = generator.page()
    for name, field in Settings.model_fields.items():
        rows = [line for line in text.splitlines() if line.startswith(f"| `{name.upper()}`")]
        assert len(rows) == 1, name
        assert generator._default(field.default) in rows[0]


def test_a_setting_without_a_docstring_fails_the_check(
    generator: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    field = Settings.model_fields["workers"]
    monkeypatch.setattr(field, "description", None)
    assert generator.undocumented() == ["workers"]
    assert generator.main(["--check"]) == 1
