"""The app factory: `create_app(settings)` wires settings, the model slot and its loader, the
data plane and its lanes, routes, errors and metrics."""

from __future__ import annotations

import asyncio
import functools
import logging
import signal
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from app.api.openapi import openapi_for
from app.api.routes import add_routes
from app.compat import fastapi as fastapi_compat
from app.dataplane import DataPlane
from app.errors import ServiceError
from app.http.errors import install_error_handlers
from app.http.observe import RequestMiddleware
from app.model.cache import ModelCache
from app.model.mlflow_model import MlflowPredictor
from app.monitoring.metrics import Metrics
from app.monitoring.predlog import PredictionLog
from app.monitoring.recorder import Recorder
from app.process.prepare import prepare_process
from app.protocols.invocations.lane import PATH as INVOCATIONS
from app.protocols.invocations.lane import InvocationsLane
from app.protocols.predict.lane import PATH, PredictLane
from app.protocols.v2.lane import V2_TREE, V2Lane
from app.serving.loader import Loader
from app.serving.shadow import Shadow
from app.serving.slot import ModelSlot, PredictorFactory
from app.serving.workers import answer_requests, mark_ready, mark_reloadable, reload_worker
from app.settings import Settings, get_settings

logger = logging.getLogger(__name__)
Lanes = dict[str, ASGIApp]
"""Lanes by path: each serves every request to its path (and answers 405 to methods it lacks);
a path ending in "/*" names a tree: the lane serves that path and every path beneath it."""


class _Dispatch:
    """Hands the requests a lane serves to it, everything else to FastAPI's own layers: the
    app's innermost middleware (added first)."""

    def __init__(self, framework: ASGIApp, lanes: Lanes) -> None:
        self.lanes = {p: lane for p, lane in lanes.items() if not p.endswith("/*")}
        self.trees = [(p[:-2], p[:-1], lane) for p, lane in lanes.items() if p.endswith("/*")]
        self.framework = framework

    def lane_for(self, path: str) -> ASGIApp | None:
        lane = self.lanes.get(path)
        if lane is None:
            for root, beneath, tree in self.trees:
                if path == root or path.startswith(beneath):
                    return tree
        return lane

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        lane = self.lane_for(scope["path"]) if scope["type"] == "http" else None
        await (lane or self.framework)(scope, receive, send)


class ServingApp(FastAPI):
    """FastAPI, with lanes (routes served straight from ASGI) beneath the app's middleware:
    every middleware added with `add_middleware` sees the lanes' requests too.

    As shipped, the only middleware is the request middleware (request ids, HTTP metrics),
    and a lane's request is handed to it and the lane straight from here, past FastAPI's and
    Starlette's entry layers. With any other middleware added, or FastAPI's native
    OpenTelemetry configured when the stack is built (at start-up), or a FastAPI whose stack
    cannot be rebuilt so (`app.compat.fastapi`), lanes run beneath FastAPI's whole stack."""

    lanes: Lanes
    _direct: tuple[_Dispatch, RequestMiddleware] | None = None

    def serve_lanes(self, lanes: Lanes) -> None:
        """Serve `lanes` beneath every middleware: call before adding any."""
        self.lanes = lanes
        self.add_middleware(_Dispatch, lanes=lanes)

    def build_middleware_stack(self) -> ASGIApp:
        self._direct = None
        if not fastapi_compat.supported():
            return super().build_middleware_stack()
        user = fastapi_compat.user_middleware(self)
        saved = self.user_middleware
        fastapi_compat.set_user_middleware(self, [])
        try:
            framework = super().build_middleware_stack()
        finally:
            fastapi_compat.set_user_middleware(self, saved)
        app: ASGIApp = framework
        for cls, args, kwargs in reversed(user):
            app = cls(app, *args, **kwargs)
        if (
            isinstance(app, RequestMiddleware)
            and isinstance(app.app, _Dispatch)
            and app.app.framework is framework
            and not fastapi_compat.traced(self)
        ):
            self._direct = (app.app, app)  # only ours between the server and the lanes
        return app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        direct = self._direct
        if direct is not None and scope["type"] == "http":
            dispatch, requests = direct
            lane = dispatch.lane_for(scope["path"])
            if lane is not None:
                scope["app"] = self
                if self.root_path:
                    scope["root_path"] = self.root_path
                await requests.serve(scope, receive, send, lane)
                return
        await super().__call__(scope, receive, send)


