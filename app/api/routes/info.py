"""GET /model-info: what is being served, where it came from, how it was trained."""

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from app.api.routes.deps import Slot, json_response
from app.http.auth import Guard, protect
from app.http.contract import ERRORS

router = APIRouter(tags=["model"])


@router.get(
    "/model-info",
    response_model=dict[str, Any],
    responses={k: ERRORS[k] for k in (401, 403, 503)},
    **protect(Guard.CLIENT),
)
async def model_info(slot: Slot) -> Response:
    """URI, name, version, alias, run id, flavor, signature, run metrics and params, load time,
    where it was loaded from, library versions."""
    return json_response(slot.info())
