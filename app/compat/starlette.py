"""The route a request matched, which Starlette's router (and FastAPI's) leaves in the
scope as `scope["route"]`; the request metrics label requests by its path template.

Where the router does not set it, the route is found the public way: the app's routes
matched against the request (`Route.matches`), a full match first, then one that matches
the path but not the method (405).
"""

from __future__ import annotations

import functools
import inspect
import logging
from typing import Any

from starlette.routing import Match, Router
from starlette.types import Scope

from app.compat._warn import fallback

logger = logging.getLogger(__name__)


def probe(router: type[Any] = Router) -> str | None:
    """What reading the matched route relies on that this Starlette lacks; None: nothing."""
    try:
        source = inspect.getsource(router.app)
    except (AttributeError, OSError, TypeError):
        return "Router.app cannot be read"
    if 'scope["route"]' not in source:
        return 'its router no longer sets scope["route"]'
    return None


@functools.cache
def supported() -> bool:
    """Whether the router sets the matched route; False logs one warning."""
    problem = probe()
    if problem is not None:
        fallback(logger, "starlette", problem, "each request's route is matched again")
    return problem is None


def route_path(scope: Scope) -> str | None:
    """The path template of the route `scope` was served by, or None (no route matched)."""
    path = getattr(scope.get("route"), "path", None)
    if path is not None or supported():
        return path
    app = scope.get("app")
    partial = None
    for route in getattr(app, "routes", ()):
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return getattr(route, "path", None)
        if match is Match.PARTIAL and partial is None:
            partial = getattr(route, "path", None)
    return partial
