"""The configuration page is the settings' own docstrings: every setting documented, the
committed page what the generator writes now, and each row, once rendered, saying what the
docstring says."""

from __future__ import annotations

import html
import importlib.util
from html.parser import HTMLParser
from pathlib import Path
from types import ModuleType

import markdown
import pytest
from pydantic import AliasChoices, Field

from app.settings import RENAMED, Settings

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "configuration.md"


@pytest.fixture(scope="module")
def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen", ROOT / "docs" / "gen_configuration.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _Cells(HTMLParser):
    """The text of each table row's cells, as a browser shows it."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.rows: list[list[str]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: object) -> None:
        if tag == "tr":
            self.rows.append([])
        elif tag == "td":
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._cell is not None:
            self.rows[-1].append("".join(self._cell))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def rendered_rows(text: str) -> dict[str, list[str]]:
    """{variable: its cells} of the page as MkDocs renders it."""
    parser = _Cells()
    parser.feed(markdown.markdown(text, extensions=["tables"]))
    return {cells[0].split()[0]: cells for cells in parser.rows if cells}


def test_every_setting_has_a_docstring(generator: ModuleType) -> None:
    assert generator.undocumented() == []


def test_the_committed_page_is_what_the_settings_say_now(generator: ModuleType) -> None:
    assert PAGE.read_text() == generator.page(), (
        "docs/configuration.md is stale: run python docs/gen_configuration.py"
    )
    assert generator.main(["--check"]) == 0


def test_each_setting_renders_once_with_its_docstring_and_default(generator: ModuleType) -> None:
    rows = rendered_rows(generator.page())
    assert set(rows) == {name.upper() for name in Settings.model_fields}
    for name, field in Settings.model_fields.items():
        variable, kind, default, meaning = rows[name.upper()]
        assert field.description is not None
        said = html.unescape(" ".join(field.description.split())).replace("`", "")
        assert meaning == said, name  # no markup eaten: *, _, <...>, | shown as written
        shown = generator._default(generator._field_default(field)).strip("`")
        assert default == shown, name
    assert rows["MODEL_PROCESSES"][1] == "int (≥ 0, ≤ 16), optional"
    assert rows["LOG_LEVEL"][1] == "CRITICAL | ERROR | WARNING | INFO | DEBUG"


def test_a_renamed_setting_shows_its_former_name(generator: ModuleType) -> None:
    rows = rendered_rows(generator.page())
    for old, new in RENAMED.items():
        assert rows[new.upper()][0] == f"{new.upper()} (formerly {old.upper()})"


def test_a_former_name_given_as_a_validation_alias_is_shown(generator: ModuleType) -> None:
    field = Field(default=1, validation_alias=AliasChoices("rows_now", "ROWS_BEFORE"))
    assert generator.former_names("rows_now", field) == ["rows_before"]
    assert "(formerly `ROWS_BEFORE`)" in generator.row("rows_now", field)


def test_a_setting_without_a_docstring_fails_the_check(
    generator: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    field = Settings.model_fields["workers"]
    monkeypatch.setattr(field, "description", None)
    assert generator.undocumented() == ["workers"]
    assert generator.main(["--check"]) == 1


def test_a_stale_page_fails_the_check(
    generator: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    field = Settings.model_fields["workers"]
    monkeypatch.setattr(field, "description", "Worker processes, said differently.")
    assert generator.main(["--check"]) == 1
