"""Every error FastAPI or Starlette would answer, sent in the service's one shape
(`app.errors`): ours, request validation, HTTP errors, a client gone, the unexpected."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response

from app.errors import Rendered, ServiceError, error_bytes, render, summarize

logger = logging.getLogger(__name__)


def _response(rendered: Rendered) -> Response:
    status, body, headers = rendered
    return Response(
        body,
        status_code=status,
        media_type="application/json",
        headers={k.decode(): v.decode() for k, v in headers},
    )


def error_response(
    status: int,
    code: str,
    message: str,
    details: list[dict[str, Any]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    return Response(
        error_bytes(status, code, message, details),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_input",
    503: "not_ready",
}


def install_error_handlers(app: FastAPI) -> None:
    """Send every error (ours, FastAPI's, Starlette's, the unexpected) in the one shape."""

    async def rendered(_: Request, exc: Exception) -> Response:
        return _response(render(exc))

    async def validation_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        # pydantic's error dicts carry the offending "input": never send it back.
        details = [
            {
                "loc": [p for p in err.get("loc", ()) if p != "body"],
                "msg": err.get("msg", "invalid"),
            }
            for err in exc.errors()
        ]
        return error_response(422, "invalid_input", summarize(details), details)

    async def http_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        return error_response(exc.status_code, code, message, headers=exc.headers)

    async def disconnected(_: Request, exc: Exception) -> Response:
        logger.debug("client disconnected before its request was read")
        return Response(status_code=499)  # nobody is listening

    app.add_exception_handler(ServiceError, rendered)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(ClientDisconnect, disconnected)
    app.add_exception_handler(Exception, rendered)
