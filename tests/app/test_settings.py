"""Settings under their former names: still read, with a warning naming the new one."""

from __future__ import annotations

import logging

import pytest

from app import former as former_module
from app.settings import RENAMED, Settings


@pytest.fixture(autouse=True)
def fresh_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test sees the warnings a new process would (they are given once a process)."""
    monkeypatch.setattr(former_module, "_warned", set())
    for name in (*RENAMED, *RENAMED.values()):
        monkeypatch.delenv(name.upper(), raising=False)


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_a_former_name_in_the_environment_is_read_and_named_in_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("MAX_BATCH_ROWS", "50")
    monkeypatch.setenv("BATCH_MAX_ROWS", "8")
    with caplog.at_level(logging.WARNING, logger="app.settings"):
        settings = Settings(model_uri="models:/iris@champion")
        Settings(model_uri="models:/iris@champion")  # a second read: no second warning
    assert (settings.max_request_rows, settings.micro_batch_max_rows) == (50, 8)
    assert warnings_of(caplog) == [
        "MAX_BATCH_ROWS is now MAX_REQUEST_ROWS: rename it",
        "BATCH_MAX_ROWS is now MICRO_BATCH_MAX_ROWS: rename it",
    ]


def test_the_current_name_wins_over_the_former(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("MAX_BATCH_ROWS", "50")
    monkeypatch.setenv("MAX_REQUEST_ROWS", "70")
    with caplog.at_level(logging.WARNING, logger="app.settings"):
        settings = Settings(model_uri="models:/iris@champion")
    assert settings.max_request_rows == 70
    assert warnings_of(caplog) == ["MAX_BATCH_ROWS is ignored: MAX_REQUEST_ROWS is set"]


def test_a_former_keyword_beats_the_environment_as_any_keyword_does(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("MAX_REQUEST_ROWS", "70")
    with caplog.at_level(logging.WARNING, logger="app.settings"):
        settings = Settings(model_uri="models:/iris@champion", batch_max_rows=16)
    assert settings.micro_batch_max_rows == 16
    assert settings.max_request_rows == 70
    assert warnings_of(caplog) == ["BATCH_MAX_ROWS is now MICRO_BATCH_MAX_ROWS: rename it"]


def test_a_former_name_is_still_validated_as_the_setting_it_now_is(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MAX_BATCH_ROWS", "0")
    with pytest.raises(ValueError, match="max_request_rows"):
        Settings(model_uri="models:/iris@champion")
