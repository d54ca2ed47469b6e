"""POST /invocations: MLflow's scoring-server contract, served straight from ASGI like /predict.

The body is JSON in one of MLflow's formats (`dataframe_split`, `dataframe_records`,
`instances`, `inputs`, with optional `params`, checked against the model's params schema and
ignored, as MLflow ignores them, for a model without one), `text/csv` with a header, or
`application/vnd.apache.parquet`. As MLflow's server does, only the `charset` parameter (UTF-8)
is taken in the content type; a body without a content type is read as JSON. The answer is
MLflow's `{"predictions": ...}`.
Everything else is the service's: auth, limits, request ids, metrics, the prediction log, the
batching and fast decoder of the data plane, and errors in the service's one shape.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from app.dataplane import DataPlane
from app.errors import UnsupportedMediaType
from app.http.auth import GUARD_KEY, Guard
from app.http.contract import ErrorResponse, InvocationsResponse
from app.http.lane import Answer, BodyLane, Route, error_responses
from app.settings import Settings

PATH = "/invocations"
CSV = "text/csv"
JSON = "application/json"
PARQUET = "application/vnd.apache.parquet"
FORMATS = {CSV: "csv", PARQUET: "parquet"}
_REFS = "#/components/schemas/"


def _unsupported(message: str) -> UnsupportedMediaType:
    return UnsupportedMediaType(message, [{"loc": ["header", "content-type"], "msg": message}])


def body_format(content_type: str | None) -> str:
    """ "json", "csv" or "parquet" for the request's content type (none: JSON), or
    UnsupportedMediaType for any other, or for a parameter besides a UTF-8 charset."""
    if content_type is None:
        return "json"
    media, *parameters = (part.strip() for part in content_type.split(";"))
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        if name.strip().lower() != "charset":
            raise _unsupported("unknown content type parameter: only charset is taken")
        if value.strip().strip('"').lower() != "utf-8":
            raise _unsupported("only the UTF-8 charset is supported")
    media = media.lower()
    if media == JSON or media.endswith("+json"):
        return "json"
    if media in FORMATS:
        return FORMATS[media]
    raise _unsupported(f"send the body as {JSON}, {CSV} or {PARQUET}")


class InvocationsLane(BodyLane):
    """Serves POST /invocations with one app's data plane."""

    route = Route(PATH)

    def __init__(self, plane: DataPlane, settings: Settings) -> None:
        super().__init__(settings)
        self.plane = plane

    def accept(self, headers: dict[str, str], request_id: str) -> Answer:
        kind = body_format(headers.get("content-type"))
        return lambda body: self.plane.invocations(body, request_id, kind)

    @staticmethod
    def operation() -> tuple[dict[str, Any], list[type[BaseModel]]]:
        """The OpenAPI operation of POST /invocations, and the models its schemas refer to."""

        def ref(model: str) -> dict[str, Any]:
            return {JSON: {"schema": {"$ref": f"{_REFS}{model}"}}}

        responses: dict[str, Any] = {
            "200": {
                "description": "Predictions, in input order, as MLflow's scoring server answers.",
                "content": ref(InvocationsResponse.__name__),
            },
            **error_responses(lambda model: ref(model.__name__)),
        }
        operation = {
            "tags": ["model"],
            "summary": "Invocations (MLflow scoring server)",
            "description": (
                "MLflow's scoring-server protocol, as `mlflow models serve` answers it: a JSON "
                "body in one of MLflow's formats, CSV with a header line, or Parquet; validated "
                "against the model's signature."
            ),
            "operationId": "invocations_invocations_post",
            "requestBody": {
                "required": True,
                "content": {
                    **ref("InvocationsRequest"),
                    CSV: {"schema": {"type": "string", "example": "header,row\n"}},
                    PARQUET: {"schema": {"type": "string", "format": "binary"}},
                },
            },
            "responses": responses,
            GUARD_KEY: Guard.CLIENT.value,
        }
        return operation, [InvocationsResponse, ErrorResponse]