def create_app(
    settings: Settings | None = None,
    *,
    tracking_uri: str | None = None,
    predictor_factory: PredictorFactory | None = None,
    on_fatal: Callable[[], None] | None = None,
) -> FastAPI:
    """A new app serving the model `settings` names. Loading starts with the lifespan.

    `tracking_uri` overrides MLFLOW_TRACKING_URI (tests); `predictor_factory` swaps the MLflow
    loader for another `Predictor` (tests). `on_fatal` is called when the model cannot be
    loaded within the retry budget (the CLI stops the server and exits non-zero).
    """
    prepare_process()
    settings = settings or get_settings()
    uri = settings.resolved_model_uri
    factory = predictor_factory or (lambda: MlflowPredictor(uri, tracking_uri=tracking_uri))
    metrics = Metrics()
    cache = _model_cache(settings)
    log_url = settings.prediction_log_url
    log = PredictionLog(log_url.get_secret_value(), metrics) if log_url else None
    recorder = Recorder(settings, metrics, log)
    slot = ModelSlot(
        settings, factory, metrics, cache=cache, on_ready=mark_ready, on_install=recorder.serve
    )
    loader = Loader(slot, on_fatal=on_fatal)
    shadow = _shadow(settings, metrics, recorder, cache, tracking_uri)
    slot.companion = shadow

    lifespan = _lifespan(slot, loader, recorder, log, shadow)

    app = ServingApp(
        title="model-serving",
        summary="Predictions from an MLflow model, validated against its signature.",
        version="0.1.0",
        lifespan=lifespan,
        # Served by app.api.routes.docs, behind the documentation's guard.
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    plane = DataPlane(slot, recorder, shadow)
    app.serve_lanes(
        {
            PATH: PredictLane(plane, settings),
            INVOCATIONS: InvocationsLane(plane, settings),
            V2_TREE: V2Lane(plane, settings),
        }
    )
    app.state.settings = settings
    app.state.slot = slot
    app.state.loader = loader
    app.state.recorder = recorder
    app.state.shadow = shadow
    app.state.metrics = metrics
    add_routes(app, admin_routes=settings.api_key is not None)
    install_error_handlers(app)
    app.add_middleware(RequestMiddleware, metrics=metrics)
    app.openapi = openapi_for(app, slot, settings)  # type: ignore[method-assign]
    return app


def _shadow(
    settings: Settings,
    metrics: Metrics,
    recorder: Recorder,
    cache: ModelCache | None,
    tracking_uri: str | None,
) -> Shadow | None:
    """The shadow model SHADOW_MODEL_URI names, or None."""
    uri = settings.shadow_model_uri
    if uri is None:
        return None
    factory = functools.partial(MlflowPredictor, uri, tracking_uri=tracking_uri)
    return Shadow(settings, factory, metrics, recorder, cache=cache)


def _model_cache(settings: Settings) -> ModelCache | None:
    if settings.model_cache_dir is None:
        return None
    if settings.model_cache_key is None:
        logger.warning(
            "MODEL_CACHE_DIR is set but MODEL_CACHE_KEY is not: the model cache is off (its "
            "entries are read only once signed with the key); the model loads from the registry"
        )
        return None
    key = settings.model_cache_key.get_secret_value().encode()
    return ModelCache(settings.model_cache_dir, key)


def _lifespan(
    slot: ModelSlot,
    loader: Loader,
    recorder: Recorder,
    log: PredictionLog | None,
    shadow: Shadow | None,
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """Start: loading (the served model's, the shadow's), recording and the log writer in the
    background. Stop: the shadow, then write what was recorded, then release the model."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        slot.spawn(loader.run(), "model-loader")
        await recorder.start()
        if shadow is not None:
            await shadow.start()
        if log is not None:
            log.start()
        hangup = _reload_on_hangup(slot)
        try:
            yield
        finally:
            if hangup:
                mark_reloadable(False)
                asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
                signal.signal(signal.SIGHUP, signal.SIG_IGN)  # not the default: terminate
            if shadow is not None:
                await shadow.stop()
            await recorder.flush()
            await slot.stop()
            if log is not None:
                log.close()

    return lifespan


def _reload_on_hangup(slot: ModelSlot) -> bool:
    """SIGHUP reloads the model (as POST /admin/reload does), where signals can be handled:
    a sibling worker's pending reload requests if there are any, else this worker's model."""
    loop = asyncio.get_running_loop()

    async def reload() -> None:
        if await answer_requests(lambda force: reload_worker(slot, force)):
            return
        await slot.reload_companion(False)
        try:
            result = await slot.reload()
        except ServiceError as exc:
            logger.error("SIGHUP reload: %s", exc.message)
        else:
            logger.info("SIGHUP reload: %s", result["status"])

    try:
        loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(reload()))
    except (NotImplementedError, RuntimeError, ValueError):
        return False  # not the main thread (e.g. a test client): no signals here
    mark_reloadable(True)
    return True
