"""API-key authentication: `Authorization: Bearer <API_KEY>`, compared in constant time."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.errors import Forbidden, Unauthorized
from app.settings import Settings

bearer = HTTPBearer(auto_error=False, description="The service's API_KEY.")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


def check_key(settings: Settings, credentials: HTTPAuthorizationCredentials | None) -> None:
    """Nothing if no key is configured or the right one was sent; else 401 or 403."""
    key = settings.api_key
    if key is None:
        return
    if credentials is None:
        raise Unauthorized("this endpoint needs Authorization: Bearer <API_KEY>")
    sent = credentials.credentials.encode()
    if not hmac.compare_digest(sent, key.get_secret_value().encode()):
        raise Forbidden("the API key is not valid")


async def require_admin(request: Request, credentials: Credentials) -> None:
    """/admin/*: the key, always (the routes exist only when API_KEY is set)."""
    check_key(request.app.state.settings, credentials)


async def require_client(request: Request, credentials: Credentials) -> None:
    """/predict and /model-info: the key when API_KEY is set, unless PREDICT_PUBLIC."""
    settings: Settings = request.app.state.settings
    if not settings.predict_public:
        check_key(settings, credentials)
