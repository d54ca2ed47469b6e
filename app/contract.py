"""The documented shapes of the HTTP API (for OpenAPI), and the model-specific request schema.

Bodies are produced by the service with orjson; these models exist so the OpenAPI document
tells clients (and schemathesis) exactly what they get.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ErrorItem(BaseModel):
    loc: list[str | int] = Field(description="Where in the body: record index, field name.")
    msg: str = Field(description="What is wrong there.")


class ErrorDetail(BaseModel):
    status: int
    code: str = Field(description="Stable machine-readable code, e.g. invalid_input.")
    message: str = Field(description="One line naming what was wrong.")
    details: list[ErrorItem] = Field(default_factory=list)


class ErrorResponse(BaseModel):
    """The one error shape of every error the service returns."""

    error: ErrorDetail


class ModelIdentity(BaseModel):
    name: str
    version: str | None
    alias: str | None
    run_id: str | None
    uri: str


class PredictResponse(BaseModel):
    predictions: list[Any] = Field(description="One prediction per input record, in order.")
    model: ModelIdentity


class Status(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    model: dict[str, Any] | None = None


class ReloadResult(BaseModel):
    status: str = Field(description="reloaded, or unchanged (same version; use force=true).")
    model: dict[str, Any] = Field(description="The model now serving.")
    previous: dict[str, Any] | None = Field(description="The model it replaced, if reloaded.")


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": text}
    for code, text in {
        401: "No API key sent (Authorization: Bearer <API_KEY>).",
        403: "Wrong API key.",
        408: "The request body did not arrive within BODY_TIMEOUT.",
        502: "Reload failed; the previous model is still serving.",
        504: "No answer within REQUEST_TIMEOUT.",
        413: "Body over MAX_BODY_BYTES.",
        415: "Content type is not application/json.",
        422: "The body does not fit the model's input schema; `details` names each problem.",
        503: "No model loaded yet.",
    }.items()
}

FORMAT_NAMES = ("records", "dataframe_split", "dataframe_records", "instances", "inputs")


def request_schemas(record: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """OpenAPI components for /predict's body, built from the loaded model's record schema."""
    ref = {"$ref": "#/components/schemas/Record"}
    records = {"type": "array", "items": ref, "minItems": 1}
    row = {"type": "array", "minItems": len(names), "maxItems": len(names)}
    example = record.get("example")
    return {
        "Record": record,
        "PredictRequest": {
            "title": "PredictRequest",
            "description": (
                'One record, {"records": [...]}, or one of MLflow\'s scoring formats '
                "(dataframe_split, dataframe_records, instances, inputs)."
            ),
            "oneOf": [
                ref,
                _only("records", records),
                _only(
                    "dataframe_split",
                    {
                        "type": "object",
                        "properties": {
                            "columns": {
                                "type": "array",
                                "items": {"type": "string", "enum": names},
                                "uniqueItems": True,
                            },
                            "data": {"type": "array", "items": row, "minItems": 1},
                        },
                        "required": ["columns", "data"],
                        "additionalProperties": False,
                    },
                ),
                _only("dataframe_records", records),
                _only("instances", records),
                _only("inputs", records),
            ],
            "example": example or {},
        },
    }


def _only(key: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "title": key,
        "properties": {key: schema},
        "required": [key],
        "additionalProperties": False,
    }
