"""The documentation: GET /openapi.json, and the Swagger UI (/docs) and ReDoc (/redoc) pages
that read it. FastAPI's own routes for these take no dependencies, so the app turns them off
and serves them here, behind the documentation's guard (DOCS_PUBLIC)."""

from typing import Any

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response

from app.api.routes.deps import json_response
from app.http.auth import Guard, protect

OPENAPI = "/openapi.json"
router = APIRouter()


def _guarded() -> dict[str, Any]:
    route = protect(Guard.DOCS)
    del route["openapi_extra"]  # not operations of the API: not in its document
    return {**route, "include_in_schema": False}


@router.get(OPENAPI, **_guarded())
async def openapi(request: Request) -> Response:
    return json_response(request.app.openapi())


@router.get("/docs", **_guarded())
async def swagger_ui(request: Request) -> HTMLResponse:
    url = request.scope.get("root_path", "") + OPENAPI
    return get_swagger_ui_html(openapi_url=url, title=f"{request.app.title} - Swagger UI")


@router.get("/redoc", **_guarded())
async def redoc(request: Request) -> HTMLResponse:
    url = request.scope.get("root_path", "") + OPENAPI
    return get_redoc_html(openapi_url=url, title=f"{request.app.title} - ReDoc")
