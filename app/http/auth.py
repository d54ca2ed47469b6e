"""API-key authentication: `Authorization: Bearer <API_KEY>`, compared in constant time.

One mechanism for every protected route: a route names its `Guard` with `protect(guard)`
(FastAPI routes) or carries it in its documented operation (the /predict lane); requests are
checked by `authorize()`, and `document()` derives the OpenAPI security of every operation
from the same guards.
"""

from __future__ import annotations

import hmac
from enum import Enum
from typing import Any

from fastapi import Depends, Request

from app.errors import Forbidden, Unauthorized
from app.settings import Settings

SCHEME = "HTTPBearer"
"""The name of the security scheme in the OpenAPI document."""
GUARD_KEY = "x-guard"
"""Where an operation carries its guard until `document()` turns it into `security`."""


class Guard(Enum):
    CLIENT = "client"
    """Predictions and model info: the key when API_KEY is set, unless PREDICT_PUBLIC."""
    ADMIN = "admin"
    """/admin/*: the key, always (the routes exist only when API_KEY is set)."""
    METRICS = "metrics"
    """/metrics: the key when API_KEY is set, unless METRICS_PUBLIC."""
    DOCS = "docs"
    """/docs, /redoc and /openapi.json: the key when API_KEY is set, unless DOCS_PUBLIC."""


def needs_key(settings: Settings, guard: Guard) -> bool:
    """Whether `guard` asks for the key (the probes have no guard: always open)."""
    if settings.api_key is None:
        return False
    public = {
        Guard.CLIENT: settings.predict_public,
        Guard.ADMIN: False,
        Guard.METRICS: settings.metrics_public,
        Guard.DOCS: settings.docs_public,
    }
    return not public[guard]


def authorize(settings: Settings, guard: Guard, authorization: str | None) -> None:
    """Nothing if the route is open or the right key was sent; else 401 or 403."""
    if not needs_key(settings, guard):
        return
    key = settings.api_key
    assert key is not None
    scheme, _, sent = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not sent.strip():
        raise Unauthorized("this endpoint needs Authorization: Bearer <API_KEY>")
    if not hmac.compare_digest(sent.strip().encode(), key.get_secret_value().encode()):
        raise Forbidden("the API key is not valid")


def protect(guard: Guard) -> dict[str, Any]:
    """Route decorator arguments that check `guard` and document it."""

    async def check(request: Request) -> None:
        authorize(request.app.state.settings, guard, request.headers.get("authorization"))

    return {"dependencies": [Depends(check)], "openapi_extra": {GUARD_KEY: guard.value}}


def document(doc: dict[str, Any], settings: Settings) -> None:
    """Turn every operation's guard into its OpenAPI `security`, as `authorize()` applies it."""
    protected = False
    for operations in doc.get("paths", {}).values():
        for operation in operations.values():
            guard = operation.pop(GUARD_KEY, None)
            if guard is not None and needs_key(settings, Guard(guard)):
                operation["security"] = [{SCHEME: []}]
                protected = True
    if protected:
        doc.setdefault("components", {}).setdefault("securitySchemes", {})[SCHEME] = {
            "type": "http",
            "scheme": "bearer",
            "description": "The service's API_KEY.",
        }
