"""Probes: liveness (/healthz), readiness (/readyz), and MLflow's scoring server's /ping,
/health and /version."""

from importlib import metadata

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse, Response

from app.api.routes.deps import Slot, json_response
from app.errors import NotReady
from app.http.contract import ERRORS, Readiness, Status
from app.serving.workers import ready_workers

router = APIRouter(tags=["probes"])
DRAINING = "draining: the service is stopping (requests are still answered)"


@router.get("/healthz", response_model=Status)
async def healthz() -> Response:
    """Liveness: 200 while the process is up, whether or not a model is loaded."""
    return json_response({"status": "ok"})


@router.get("/readyz", response_model=Readiness, responses={503: ERRORS[503]})
async def readyz(slot: Slot) -> Response:
    """Readiness: 200 once the model is loaded and serving, 503 until then, and 503 again
    once the process is stopping (draining)."""
    status = slot.status()
    if status["draining"]:
        raise NotReady(DRAINING)
    if not status["ready"]:
        reason = f" (last error: {status['last_error']})" if status["last_error"] else ""
        raise NotReady("the model is not loaded yet" + reason)
    expected = slot.settings.workers
    ready = ready_workers()
    if expected > 1 and ready is not None and ready < expected:
        raise NotReady(f"{ready} of {expected} workers have the model loaded")
    return json_response(
        {
            "status": "ready",
            "source": status["source"],
            "registry": status["registry"],
            "model": status["model"],
        }
    )


@router.get("/ping", response_class=PlainTextResponse, responses={503: ERRORS[503]})
@router.get("/health", response_class=PlainTextResponse, responses={503: ERRORS[503]})
async def ping(slot: Slot) -> PlainTextResponse:
    """MLflow scoring server's health check (/ping and /health): 200 once the model is
    loaded."""
    if slot.draining:
        raise NotReady(DRAINING)
    if not slot.ready:
        raise NotReady("the model is not loaded yet")
    return PlainTextResponse("\n")


@router.get("/version", response_class=PlainTextResponse)
async def version() -> PlainTextResponse:
    """MLflow scoring server's /version: the version of MLflow serving the model."""
    return PlainTextResponse(metadata.version("mlflow-skinny"))
