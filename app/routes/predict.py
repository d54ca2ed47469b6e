"""POST /predict: the body goes to the service as bytes, the answer comes back as bytes.

This is the hot path: no dependency injection (FastAPI would run a plain-`def` dependency on a
thread per request), the service read straight from the app state.
"""

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.requests import ClientDisconnect

from app.auth import authorize_client
from app.contract import ERRORS, PredictResponse
from app.errors import PayloadTooLarge, RequestTimeout, UnsupportedMediaType
from app.service import ModelService

router = APIRouter(tags=["model"])

_BODY = {"$ref": "#/components/schemas/PredictRequest"}


def _check_content_type(request: Request) -> None:
    value = request.headers.get("content-type")
    if value is None:
        return  # no claim made: parse it as JSON
    media = value.split(";", 1)[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        raise UnsupportedMediaType(
            "send the body as JSON with Content-Type: application/json",
            [{"loc": ["header", "content-type"], "msg": "expected application/json"}],
        )


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    too_large = PayloadTooLarge(f"request body over the limit of {limit} bytes")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


@router.post(
    "/predict",
    response_model=PredictResponse,
    responses={k: ERRORS[k] for k in (401, 403, 408, 413, 415, 422, 503, 504)},
    openapi_extra={
        "requestBody": {"required": True, "content": {"application/json": {"schema": _BODY}}}
    },
)
async def predict(request: Request) -> Response:
    """Predict one record or many; validated against the model's signature."""
    service: ModelService = request.app.state.service
    settings = service.settings
    authorize_client(settings, request.headers.get("authorization"))
    _check_content_type(request)
    try:
        async with asyncio.timeout(settings.body_timeout):
            body = await _read_body(request, settings.max_body_bytes)
    except TimeoutError:
        raise RequestTimeout(
            f"request body not received within BODY_TIMEOUT ({settings.body_timeout:g}s)"
        ) from None
    except ClientDisconnect:
        return Response(status_code=499)  # nobody is listening; nothing to log
    return Response(await service.predict(body), media_type="application/json")
