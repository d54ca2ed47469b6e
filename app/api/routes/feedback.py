"""POST /feedback: the true labels of a request's rows, for live accuracy and the log."""

from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field, ValidationError

from app.api.routes.deps import json_response
from app.errors import InvalidInput, summarize
from app.http.auth import Guard, protect
from app.http.contract import ERRORS
from app.monitoring.recorder import Recorder

router = APIRouter(tags=["model"])


class Feedback(BaseModel):
    request_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{1,128}$")]
    """The X-Request-ID the prediction was answered with."""
    labels: Annotated[list[Any], Field(min_length=1, max_length=100_000)]
    """The true label of each of the request's rows, in order."""


class FeedbackResult(BaseModel):
    request_id: str
    rows: int
    correct: int
    accuracy: float = Field(
        description="The share of these rows predicted right (live accuracy over the fleet is"
        " the recorded series live_accuracy in Prometheus)."
    )
    model: dict[str, str]
    stored: bool = Field(description="Whether the labels were stored beside the prediction log.")


def _route() -> dict[str, Any]:
    """The route's guard, and its body documented (read by the handler itself, so that a body
    that is not JSON answers 422 in the one shape, as /predict does, not FastAPI's 400)."""
    route = protect(Guard.CLIENT)
    route["openapi_extra"]["requestBody"] = {
        "required": True,
        "content": {"application/json": {"schema": Feedback.model_json_schema()}},
    }
    return route


async def _read(request: Request) -> Feedback:
    try:
        return Feedback.model_validate_json(await request.body())
    except ValidationError as exc:
        details = [{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors()]
        raise InvalidInput(summarize(details), details) from None


@router.post(
    "/feedback",
    response_model=FeedbackResult,
    responses={k: ERRORS[k] for k in (401, 403, 404, 409, 422, 503)},
    **_route(),
)
async def feedback(request: Request) -> Response:
    """Score the predictions of an earlier request against their true labels, once: a second
    feedback for the same request id is refused (409). The prediction is found in whichever
    worker made it and, with the prediction log on, in whichever replica (the labels are
    stored beside the log, table prediction_feedback)."""
    body = await _read(request)
    recorder: Recorder = request.app.state.recorder
    return json_response(await recorder.feedback.score(body.request_id, body.labels))
