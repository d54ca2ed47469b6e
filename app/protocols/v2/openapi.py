"""The Open Inference Protocol (V2) lane in the OpenAPI document.

The lane is served straight from ASGI (`app.protocols.v2.lane`), outside FastAPI's routes, so
FastAPI does not see it; this adds its endpoints (`app.protocols.v2.lane.ENDPOINTS`, the one table
the lane routes by) with the protocol's request, response and error schemas, as strict as the lane's
own checks (`app.protocols.v2.request`): what a schema refuses, the lane refuses too
(tests/app/test_fuzz.py fuzzes every operation of the document both ways)."""

from __future__ import annotations

from typing import Any

from app.http.auth import GUARD_KEY, Guard
from app.http.contract import ERRORS
from app.model.schema import InputSchema
from app.protocols.v2.datatypes import COLUMN_DATATYPE, FAMILY
from app.protocols.v2.lane import ENDPOINTS, Endpoint

_REFS = "#/components/schemas/"
_SHAPE = {"type": "array", "items": {"type": "integer", "minimum": 0}}
_PARAMETERS = {
    "type": ["object", "null"],
    "description": "Name/value pairs; the values strings, numbers or booleans.",
    "additionalProperties": {"type": ["string", "number", "boolean"]},
}
_TENSOR_METADATA = {
    "type": "object",
    "required": ["name", "datatype", "shape"],
    "properties": {
        "name": {"type": "string"},
        "datatype": {"type": "string"},
        "shape": {"type": "array", "items": {"type": "integer"}, "description": "-1: any"},
    },
}
SCHEMAS: dict[str, dict[str, Any]] = {
    "V2Error": {
        "type": "object",
        "required": ["error"],
        "properties": {"error": {"type": "string"}},
    },
    "V2ServerMetadata": {
        "type": "object",
        "required": ["name", "version", "extensions"],
        "properties": {
            "name": {"type": "string"},
            "version": {"type": "string"},
            "extensions": {"type": "array", "items": {"type": "string"}},
        },
    },
    "V2ServerLive": {
        "type": "object",
        "required": ["live"],
        "properties": {"live": {"type": "boolean"}},
    },
    "V2ServerReady": {
        "type": "object",
        "required": ["ready"],
        "properties": {"ready": {"type": "boolean"}},
    },
    "V2ModelReady": {
        "type": "object",
        "required": ["name", "ready"],
        "properties": {"name": {"type": "string"}, "ready": {"type": "boolean"}},
    },
    "V2ModelMetadata": {
        "type": "object",
        "required": ["name", "platform", "inputs", "outputs"],
        "properties": {
            "name": {"type": "string"},
            "versions": {"type": "array", "items": {"type": "string"}},
            "platform": {"type": "string"},
            "inputs": {"type": "array", "items": _TENSOR_METADATA},
            "outputs": {"type": "array", "items": _TENSOR_METADATA},
        },
    },
    "V2InferenceRequest": {
        "type": "object",
        "description": "One input tensor per model input (a value per row), or one [rows, "
        "inputs] tensor; every value in `data`, flat or nested (JSON only, no binary data).",
        "required": ["inputs"],
        "additionalProperties": False,
        "properties": {
            "id": {"type": ["string", "null"]},
            "model_name": {"type": ["string", "null"]},
            "model_version": {"type": ["string", "null"]},
            "parameters": _PARAMETERS,
            "inputs": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "required": ["name", "shape", "datatype", "data"],
                    "additionalProperties": False,
                    "properties": {
                        "name": {"type": "string"},
                        "shape": _SHAPE,
                        "datatype": {"type": "string", "enum": list(FAMILY)},
                        "parameters": _PARAMETERS,
                        "data": {"type": "array"},
                    },
                },
            },
            "outputs": {
                "type": ["array", "null"],
                "description": "The outputs to answer with (all when absent).",
                "items": {
                    "type": "object",
                    "required": ["name"],
                    "additionalProperties": False,
                    "properties": {"name": {"type": "string"}, "parameters": _PARAMETERS},
                },
            },
        },
    },
    "V2InferenceResponse": {
        "type": "object",
        "required": ["model_name", "outputs"],
        "properties": {
            "model_name": {"type": "string"},
            "model_version": {"type": "string"},
            "id": {"type": "string"},
            "outputs": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name", "datatype", "shape", "data"],
                    "properties": {
                        "name": {"type": "string"},
                        "datatype": {"type": "string"},
                        "shape": _SHAPE,
                        "data": {"type": "array"},
                    },
                },
            },
        },
    },
}
_ANSWERS = {
    "server": ("Server metadata", "V2ServerMetadata", "The server's name, version and extensions."),
    "live": ("Server live", "V2ServerLive", "Whether the server is live."),
    "ready": ("Server ready", "V2ServerReady", "Whether a model is loaded (else 503)."),
    "model": ("Model metadata", "V2ModelMetadata", "The model's input and output tensors."),
    "model_ready": ("Model ready", "V2ModelReady", "Whether the model is ready."),
    "infer": ("Infer", "V2InferenceResponse", "Predictions, as output tensors, in input order."),
}


