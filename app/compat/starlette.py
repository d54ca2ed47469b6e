"""The route a request matched, which the router leaves in the scope as `scope["route"]`:
Starlette's convention, followed by FastAPI's router (each `APIRoute` puts itself in the
scope it matches). The request metrics label requests by that route's path template.

`probe()` runs a request through a FastAPI router and checks the route it reached is the
one in the scope. Where it is not, each request's route is found the public way, once the
request is answered: the app's routes matched against it (`BaseRoute.matches`), a full match
first, then one that matches the path but not the method (a 405).
"""

from __future__ import annotations

import functools
import logging
from importlib.metadata import version
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.routing import Match
from starlette.types import Message, Receive, Scope, Send

from app.compat._warn import fallback

logger = logging.getLogger(__name__)


class _Reached(APIRoute):
    """A route that, instead of answering, notes the `scope["route"]` it was handed."""

    reached = False
    in_scope: Any = None

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.reached = True
        self.in_scope = scope.get("route")


async def _endpoint() -> None:
    """The probe route's endpoint (never called: `_Reached.handle` answers instead)."""


async def _receive() -> Message:  # pragma: no cover: the probe route reads no body
    return {"type": "http.disconnect"}


async def _send(message: Message) -> None:  # pragma: no cover: the probe route sends nothing
    pass


def probe(app_class: type[FastAPI] = FastAPI) -> str | None:
    """What reading the matched route relies on that these libraries lack; None: nothing."""
    router = app_class().router
    router.add_api_route("/probe", _endpoint, route_class_override=_Reached)
    route = router.routes[-1]
    scope = {
        "type": "http", "method": "GET", "path": "/probe", "root_path": "",
        "headers": [], "query_string": b"",
    }  # fmt: skip
    served = router(scope, _receive, _send)
    try:
        served.send(None)  # nothing in routing waits: one step runs it to the route
    except StopIteration:
        pass
    except Exception as exc:
        return f"a router cannot be run on a bare request ({type(exc).__name__})"
    else:
        served.close()
        return "a router waits before handing a request to its route"
    if not isinstance(route, _Reached) or not route.reached:
        return "a router no longer hands a request to the route it matched"
    if route.in_scope is None:
        return f'the router of fastapi {version("fastapi")} leaves no scope["route"]'
    if route.in_scope is not route:
        return 'scope["route"] is not the route the router handed the request to'
    return None


@functools.cache
def supported() -> bool:
    """Whether the router leaves the matched route in the scope; False logs one warning."""
    problem = probe()
    if problem is not None:
        fallback(logger, "starlette", problem, "each request's route is matched again")
    return problem is None


def route_path(scope: Scope) -> str | None:
    """The path template of the route `scope` was served by, or None (no route matched)."""
    route = scope.get("route")
    if route is None and not supported():
        route = _matched(scope)
    return getattr(route, "path", None)


def _matched(scope: Scope) -> Any:
    partial = None
    for route in getattr(scope.get("app"), "routes", ()):
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return route
        if match is Match.PARTIAL and partial is None:
            partial = route
    return partial
