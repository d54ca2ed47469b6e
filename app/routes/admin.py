"""/admin/*: operations on the running service. Mounted only when API_KEY is set."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from app.auth import require_admin
from app.contract import ERRORS, ReloadResult
from app.routes.deps import get_service, json_response
from app.service import ModelService

router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(require_admin)])


@router.post(
    "/reload",
    response_model=ReloadResult,
    responses={k: ERRORS[k] for k in (401, 403, 502, 503)},
)
async def reload(
    service: Annotated[ModelService, Depends(get_service)],
    force: Annotated[bool, Query(description="Reload even if the version is unchanged.")] = False,
) -> Response:
    """Load the version the model URI points to now (e.g. a moved alias) and swap it in
    atomically; requests in flight finish on the old model. On failure the old model keeps
    serving and the answer (502) says why. With several workers, all of them reload."""
    result: dict[str, Any] = await service.reload(force=force)
    return json_response(result)
