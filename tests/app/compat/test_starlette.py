"""Without a router that leaves the matched route in the scope, the request metrics find it
the public way: every request still counted under its route's path template."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.routing import APIRoute
from starlette.routing import Match
from starlette.types import Scope

from app.compat import starlette as starlette_compat
from tests.app.compat.conftest import fallback_warnings
from tests.app.conftest import IRIS_EXAMPLE, AppFactory


@pytest.fixture
def router_without_route(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """FastAPI's routes match as ever but leave no `scope["route"]` (the probe decides again)."""
    matches = APIRoute.matches

    def without_route(self: APIRoute, scope: Scope) -> tuple[Match, Scope]:
        match, child_scope = matches(self, scope)
        child_scope.pop("route", None)
        return match, child_scope

    monkeypatch.setattr(APIRoute, "matches", without_route)
    starlette_compat.supported.cache_clear()
    yield
    monkeypatch.undo()
    starlette_compat.supported.cache_clear()


def counted(metrics: str, method: str, route: str, status: int) -> bool:
    return f'http_requests_total{{method="{method}",route="{route}",status="{status}"}} 1.0' in (
        metrics
    )


def test_the_locked_libraries_leave_the_route_in_the_scope(serve: AppFactory) -> None:
    with serve() as client:
        client.get("/model-info")
        assert counted(client.get("/metrics").text, "GET", "/model-info", 200)


def test_without_it_each_request_is_counted_under_its_route(
    serve: AppFactory, router_without_route: None, caplog: pytest.LogCaptureFixture
) -> None:
    with serve() as client:
        assert client.get("/model-info").status_code == 200
        assert client.delete("/model-info").status_code == 405
        assert client.get("/no/such/path").status_code == 404
        assert client.post("/predict", json={"records": [IRIS_EXAMPLE]}).status_code == 200
        client.get("/metrics")
        metrics = client.get("/metrics").text
    assert counted(metrics, "GET", "/model-info", 200)
    assert counted(metrics, "DELETE", "/model-info", 405)
    assert counted(metrics, "GET", "<unmatched>", 404)
    assert counted(metrics, "POST", "/predict", 200)
    assert counted(metrics, "GET", "/metrics", 200)
    warned = fallback_warnings(caplog, "starlette")
    assert len(warned) == 1 and 'leaves no scope["route"]' in warned[0]
