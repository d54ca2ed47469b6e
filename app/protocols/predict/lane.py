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

from app.dataplane import DataPlane
from app.http.auth import GUARD_KEY, Guard
from app.http.contract import ErrorResponse, PredictResponse
from app.http.lane import Answer, BodyLane, Route, check_content_type, error_responses
from app.settings import Settings

PATH = "/predict"
_REFS = "#/components/schemas/"


class PredictLane(BodyLane):
    """Serves POST /predict with one app's data plane."""

    route = Route(PATH)

    def __init__(self, plane: DataPlane, settings: Settings) -> None:
        super().__init__(settings)
        self.plane = plane

    def accept(self, headers: dict[str, str], request_id: str) -> Answer:
        check_content_type(headers.get("content-type"))
        return lambda body: self.plane.predict(body, request_id)

    @staticmethod
    def operation() -> tuple[dict[str, Any], list[type[BaseModel]]]:
        """The OpenAPI operation of POST /predict, and the models its schemas refer to."""

        def ref(model: type[BaseModel]) -> dict[str, Any]:
            return {"application/json": {"schema": {"$ref": f"{_REFS}{model.__name__}"}}}

        responses: dict[str, Any] = {
            "200": {"description": "Predictions, in input order.", "content": ref(PredictResponse)},
            **error_responses(ref),
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
