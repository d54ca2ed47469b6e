"""Without what the tuned HTTP protocol needs from uvicorn, the server runs uvicorn's own
protocol, says so once, and answers exactly as before."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import uvicorn

from app.api.application import create_app
from app.compat import uvicorn as uvicorn_compat
from app.server.protocol import ServingHttpProtocol, http_protocol
from app.settings import Settings
from tests.app.compat.conftest import Forcing, fallback_warnings
from tests.app.conftest import TrainedModel
from tests.servers import free_port


@contextmanager
def serving(trained: TrainedModel, http: type[Any] | str) -> Iterator[str]:
    """The app under a real uvicorn on a loopback port, speaking `http`."""
    app = create_app(Settings(model_uri=trained.alias_uri), tracking_uri=trained.tracking_uri)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, http=http, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/readyz", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "the server did not get ready"
            time.sleep(0.1)
        yield url
    finally:
        server.should_exit = True
        thread.join(30)


def predict(url: str, records: list[dict[str, float]]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        f"{url}/predict",
        data=json.dumps({"records": records}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        return answer.status, json.loads(answer.read())


def test_the_tuned_protocol_serves_on_the_locked_uvicorn() -> None:
    assert http_protocol(None, 0) is ServingHttpProtocol


def test_without_it_uvicorns_own_protocol_serves_the_same_answers(
    trained: TrainedModel,
    iris_records: list[dict[str, float]],
    reference: Callable[[list[dict[str, float]]], list[Any]],
    force_fallback: Forcing,
    caplog: pytest.LogCaptureFixture,
) -> None:
    force_fallback(uvicorn_compat, uvicorn_compat.httptools_protocol)
    protocol = http_protocol(None, 0)
    assert protocol == "auto"
    assert http_protocol([0, 0], 1) == "auto", "workers too get uvicorn's own"
    warned = fallback_warnings(caplog, "uvicorn")
    assert len(warned) == 1 and "a release without what the service relies on" in warned[0]
    rows = iris_records[:25]
    with serving(trained, protocol) as url:
        for _ in range(3):  # keep-alive or not, every answer whole
            status, body = predict(url, rows)
            assert status == 200
            assert body["predictions"] == reference(rows)
