"""What every lane shares. A lane is a protocol's endpoint served straight from ASGI, below
the app's middleware and above FastAPI's routing (`app.protocols`): these read its headers
and body within the service's limits and send its answer or error."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope, Send

from app.errors import (
    GatewayTimeout,
    MethodNotAllowed,
    PayloadTooLarge,
    Rendered,
    RequestTimeout,
    UnsupportedMediaType,
    render,
)
from app.http.auth import Guard, authorize
from app.http.contract import ERRORS
from app.http.observe import new_request_id
from app.settings import Settings

_JSON = (b"content-type", b"application/json")
T = TypeVar("T")


class Route:
    """What the metrics middleware reads of a matched route: its path template."""

    def __init__(self, path: str) -> None:
        self.path = path


def check_content_type(value: str | None) -> None:
    if value is None:
        return  # no claim made: parse it as JSON
    media = value.split(";", 1)[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        raise UnsupportedMediaType(
            "send the body as JSON with Content-Type: application/json",
            [{"loc": ["header", "content-type"], "msg": "expected application/json"}],
        )


def _too_large(limit: int) -> PayloadTooLarge:
    message = f"request body over the limit of {limit} bytes"
    return PayloadTooLarge(message, [{"loc": [], "msg": message}])


def request_id_of(scope: Scope) -> str:
    """The request's id (the request middleware puts it in the scope's state)."""
    state = scope.get("state")
    return state["request_id"] if state and "request_id" in state else new_request_id()


async def read_body(receive: Receive, declared: str | None, limit: int) -> bytes:
    """The whole body, straight from the ASGI channel (a small body is one message)."""
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)
            chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def within_limits(
    settings: Settings,
    receive: Receive,
    declared: str | None,
    answer: Callable[[bytes], Awaitable[T]],
) -> T:
    """`answer(body)` for the request's body, or a ServiceError saying which limit was hit.

    Two limits, one timer: BODY_TIMEOUT while the body arrives (408), then REQUEST_TIMEOUT
    for the answer (504); and MAX_BODY_BYTES (413). `declared` is the Content-Length header."""
    # A bare loop timer rather than asyncio.timeout(), whose pure-Python bookkeeping was
    # a tenth of this process's time under load; the semantics are the same (cancel the
    # task, turn that cancellation, and only that one, into the error).
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    expired: list[bool] = []

    def expire() -> None:
        expired.append(True)
        task.cancel()

    timer = loop.call_at(loop.time() + settings.body_timeout, expire)
    reading = True
    try:
        body = await read_body(receive, declared, settings.max_body_bytes)
        reading = False
        timer.cancel()
        timer = loop.call_at(loop.time() + settings.request_timeout, expire)
        return await answer(body)
    except asyncio.CancelledError:
        if not expired or task.uncancel() > 0:
            raise  # cancelled from elsewhere (shutdown, client gone): not ours to answer
        if reading:
            raise RequestTimeout(
                f"request body not received within BODY_TIMEOUT ({settings.body_timeout:g}s)"
            ) from None
        raise GatewayTimeout(
            f"no answer within REQUEST_TIMEOUT ({settings.request_timeout:g}s)"
        ) from None
    finally:
        timer.cancel()


async def respond(
    send: Send, answer: Awaitable[bytes], shape: Callable[[BaseException], Rendered] = render
) -> None:
    """Send `answer`'s JSON (200), or the error it raised as `shape` renders it; nothing to a
    client that has gone (the metrics count it as 499)."""
    status = 200
    extra: list[tuple[bytes, bytes]] = []
    try:
        body = await answer
    except ClientDisconnect:
        await send({"type": "http.response.start", "status": 499, "headers": []})
        return
    except Exception as exc:
        status, body, extra = shape(exc)
    headers = [_JSON, (b"content-length", str(len(body)).encode()), *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


Answer = Callable[[bytes], Awaitable[bytes]]
"""A request body -> its answer's JSON bytes (or a ServiceError saying what is wrong)."""

_WANTED = {n.encode(): n for n in ("authorization", "content-type", "content-length")}
"""The request headers a body lane reads (ASGI servers send names lower-cased)."""

LANE_ERRORS = (401, 403, 408, 413, 415, 422, 503, 504)
"""What a body lane may answer besides 200, for its OpenAPI operation."""


class BodyLane:
    """A lane of one POST path whose body the data plane answers: the method, the client's
    key, the lane's own reading of the headers (`accept`), the body within the limits, and the
    answer or error sent."""

    route: Route

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def accept(self, headers: dict[str, str], request_id: str) -> Answer:
        """What answers the body, given the request's headers (raise what is wrong with them)."""
        raise NotImplementedError

    async def answer(
        self, method: str, headers: dict[str, str], receive: Receive, request_id: str
    ) -> bytes:
        """The JSON answer, or a ServiceError saying what is wrong."""
        if method != "POST":
            raise MethodNotAllowed("POST")
        settings = self.settings
        authorize(settings, Guard.CLIENT, headers.get("authorization"))
        answer = self.accept(headers, request_id)
        return await within_limits(settings, receive, headers.get("content-length"), answer)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["route"] = self.route
        headers = {_WANTED[k]: v.decode("latin-1") for k, v in scope["headers"] if k in _WANTED}
        await respond(send, self.answer(scope["method"], headers, receive, request_id_of(scope)))


def error_responses(content: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
    """A body lane's OpenAPI error responses, each with `content(model)` for its model."""
    return {
        str(code): {
            "description": ERRORS[code]["description"],
            "content": content(ERRORS[code]["model"]),
        }
        for code in LANE_ERRORS
    }
