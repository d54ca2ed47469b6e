"""GET /model-info: what is being served, where it came from, how it was trained."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from app.auth import require_client
from app.contract import ERRORS
from app.routes.deps import get_service, json_response
from app.service import ModelService

router = APIRouter(tags=["model"])


@router.get(
    "/model-info",
    response_model=dict[str, Any],
    responses={k: ERRORS[k] for k in (401, 403, 503)},
    dependencies=[Depends(require_client)],
)
async def model_info(service: Annotated[ModelService, Depends(get_service)]) -> Response:
    """URI, name, version, alias, run id, flavor, signature, run metrics and params, load time,
    library versions."""
    return json_response(service.info())
