"""The documented shapes of the HTTP API (for OpenAPI).

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


class ServedIdentity(BaseModel):
    """Which model answered."""

    name: str
    version: str | None
    alias: str | None
    run_id: str | None
    uri: str


class PredictResponse(BaseModel):
    predictions: list[Any] = Field(description="One prediction per input record, in order.")
    model: ServedIdentity


class InvocationsResponse(BaseModel):
    """MLflow's scoring-server answer (POST /invocations)."""

    predictions: list[Any] = Field(description="One prediction per input row, in order.")


class Status(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    source: str | None = Field(
        default=None, description="Where the serving model came from: registry or cache."
    )
    registry: str | None = Field(
        default=None,
        description="Whether the tracking server and artifact store answer: reachable or "
        "unreachable (the model then serves from the cache).",
    )
    model: dict[str, Any] | None = None


class WorkerReload(BaseModel):
    pid: int = Field(description="The worker's process id.")
    status: str = Field(description="reloaded, unchanged, or failed.")
    model: dict[str, Any] | None = Field(default=None, description="The model it now serves.")
    error: str | None = Field(default=None, description="Why it failed (it keeps its model).")


class ReloadResult(BaseModel):
    status: str = Field(description="reloaded, or unchanged (same version; use force=true).")
    model: dict[str, Any] = Field(description="The model now serving.")
    previous: dict[str, Any] | None = Field(description="The model it replaced, if reloaded.")
    workers: list[WorkerReload] | None = Field(
        default=None, description="With several workers: each one's result (this one's first)."
    )


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": text}
    for code, text in {
        401: "No API key sent (Authorization: Bearer <API_KEY>).",
        403: "Wrong API key.",
        404: "No such thing here (e.g. no predictions known for that request id).",
        409: "Labels were already scored for that request id (the first ones stand).",
        408: "The request body did not arrive within BODY_TIMEOUT.",
        502: "Reload failed; the previous model is still serving.",
        504: "No answer within REQUEST_TIMEOUT.",
        413: "Body over MAX_BODY_BYTES.",
        415: "Content type is not application/json.",
        422: "The body does not fit the model's input schema; `details` names each problem.",
        503: "No model loaded yet.",
    }.items()
}
