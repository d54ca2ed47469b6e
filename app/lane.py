"""POST /predict: the one implementation of the route, served straight from ASGI.

Resuming a request through FastAPI's per-request layers (exception middleware, routing,
dependency solving) cost more than the prediction itself, so the app hands `POST /predict`
to `PredictLane` below its own middleware (which therefore sees /predict like any route) and
above FastAPI's routing. The lane does all of the route's work: auth, content type, body size
and time limits, the answer from the data plane, errors in the service's one shape. The
OpenAPI document describes it from `operation()` here; there is no second handler.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import BaseModel
from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope, Send

from app.auth import GUARD_KEY, Guard, authorize
from app.contract import ERRORS, ErrorResponse, PredictResponse
from app.dataplane import DataPlane
from app.errors import (
    GatewayTimeout,
    MethodNotAllowed,
    PayloadTooLarge,
    RequestTimeout,
    UnsupportedMediaType,
    render,
)
from app.observe import new_request_id
from app.settings import Settings

PATH = "/predict"
_REFS = "#/components/schemas/"
_JSON = (b"content-type", b"application/json")
# The request headers the lane reads (ASGI servers send names lower-cased).
_WANTED = {n.encode(): n for n in ("authorization", "content-type", "content-length")}


class Route:
    """What the request middleware reads of a matched route: its path template."""

    def __init__(self, path: str) -> None:
        self.path = path


def request_id_of(scope: Scope) -> str:
    """The request's id (the request middleware puts it in the scope's state)."""
    state = scope.get("state")
    return state["request_id"] if state and "request_id" in state else new_request_id()


def _check_content_type(value: str | None) -> None:
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


class PredictLane:
    """Serves POST /predict with one app's data plane."""

    route = Route(PATH)

    def __init__(self, plane: DataPlane, settings: Settings) -> None:
        self.plane = plane
        self.settings = settings

    async def answer(self, headers: dict[str, str], receive: Receive, request_id: str) -> bytes:
        """The JSON answer, or a ServiceError saying what is wrong.

        Two limits, one timer: BODY_TIMEOUT while the body arrives (408), then
        REQUEST_TIMEOUT for the answer (504)."""
        settings = self.settings
        authorize(settings, Guard.CLIENT, headers.get("authorization"))
        _check_content_type(headers.get("content-type"))
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
            body = await read_body(receive, headers.get("content-length"), settings.max_body_bytes)
            reading = False
            timer.cancel()
            timer = loop.call_at(loop.time() + settings.request_timeout, expire)
            return await self.plane.predict(body, request_id)
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

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["route"] = self.route
        headers = {_WANTED[k]: v.decode("latin-1") for k, v in scope["headers"] if k in _WANTED}
        status = 200
        extra: list[tuple[bytes, bytes]] = []
        try:
            if scope["method"] != "POST":
                extra.append((b"allow", b"POST"))
                raise MethodNotAllowed("method not allowed: use POST")
            body = await self.answer(headers, receive, request_id_of(scope))
        except ClientDisconnect:
            # Nobody is listening: nothing to send; the metrics count it as 499.
            await send({"type": "http.response.start", "status": 499, "headers": []})
            return
        except Exception as exc:
            status, body, rendered = render(exc)
            extra += rendered
        response_headers = [_JSON, (b"content-length", str(len(body)).encode()), *extra]
        await send({"type": "http.response.start", "status": status, "headers": response_headers})
        await send({"type": "http.response.body", "body": body})

    @staticmethod
    def operation() -> tuple[dict[str, Any], list[type[BaseModel]]]:
        """The OpenAPI operation of POST /predict, and the models its schemas refer to."""

        def ref(model: type[BaseModel]) -> dict[str, Any]:
            return {"application/json": {"schema": {"$ref": f"{_REFS}{model.__name__}"}}}

        responses: dict[str, Any] = {
            "200": {"description": "Predictions, in input order.", "content": ref(PredictResponse)}
        }
        for code in (401, 403, 408, 413, 415, 422, 503, 504):
            responses[str(code)] = {
                "description": ERRORS[code]["description"],
                "content": ref(ERRORS[code]["model"]),
            }
        operation = {
            "tags": ["model"],
            "summary": "Predict",
            "description": "Predict one record or many; validated against the model's signature.",
            "operationId": "predict_predict_post",
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": f"{_REFS}PredictRequest"}}},
            },
            "responses": responses,
            GUARD_KEY: Guard.CLIENT.value,
        }
        return operation, [PredictResponse, ErrorResponse]
