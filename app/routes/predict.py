"""POST /predict: the body goes to the service as bytes, the answer comes back as bytes.

`answer()` is the whole of it, on plain values (headers, the ASGI receive channel), so that
two doors can share it: this FastAPI route, which documents the endpoint in the OpenAPI
schema, and the app's fast lane (`app.main.ServingApp`), which serves `POST /predict` ahead
of the framework's per-request layers.
"""

import asyncio
from collections.abc import Mapping

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.requests import ClientDisconnect
from starlette.types import Receive

from app.auth import authorize_client
from app.contract import ERRORS, PredictResponse
from app.errors import GatewayTimeout, PayloadTooLarge, RequestTimeout, UnsupportedMediaType
from app.service import ModelService

router = APIRouter(tags=["model"])

PATH = "/predict"
_BODY = {"$ref": "#/components/schemas/PredictRequest"}


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
    return PayloadTooLarge(f"request body over the limit of {limit} bytes")


async def _read_body(receive: Receive, declared: str | None, limit: int) -> bytes:
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    # Straight from the ASGI channel: a small body is one message, one await.
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


async def answer(service: ModelService, headers: Mapping[str, str], receive: Receive) -> bytes:
    """The JSON answer to a /predict request, or a ServiceError saying what is wrong.

    Two limits, one timer: BODY_TIMEOUT while the body arrives (408), then REQUEST_TIMEOUT
    for the answer (504)."""
    settings = service.settings
    authorize_client(settings, headers.get("authorization"))
    _check_content_type(headers.get("content-type"))
    # A bare loop timer rather than asyncio.timeout(), whose pure-Python bookkeeping was a
    # tenth of this process's time under load; the semantics are the same (cancel the task,
    # turn that cancellation, and only that one, into the error).
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
        body = await _read_body(receive, headers.get("content-length"), settings.max_body_bytes)
        reading = False
        timer.cancel()
        timer = loop.call_at(loop.time() + settings.request_timeout, expire)
        return await service.predict(body)
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


@router.post(
    PATH,
    response_model=PredictResponse,
    responses={k: ERRORS[k] for k in (401, 403, 408, 413, 415, 422, 503, 504)},
    openapi_extra={
        "requestBody": {"required": True, "content": {"application/json": {"schema": _BODY}}}
    },
)
async def predict(request: Request) -> Response:
    """Predict one record or many; validated against the model's signature."""
    body = await answer(request.app.state.service, request.headers, request.receive)
    return Response(body, media_type="application/json")
