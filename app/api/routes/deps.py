from typing import Annotated

import orjson
from fastapi import Depends, Request
from fastapi.responses import Response

from app.serving.slot import ModelSlot


async def get_slot(request: Request) -> ModelSlot:
    slot: ModelSlot = request.app.state.slot
    return slot


Slot = Annotated[ModelSlot, Depends(get_slot)]


def json_response(data: object, status_code: int = 200) -> Response:
    """A JSON response serialized with orjson (numpy values included)."""
    return Response(
        orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY),
        status_code=status_code,
        media_type="application/json",
    )
