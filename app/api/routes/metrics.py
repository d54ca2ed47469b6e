"""GET /metrics in Prometheus text format."""

from fastapi import APIRouter, Request
from fastapi.responses import Response

from app.http.auth import Guard, protect
from app.http.contract import ERRORS
from app.monitoring.metrics import CONTENT_TYPE

router = APIRouter(tags=["observability"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={k: ERRORS[k] for k in (401, 403)},
    **protect(Guard.METRICS),
)
async def metrics(request: Request) -> Response:
    """Requests by route and status, prediction latency, rows and classes, model load and info."""
    return Response(request.app.state.metrics.render(), media_type=CONTENT_TYPE)
