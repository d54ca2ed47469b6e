"""The service's one error shape, and the exceptions that carry their HTTP status.

Free of any web framework, so every layer may raise them; `app.http.errors` sends them
through FastAPI's handlers.

Every error the service returns, validation errors included, is
`{"error": {"status": int, "code": str, "message": str, "details": [...]}}`. Messages name what
was wrong and where; they never contain the client's values or a stack trace.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import orjson

logger = logging.getLogger(__name__)


class ServiceError(Exception):
    """A failure the client should hear about, with its HTTP status and a stable code."""

    status = 500
    code = "internal_error"

    def __init__(self, message: str, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []


class InvalidInput(ServiceError):
    """The request body does not fit the model's input schema (or is not JSON at all)."""

    status = 422
    code = "invalid_input"


class PayloadTooLarge(ServiceError):
    status = 413
    code = "payload_too_large"


class NotFound(ServiceError):
    status = 404
    code = "not_found"


class Conflict(ServiceError):
    """The request contradicts what the service already holds (labels sent twice)."""

    status = 409
    code = "conflict"


class MethodNotAllowed(ServiceError):
    status = 405
    code = "method_not_allowed"

    def __init__(self, allow: str) -> None:
        super().__init__(f"method not allowed: use {allow}")
        self.allow = allow
        """The methods the route answers (the `Allow` header)."""


class UnsupportedMediaType(ServiceError):
    status = 415
    code = "unsupported_media_type"


class NotReady(ServiceError):
    """No model is loaded (yet): the service cannot answer predictions."""

    status = 503
    code = "not_ready"


class RequestTimeout(ServiceError):
    """The client did not send its body in time."""

    status = 408
    code = "request_timeout"


class GatewayTimeout(ServiceError):
    """The answer took longer than REQUEST_TIMEOUT."""

    status = 504
    code = "timeout"


class ReloadFailed(ServiceError):
    """A reload could not load the new model; the old one is still serving."""

    status = 502
    code = "reload_failed"


class Unauthorized(ServiceError):
    status = 401
    code = "unauthorized"


class Forbidden(ServiceError):
    status = 403
    code = "forbidden"


class PredictionFailed(ServiceError):
    """The model itself raised on input that passed validation."""

    status = 500
    code = "prediction_failed"


def error_body(
    status: int, code: str, message: str, details: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    return {"error": {"status": status, "code": code, "message": message, "details": details or []}}


def error_bytes(
    status: int, code: str, message: str, details: list[dict[str, Any]] | None = None
) -> bytes:
    """The error as JSON; if its text cannot be encoded, the same error without it."""
    try:
        return orjson.dumps(error_body(status, code, message, details))
    except TypeError:  # e.g. a lone surrogate that slipped into a message
        logger.warning("could not encode a %d error message", status, exc_info=True)
        return orjson.dumps(error_body(status, code, "invalid request"))


Rendered = tuple[int, bytes, list[tuple[bytes, bytes]]]
"""status, JSON body, extra headers"""
Encoder = Callable[[int, str, str, list[dict[str, Any]] | None], bytes]
"""An error's status, code, message and details -> the body (the V2 lane has its own shape)."""


def render(exc: BaseException, encode: Encoder = error_bytes) -> Rendered:
    """Any exception as the answer the client gets: ours carry their status and message; the
    unexpected are logged and answer a bare 500, never a stack trace."""
    if isinstance(exc, ServiceError):
        headers = [(b"www-authenticate", b"Bearer")] if exc.status == 401 else []
        if isinstance(exc, MethodNotAllowed):
            headers.append((b"allow", exc.allow.encode()))
        return exc.status, encode(exc.status, exc.code, exc.message, exc.details), headers
    logger.error("unhandled error: %s", type(exc).__name__, exc_info=exc)
    return 500, encode(500, "internal_error", "internal error; see the service log", None), []


def _loc_text(loc: list[Any]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def summarize(details: list[dict[str, Any]]) -> str:
    """One line naming the first problem and how many more there are."""
    if not details:
        return "invalid input"
    first = details[0]
    where = _loc_text(first.get("loc", []))
    text = f"{where}: {first['msg']}" if where else first["msg"]
    more = len(details) - 1
    return text + (f" (and {more} more error{'s' if more > 1 else ''})" if more else "")