_V2_ERRORS = {
    400: "The request does not fit the protocol or the model's inputs; `error` says what.",
    404: "The path names another model, or a version other than the one served.",
}


def _description(code: int) -> str:
    return _V2_ERRORS.get(code) or str(ERRORS[code]["description"])


def _errors(endpoint: Endpoint) -> list[int]:
    if endpoint.kind in ("server", "live"):
        return []
    if endpoint.kind == "ready":
        return [503]
    codes = [401, 403, 404, 503]  # the model's endpoints: guarded, and the path names a model
    if endpoint.kind == "infer":
        codes += [400, 408, 413, 415, 504]
    return sorted(codes)


def _operation(
    endpoint: Endpoint, name: str | None, example: dict[str, Any] | None
) -> dict[str, Any]:
    summary, answer, description = _ANSWERS[endpoint.kind]
    path, method = endpoint.route.path, endpoint.method.lower()

    def content(schema: str) -> dict[str, Any]:
        return {"application/json": {"schema": {"$ref": _REFS + schema}}}

    responses = {"200": {"description": description, "content": content(answer)}}
    for code in _errors(endpoint):
        responses[str(code)] = {"description": _description(code), "content": content("V2Error")}
    operation: dict[str, Any] = {
        "tags": ["Open Inference Protocol (V2)"],
        "summary": summary,
        "operationId": "_".join([*(p.strip("{}") for p in path.split("/") if p), method]),
        "responses": responses,
    }
    parameters = []
    for param in ("name", "version"):
        if "{" + param + "}" in path:
            schema: dict[str, Any] = {"type": "string"}
            if param == "name" and name is not None:
                schema["example"] = name
            parameters.append({"name": param, "in": "path", "required": True, "schema": schema})
    if parameters:
        operation["parameters"] = parameters
    if endpoint.kind == "infer":
        body: dict[str, Any] = {"schema": {"$ref": _REFS + "V2InferenceRequest"}}
        if example is not None:
            body["example"] = example
        operation["requestBody"] = {"required": True, "content": {"application/json": body}}
    if endpoint.guarded:
        operation[GUARD_KEY] = Guard.CLIENT.value
    return operation


def infer_example(schema: InputSchema, record: dict[str, Any]) -> dict[str, Any] | None:
    """An inference request for one record of the input example: a tensor per input."""
    inputs = []
    for column in schema.columns:
        datatype = COLUMN_DATATYPE.get(column.kind)
        if datatype is None or column.name not in record:
            return None
        data = [record[column.name]]
        inputs.append({"name": column.name, "datatype": datatype, "shape": [1], "data": data})
    return {"inputs": inputs} if inputs else None


def document_v2(
    doc: dict[str, Any], name: str | None = None, example: dict[str, Any] | None = None
) -> None:
    """Add the V2 lane to `doc`: every endpoint, and the schemas they refer to. `name` is the
    served model's (the path's example), `example` an inference request for it."""
    paths = doc.setdefault("paths", {})
    for endpoint in ENDPOINTS.values():
        operation = _operation(endpoint, name, example)
        paths.setdefault(endpoint.route.path, {})[endpoint.method.lower()] = operation
    doc.setdefault("components", {}).setdefault("schemas", {}).update(SCHEMAS)
