"""The app factory: `create_app(settings)` wires settings, service, routes, errors and metrics."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from starlette.types import Receive, Scope, Send

from app.auth import SCHEME
from app.contract import request_schemas
from app.errors import ServiceError, install_error_handlers
from app.fastlane import PredictLane
from app.metrics import Metrics, MetricsMiddleware
from app.predictor import MlflowPredictor
from app.routes import add_routes
from app.service import ModelService, PredictorFactory
from app.settings import Settings, get_settings

logger = logging.getLogger(__name__)


class ServingApp(FastAPI):
    """FastAPI, with `POST /predict` taken by the fast lane before the framework's layers."""

    lane: PredictLane | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        lane = self.lane
        if lane is not None and lane.handles(scope):
            await lane(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def create_app(
    settings: Settings | None = None,
    *,
    predictor_factory: PredictorFactory | None = None,
    on_fatal: Callable[[], None] | None = None,
    on_reloaded: Callable[[], None] | None = None,
) -> FastAPI:
    """A new app serving the model `settings` names. Loading starts with the lifespan.

    `on_fatal` is called when the model cannot be loaded within the retry budget (the CLI
    uses it to stop the server and exit non-zero); `on_reloaded` after a reload through
    the API (a worker uses it to have its siblings reload too). `predictor_factory` swaps the MLflow
    loader for another `Predictor` (tests).
    """
    settings = settings or get_settings()
    uri = settings.resolved_model_uri
    factory = predictor_factory or (lambda: MlflowPredictor(uri))
    metrics = Metrics()
    service = ModelService(settings, factory, metrics, on_fatal=on_fatal, on_reloaded=on_reloaded)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await service.start()
        hangup = _reload_on_hangup(service)
        try:
            yield
        finally:
            if hangup:
                asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
                signal.signal(signal.SIGHUP, signal.SIG_IGN)  # not the default: terminate
            await service.stop()

    app = ServingApp(
        title="model-serving",
        summary="Predictions from an MLflow model, validated against its signature.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.lane = PredictLane(service, metrics)
    app.state.settings = settings
    app.state.service = service
    app.state.metrics = metrics
    add_routes(app, admin_routes=settings.api_key is not None)
    install_error_handlers(app)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.openapi = _openapi_for(app, service)  # type: ignore[method-assign]
    return app


def _reload_on_hangup(service: ModelService) -> bool:
    """SIGHUP reloads the model (as POST /admin/reload does), where signals can be handled."""
    loop = asyncio.get_running_loop()

    async def reload() -> None:
        try:
            result = await service.reload(notify=False)
        except ServiceError as exc:
            logger.error("SIGHUP reload: %s", exc.message)
        else:
            logger.info("SIGHUP reload: %s", result["status"])

    try:
        loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(reload()))
    except (NotImplementedError, RuntimeError, ValueError):
        return False  # not the main thread (e.g. a test client): no signals here
    return True


def _document_auth(doc: dict[str, Any], *, public: bool) -> None:
    """Mark the routes that need `Authorization: Bearer <API_KEY>` in the OpenAPI document."""
    doc["components"].setdefault("securitySchemes", {})[SCHEME] = {
        "type": "http",
        "scheme": "bearer",
        "description": "The service's API_KEY.",
    }
    protected = [("/admin/reload", "post")]
    if not public:
        protected += [("/predict", "post"), ("/model-info", "get")]
    for path, method in protected:
        operation = doc["paths"].get(path, {}).get(method)
        if operation is not None:
            operation["security"] = [{SCHEME: []}]


def _openapi_for(app: FastAPI, service: ModelService) -> Callable[[], dict[str, Any]]:
    """The OpenAPI document, with /predict's body described by the loaded model's signature."""
    cache: dict[str, Any] = {}

    def openapi() -> dict[str, Any]:
        key = repr(service.status()["model"])
        if cache.get("key") == key:
            doc: dict[str, Any] = cache["doc"]
            return doc
        doc = get_openapi(
            title=app.title,
            version=app.version,
            summary=app.summary,
            routes=app.routes,
        )
        schemas = doc.setdefault("components", {}).setdefault("schemas", {})
        settings = service.settings
        if settings.api_key is not None:
            _document_auth(doc, public=settings.predict_public)
        if service.ready:
            schema = service.input_schema()
            # The example is a training row: show it only where /model-info is open too.
            public = settings.api_key is None or settings.predict_public
            example = service.input_example() if public else None
            record = schema.record_json_schema(example[0] if example else None)
            schemas.update(request_schemas(record, list(schema.names)))
        else:
            schemas.update(request_schemas({"type": "object"}, []))
        cache.update(key=key, doc=doc)
        app.openapi_schema = doc
        return doc

    return openapi
