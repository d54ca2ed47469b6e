"""Without a router that leaves the matched route in the scope, the request metrics find it
the public way: every request still counted under its route's path template."""

from __future__ import annotations

from typing import Any

import pytest

from app.compat import starlette as starlette_compat
from tests.app.compat.conftest import Forcing, fallback_warnings
from tests.app.conftest import AppFactory


def scope(app: Any, method: str, path: str) -> dict[str, Any]:
    """A request's scope as the request middleware sees it after a router that sets nothing."""
    return {"type": "http", "method": method, "path": path, "root_path": "", "app": app}


def test_the_locked_starlette_leaves_the_route_in_the_scope(serve: AppFactory) -> None:
    with serve() as client:
        client.get("/model-info")
        assert 'route="/model-info",status="200"} 1.0' in client.get("/metrics").text


def test_without_it_each_request_is_matched_to_its_route_again(
    serve: AppFactory, force_fallback: Forcing, caplog: pytest.LogCaptureFixture
) -> None:
    force_fallback(starlette_compat, starlette_compat.supported)
    with serve() as client:
        app = client.app
        assert starlette_compat.route_path(scope(app, "GET", "/model-info")) == "/model-info"
        assert starlette_compat.route_path(scope(app, "DELETE", "/model-info")) == "/model-info"
        assert starlette_compat.route_path(scope(app, "GET", "/no/such/path")) is None
        assert starlette_compat.route_path(scope(app, "GET", "/metrics")) == "/metrics"
        client.get("/healthz")  # served as ever; its route still counted
        assert 'route="/healthz",status="200"} 1.0' in client.get("/metrics").text
    assert len(fallback_warnings(caplog, "starlette")) == 1
