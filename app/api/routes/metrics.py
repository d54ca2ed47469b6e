"""GET /metrics in Prometheus text format."""

from fastapi import APIRouter, Request
from fastapi.responses import Response

from app.monitoring.metrics import CONTENT_TYPE

router = APIRouter(tags=["observability"])


@router.get("/metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    """Requests by route and status, prediction latency, rows and classes, model load and info."""
    return Response(request.app.state.metrics.render(), media_type=CONTENT_TYPE)
