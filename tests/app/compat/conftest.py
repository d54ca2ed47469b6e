"""Forcing a compatibility module's fallback: its probe reports a problem, its cached
decision is made again, and made afresh after the test."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import pytest

Forcing = Callable[[ModuleType, Callable[[], Any]], None]
REASON = "a release without what the service relies on"


@pytest.fixture
def force_fallback(monkeypatch: pytest.MonkeyPatch) -> Iterator[Forcing]:
    """`force_fallback(module, cached)`: `module.probe()` reports a problem, and `cached`
    (the module's functools.cache'd decision) decides again."""
    cleared: list[Callable[[], Any]] = []

    def force(module: ModuleType, cached: Callable[[], Any]) -> None:
        monkeypatch.setattr(module, "probe", lambda *args: REASON)
        cached.cache_clear()  # type: ignore[attr-defined]
        cleared.append(cached)

    yield force
    monkeypatch.undo()
    for cached in cleared:
        cached.cache_clear()  # type: ignore[attr-defined]


def fallback_warnings(caplog: pytest.LogCaptureFixture, library: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and r.getMessage().startswith(f"{library} ")
    ]
