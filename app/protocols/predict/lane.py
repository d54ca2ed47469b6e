"""POST /predict: the one implementation of the route, served straight from ASGI.

Resuming a request through FastAPI's per-request layers (exception middleware, routing,
dependency solving) cost more than the prediction itself, so the app hands `POST /predict`
to `PredictLane` below its own middleware (which therefore sees /predict like any route) and
above FastAPI's routing. The lane does all of the route's work: auth, content type, body size
and time limits, the answer from the data plane, errors in the service's one shape. The
OpenAPI document describes it from `operation()` here; there is no second handler.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from starlette.types import Receive, Scope, Send

from app.dataplane import DataPlane
from app.errors import MethodNotAllowed
from app.http.auth import GUARD_KEY, Guard, authorize
from app.http.contract import ERRORS, ErrorResponse, PredictResponse
from app.http.lane import Route, check_content_type, request_id_of, respond, within_limits
from app.settings import Settings

PATH = "/predict"
_REFS = "#/components/schemas/"
# The request headers the lane reads (ASGI servers send names lower-cased).
_WANTED = {n.encode(): n for n in ("authorization", "content-type", "content-length")}


class PredictLane:
    """Serves POST /predict with one app's data plane."""

    route = Route(PATH)

    def __init__(self, plane: DataPlane, settings: Settings) -> None:
        self.plane = plane
        self.settings = settings

    async def answer(
        self, method: str, headers: dict[str, str], receive: Receive, request_id: str
    ) -> bytes:
        """The JSON answer, or a ServiceError saying what is wrong."""
        if method != "POST":
            raise MethodNotAllowed("POST")
        settings = self.settings
        authorize(settings, Guard.CLIENT, headers.get("authorization"))
        check_content_type(headers.get("content-type"))
        return await within_limits(
            settings,
            receive,
            headers.get("content-length"),
            lambda body: self.plane.predict(body, request_id),
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["route"] = self.route
        headers = {_WANTED[k]: v.decode("latin-1") for k, v in scope["headers"] if k in _WANTED}
        await respond(send, self.answer(scope["method"], headers, receive, request_id_of(scope)))

    @staticmethod
    def operation() -> tuple[dict[str, Any], list[type[BaseModel]]]:
        """The OpenAPI operation of POST /predict, and the models its schemas refer to."""

        def ref(model: type[BaseModel]) -> dict[str, Any]:
            return {"application/json": {"schema": {"$ref": f"{_REFS}{model.__name__}"}}}

        responses: dict[str, Any] = {
            "200": {"description": "Predictions, in input order.", "content": ref(PredictResponse)}
        }
        for code in (401, 403, 408, 413, 415, 422, 503, 504):
            responses[str(code)] = {
                "description": ERRORS[code]["description"],
                "content": ref(ERRORS[code]["model"]),
            }
        operation = {
            "tags": ["model"],
            "summary": "Predict",
            "description": "Predict one record or many; validated against the model's signature.",
            "operationId": "predict_predict_post",
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": f"{_REFS}PredictRequest"}}},
            },
            "responses": responses,
            GUARD_KEY: Guard.CLIENT.value,
        }
        return operation, [PredictResponse, ErrorResponse]
