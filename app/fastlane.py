"""The fast lane: `POST /predict` served ahead of the framework's per-request layers.

A request to /predict suspends while its batch is predicted on a model thread; resuming it
through FastAPI's stack (error middleware, telemetry, body limit, exception handlers, router,
dependency solving) cost more than the prediction itself, about 20 us a request. The lane
takes `POST /predict` straight from the ASGI server, runs the same `answer()` the FastAPI
route runs, answers errors in the service's one shape, and counts the request in /metrics like
any other. Everything else goes through FastAPI unchanged.
"""

from __future__ import annotations

import logging
import time

from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope, Send

from app.errors import ServiceError, error_bytes
from app.metrics import Metrics
from app.routes.predict import PATH, answer
from app.service import ModelService

logger = logging.getLogger(__name__)

_JSON = (b"content-type", b"application/json")
# The request headers answer() reads (ASGI servers send names lower-cased).
_WANTED = {n.encode(): n for n in ("authorization", "content-type", "content-length")}


class PredictLane:
    """Serves POST /predict for one app's service."""

    def __init__(self, service: ModelService, metrics: Metrics) -> None:
        self.service = service
        self._metrics = metrics

    @staticmethod
    def handles(scope: Scope) -> bool:
        return scope["type"] == "http" and scope["path"] == PATH and scope["method"] == "POST"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        start = time.perf_counter()
        headers = {_WANTED[k]: v.decode("latin-1") for k, v in scope["headers"] if k in _WANTED}
        status = 200
        try:
            body = await answer(self.service, headers, receive)
        except ServiceError as exc:
            status = exc.status
            body = error_bytes(status, exc.code, exc.message, exc.details)
        except ClientDisconnect:
            status = 499  # nobody is listening; nothing to send
            self._metrics.count_request(PATH, "POST", status, time.perf_counter() - start)
            return
        except Exception as exc:  # the one shape, never a stack trace
            logger.error("unhandled error: %s", type(exc).__name__, exc_info=exc)
            status = 500
            body = error_bytes(500, "internal_error", "internal error; see the service log")
        response_headers = [_JSON, (b"content-length", str(len(body)).encode())]
        if status == 401:
            response_headers.append((b"www-authenticate", b"Bearer"))
        await send({"type": "http.response.start", "status": status, "headers": response_headers})
        await send({"type": "http.response.body", "body": body})
        self._metrics.count_request(PATH, "POST", status, time.perf_counter() - start)
