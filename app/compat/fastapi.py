"""FastAPI's middleware stack, which the app rebuilds with its lanes beneath the middleware.

`app.api.application.ServingApp` takes the app's `user_middleware` (entries that unpack to
class, args and kwargs) out while FastAPI builds the rest, puts the lanes' dispatch under
them itself, and, when the request middleware is the only one and FastAPI's native
OpenTelemetry (the private `_native_telemetry`, FastAPI 0.165 and later) is off, hands a
lane's request to the two straight from the server. Without those, the app keeps FastAPI's
own stack, the lanes inside it as its innermost middleware: every answer the same, each
request through Starlette's entry layers.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from app.compat._warn import fallback

logger = logging.getLogger(__name__)
Entry = tuple[type[Any], tuple[Any, ...], dict[str, Any]]


class _Probe:
    def __init__(self, app: ASGIApp, marker: int) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)  # pragma: no cover: never served


def probe(app_class: type[FastAPI] = FastAPI) -> str | None:
    """What rebuilding the stack relies on that this FastAPI lacks; None: nothing."""
    app = app_class()
    if not isinstance(getattr(app, "user_middleware", None), list):
        return "apps have no user_middleware list"
    app.add_middleware(_Probe, marker=1)
    try:
        cls, args, kwargs = app.user_middleware[0]
    except (TypeError, ValueError, IndexError):
        return "user_middleware entries no longer unpack to (class, args, kwargs)"
    if cls is not _Probe or tuple(args) or dict(kwargs) != {"marker": 1}:
        return "user_middleware entries no longer hold what add_middleware was given"
    return None


@functools.cache
def supported() -> bool:
    """Whether the stack can be rebuilt; False logs one warning."""
    problem = probe()
    if problem is not None:
        cost = "every request goes through Starlette's entry layers"
        fallback(logger, "fastapi", problem, cost)
    return problem is None


def user_middleware(app: FastAPI) -> list[Entry]:
    """The middleware added with `add_middleware`, outermost first."""
    return [(cls, tuple(args), dict(kwargs)) for cls, args, kwargs in app.user_middleware]


def set_user_middleware(app: FastAPI, entries: list[Any]) -> None:
    app.user_middleware = entries


def traced(app: FastAPI) -> bool:
    """Whether FastAPI's native OpenTelemetry is on for `app` (only FastAPI's own layers
    trace, so lanes must then run beneath them)."""
    telemetry = getattr(app, "_native_telemetry", None)
    return telemetry is not None and bool(telemetry.enabled())
