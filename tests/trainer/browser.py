"""Debian's headless Chromium for tests: render a page, dump its DOM after scripts ran, screenshot.

The Makefile's `chromium` target installs it (root) before `make test`. Chromium is kept off
the network: background services off, and every host name resolves to nothing.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tests.conftest import IN_CI

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--virtual-time-budget=15000",  # run the page's scripts to completion before the output
)


def chromium() -> str:
    """The chromium executable; fails in CI, skips elsewhere, when it is not installed."""
    path = shutil.which("chromium")
    if path is None:
        message = "chromium is not installed: `make chromium` (root) installs Debian's package"
        if IN_CI:
            pytest.fail(message + " (CI=true: the browser tests must run)")
        pytest.skip(message)
    return path


@dataclass(frozen=True)
class Rendered:
    dom: str
    """The DOM after the page's scripts ran, serialized."""
    text: str
    """The text a person sees: the DOM's text outside <script> and <style>."""
    screenshot: Path


def render(page: Path, folder: Path, *, width: int = 1280, height: int = 2400) -> Rendered:
    """Open `page` in headless Chromium (a fresh profile each run): its DOM and a screenshot."""
    browser = chromium()
    url = page.resolve().as_uri()
    screenshot = folder / f"{page.stem}.png"

    def run(name: str, *args: str) -> subprocess.CompletedProcess[str]:
        profile = folder / f"chromium-profile-{name}"
        result = subprocess.run(
            [browser, *FLAGS, f"--user-data-dir={profile}", *args, url],
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        return result

    dom = run("dom", "--dump-dom").stdout
    run("shot", f"--window-size={width},{height}", f"--screenshot={screenshot}")
    return Rendered(dom, visible_text(dom), screenshot)


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._hidden += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._hidden -= 1

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.parts.append(data)


def visible_text(html: str) -> str:
    parser = _Text()
    parser.feed(html)
    return " ".join(" ".join(parser.parts).split())
