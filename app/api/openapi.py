"""The OpenAPI document: FastAPI's routes, the /predict and /invocations lanes' operations,
the V2 lane's (`app.protocols.v2.openapi`), the loaded model's request schema, and the
security every guarded operation needs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from app.formats.payload import request_schemas
from app.http.auth import document
from app.protocols.invocations.lane import PATH as INVOCATIONS
from app.protocols.invocations.lane import InvocationsLane
from app.protocols.predict.lane import PATH, PredictLane
from app.protocols.v2.openapi import document_v2, infer_example
from app.serving.slot import ModelSlot
from app.settings import Settings

_REF_TEMPLATE = "#/components/schemas/{model}"


def _document_predict(doc: dict[str, Any]) -> None:
    operation, models = PredictLane.operation()
    mlflow, more = InvocationsLane.operation()
    paths = {PATH: {"post": operation}, INVOCATIONS: {"post": mlflow}}
    doc["paths"] = {**paths, **doc.get("paths", {})}
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    for model in [*models, *more]:
        schema = model.model_json_schema(ref_template=_REF_TEMPLATE)
        schemas.update(schema.pop("$defs", {}))
        schemas.setdefault(model.__name__, schema)


def openapi_for(app: FastAPI, slot: ModelSlot, settings: Settings) -> Callable[[], dict[str, Any]]:
    """The document, rebuilt when the serving model changes."""
    cache: dict[str, Any] = {}

    def openapi() -> dict[str, Any]:
        key = repr(slot.status()["model"])
        if cache.get("key") == key:
            cached: dict[str, Any] = cache["doc"]
            return cached
        doc = get_openapi(
            title=app.title, version=app.version, summary=app.summary, routes=app.routes
        )
        _document_predict(doc)
        if slot.ready:
            served = slot.serving()
            schema = served.predictor.schema
            # The example is a training row: show it only where /model-info is open too.
            public = settings.api_key is None or settings.predict_public
            example = served.predictor.describe().get("input_example") if public else None
            first = example[0] if isinstance(example, list) and example else None
            infer = infer_example(schema, first) if isinstance(first, dict) else None
            document_v2(doc, served.predictor.identity.name, infer)
            record, names = schema.record_json_schema(first), list(schema.names)
        else:
            document_v2(doc)
            record, names = {"type": "object"}, []
        doc["components"]["schemas"].update(request_schemas(record, names))
        document(doc, settings)
        cache.update(key=key, doc=doc)
        app.openapi_schema = doc
        return doc

    return openapi
