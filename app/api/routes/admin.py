"""/admin/*: operations on the running service. Mounted only when API_KEY is set."""

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import Response

from app.api.routes.deps import Slot, json_response
from app.http.auth import Guard, protect
from app.http.contract import ERRORS, ReloadResult
from app.serving.workers import reload_everywhere

router = APIRouter(prefix="/admin", tags=["admin"])


@router.post(
    "/reload",
    response_model=ReloadResult,
    responses={k: ERRORS[k] for k in (401, 403, 502, 503)},
    **protect(Guard.ADMIN),
)
async def reload(
    slot: Slot,
    force: Annotated[bool, Query(description="Reload even if the version is unchanged.")] = False,
) -> Response:
    """Load the version the model URI points to now (e.g. a moved alias) and swap it in
    atomically; requests in flight finish on the old model. On failure the old model keeps
    serving and the answer (502) says why. With several workers, all of them reload, and the
    answer lists each worker's result (502 if any failed or did not answer in time)."""
    result: dict[str, Any] = await reload_everywhere(slot, force)
    return json_response(result)
