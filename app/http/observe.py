"""What every HTTP answer carries and counts: a request id, and its place in /metrics.

`RequestMiddleware` wraps the whole app (the lanes included). Each request gets an id: the
client's `X-Request-ID` (at most 128 characters of `[A-Za-z0-9._-]`; anything else answers
422) or a new one. The id comes back as a response header on every answer, errors included;
it is in `scope["state"]["request_id"]` for the code that answers, and in the log lines of the
request (`request_id` in every log record, "-" outside a request). Then the answer is counted
by route template, method and status.
"""

from __future__ import annotations

import contextvars
import itertools
import logging
import os
import re
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.compat import starlette as starlette_compat
from app.errors import InvalidInput, render
from app.monitoring.metrics import Metrics

HEADER = b"x-request-id"
UNMATCHED = "<unmatched>"
_VALID_ID = re.compile(rb"[A-Za-z0-9._-]{1,128}")
request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
# Generated ids: a random prefix per process and a counter, unique across workers and restarts,
# far cheaper than a uuid per request.
_PREFIX = os.urandom(6).hex()
_counter = itertools.count(1)


def new_request_id() -> str:
    return f"{_PREFIX}-{next(_counter):x}"


class RequestIdFilter(logging.Filter):
    """Puts the current request's id on every log record as `request_id`."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        return True


def _sent_id(scope: Scope) -> bytes | None:
    for name, value in scope["headers"]:
        if name == HEADER:
            return bytes(value)
    return None


class RequestMiddleware:
    """Request ids and HTTP metrics for every request the app answers."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics
        starlette_compat.supported()  # checked as the app starts: its warning, if any, then

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.serve(scope, receive, send, self.app)

    async def serve(self, scope: Scope, receive: Receive, send: Send, app: ASGIApp) -> None:
        """An HTTP request, answered by `app` (the app's lanes are handed here directly)."""
        start = time.perf_counter()
        sent = _sent_id(scope)
        valid = sent is None or _VALID_ID.fullmatch(sent) is not None
        rid = (sent.decode("ascii") if sent is not None and valid else None) or new_request_id()
        token = request_id.set(rid)
        scope.setdefault("state", {})["request_id"] = rid
        header = (HEADER, rid.encode("ascii"))
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        try:
            if valid:
                await app(scope, receive, send_with_id)
            else:
                await _refuse_id(send_with_id)
        finally:
            request_id.reset(token)
            route = starlette_compat.route_path(scope) or UNMATCHED
            self.metrics.count_request(route, scope["method"], status, time.perf_counter() - start)


async def _refuse_id(send: Send) -> None:
    error = InvalidInput(
        "X-Request-ID must be 1 to 128 characters of letters, digits, '.', '_' and '-'",
        [{"loc": ["header", "x-request-id"], "msg": "invalid request id"}],
    )
    status, body, headers = render(error)
    response_headers = [(b"content-type", b"application/json"), *headers]
    await send({"type": "http.response.start", "status": status, "headers": response_headers})
    await send({"type": "http.response.body", "body": body})
