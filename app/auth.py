"""API-key authentication: `Authorization: Bearer <API_KEY>`, compared in constant time."""

from __future__ import annotations

import hmac

from fastapi import Request

from app.errors import Forbidden, Unauthorized
from app.settings import Settings

SCHEME = "HTTPBearer"
"""The name of the security scheme in the OpenAPI document."""


def check_key(settings: Settings, authorization: str | None) -> None:
    """Nothing if no key is configured or the right one was sent; else 401 or 403."""
    key = settings.api_key
    if key is None:
        return
    scheme, _, sent = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not sent.strip():
        raise Unauthorized("this endpoint needs Authorization: Bearer <API_KEY>")
    if not hmac.compare_digest(sent.strip().encode(), key.get_secret_value().encode()):
        raise Forbidden("the API key is not valid")


def authorize_client(settings: Settings, authorization: str | None) -> None:
    """/predict and /model-info: the key when API_KEY is set, unless PREDICT_PUBLIC."""
    if settings.api_key is not None and not settings.predict_public:
        check_key(settings, authorization)


async def require_admin(request: Request) -> None:
    """/admin/*: the key, always (the routes exist only when API_KEY is set)."""
    check_key(request.app.state.settings, request.headers.get("authorization"))


async def require_client(request: Request) -> None:
    authorize_client(request.app.state.settings, request.headers.get("authorization"))
