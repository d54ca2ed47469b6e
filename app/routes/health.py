"""Probes: liveness (/healthz), readiness (/readyz), and MLflow's /ping."""

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import PlainTextResponse, Response

from app.contract import ERRORS, Readiness, Status
from app.errors import NotReady
from app.routes.deps import get_service, json_response
from app.service import ModelService

router = APIRouter(tags=["probes"])
Service = Annotated[ModelService, Depends(get_service)]


@router.get("/healthz", response_model=Status)
async def healthz() -> Response:
    """Liveness: 200 while the process is up, whether or not a model is loaded."""
    return json_response({"status": "ok"})


@router.get("/readyz", response_model=Readiness, responses={503: ERRORS[503]})
async def readyz(service: Service) -> Response:
    """Readiness: 200 once the model is loaded and serving, 503 until then."""
    status = service.status()
    if not status["ready"]:
        reason = f" (last error: {status['last_error']})" if status["last_error"] else ""
        raise NotReady("the model is not loaded yet" + reason)
    return json_response({"status": "ready", "model": status["model"]})


@router.get("/ping", response_class=PlainTextResponse, responses={503: ERRORS[503]})
async def ping(service: Service) -> PlainTextResponse:
    """MLflow scoring server's health check: 200 once the model is loaded."""
    if not service.ready:
        raise NotReady("the model is not loaded yet")
    return PlainTextResponse("\n")
