import orjson
from fastapi import Request
from fastapi.responses import Response

from app.service import ModelService


async def get_service(request: Request) -> ModelService:
    service: ModelService = request.app.state.service
    return service


def json_response(data: object, status_code: int = 200) -> Response:
    """A JSON response serialized with orjson (numpy values included)."""
    return Response(
        orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY),
        status_code=status_code,
        media_type="application/json",
    )
