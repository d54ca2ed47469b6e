"""The Open Inference Protocol (V2) REST lane: what KServe, Triton, MLServer and Seldon speak,
so their clients (`tritonclient`, the KServe SDK) and tooling work with this service unchanged.

    GET  /v2                                   server metadata
    GET  /v2/health/live | /v2/health/ready    server liveness / readiness
    GET  /v2/models/{name}[/versions/{version}]          model metadata
    GET  /v2/models/{name}[/versions/{version}]/ready    model readiness
    POST /v2/models/{name}[/versions/{version}]/infer    inference

Served straight from ASGI like /predict (`app.protocols.predict.lane`), with the same auth, content
type, body size and time limits, and on the same data plane: a V2 request is read into the rows a
/predict body becomes (`app.protocols.v2.inputs`), validated by the same schema, predicted by the
same batcher. The name is the served model's (registered, or the run's model name); another name, or
a version other than the one served, is 404. Errors are the protocol's `{"error": "..."}` with the
service's messages; invalid input is 400 here (the protocol's and Triton's and KServe's status for a
bad request), 422 on /predict. The probes and server metadata are open like /healthz; the model
routes need the API key when /predict does."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from importlib import metadata
from typing import Any
from urllib.parse import unquote

import orjson
from starlette.types import Receive, Scope, Send

from app.dataplane import DataPlane
from app.errors import (
    InvalidInput,
    MethodNotAllowed,
    NotFound,
    Rendered,
    UnsupportedMediaType,
    render,
)
from app.http.auth import Guard, authorize
from app.http.lane import (
    Route,
    check_content_type,
    request_id_of,
    respond,
    within_limits,
)
from app.protocols.v2.inputs import TensorReader
from app.protocols.v2.model import ModelTensors
from app.protocols.v2.request import BINARY_UNSUPPORTED
from app.serving.served import ServedModel
from app.settings import Settings

logger = logging.getLogger(__name__)

V2_TREE = "/v2/*"
"""The lane's paths: /v2 and everything beneath it (see `app.api.application.Lanes`)."""
SERVER_NAME = "model-serving"
_BINARY_HEADER = "inference-header-content-length"
_WANTED = {
    n.encode(): n for n in ("authorization", "content-type", "content-length", _BINARY_HEADER)
}


@dataclass(frozen=True, slots=True)
class Endpoint:
    kind: str
    method: str
    guarded: bool
    route: Route


def _endpoints() -> dict[tuple[str, bool], Endpoint]:
    """By (kind, whether the path names a version)."""
    model = "/v2/models/{name}"
    versioned = model + "/versions/{version}"
    table = {
        ("server", False): ("GET", False, "/v2"),
        ("live", False): ("GET", False, "/v2/health/live"),
        ("ready", False): ("GET", False, "/v2/health/ready"),
    }
    for base, has_version in ((model, False), (versioned, True)):
        table[("model", has_version)] = ("GET", True, base)
        table[("model_ready", has_version)] = ("GET", True, base + "/ready")
        table[("infer", has_version)] = ("POST", True, base + "/infer")
    return {
        key: Endpoint(key[0], method, guarded, Route(path))
        for key, (method, guarded, path) in table.items()
    }


ENDPOINTS = _endpoints()
_MODEL_TAILS = {(): "model", ("ready",): "model_ready", ("infer",): "infer"}
_MATCHED_PATHS = 64


def match(segments: list[str]) -> tuple[str, str | None, str | None] | None:
    """(endpoint kind, model name, version) for a /v2 path's segments, or None."""
    parts = segments[2:]  # "/v2/models/m/infer" -> ["models", "m", "infer"]
    if not parts:
        return "server", None, None
    if parts == ["health", "live"] or parts == ["health", "ready"]:
        return parts[1], None, None
    if len(parts) < 2 or parts[0] != "models" or not parts[1]:
        return None
    name, rest, version = parts[1], parts[2:], None
    if rest[:1] == ["versions"] and len(rest) >= 2 and rest[1]:
        version, rest = rest[1], rest[2:]
    kind = _MODEL_TAILS.get(tuple(rest))
    return None if kind is None else (kind, name, version)


def segments(scope: Scope) -> list[str]:
    """The path's segments, each percent-decoded on its own (a name may hold an encoded '/')."""
    raw = scope.get("raw_path")
    if not raw or b"%" not in raw:
        return str(scope["path"]).split("/")
    return [unquote(part) for part in raw.decode("latin-1").split("/")]


def _encode(status: int, code: str, message: str, details: list[dict[str, Any]] | None) -> bytes:
    try:
        return orjson.dumps({"error": message})
    except TypeError:  # e.g. a lone surrogate that slipped into a message
        return b'{"error":"invalid request"}'


def render_v2(exc: BaseException) -> Rendered:
    """An error in the protocol's shape; invalid input is 400 (the protocol's bad request)."""
    status, body, headers = render(exc, _encode)
    return (400 if status == InvalidInput.status else status), body, headers


def _server_json() -> bytes:
    try:
        version = metadata.version(SERVER_NAME)
    except metadata.PackageNotFoundError:
        version = "unknown"
    return orjson.dumps({"name": SERVER_NAME, "version": version, "extensions": []})


class V2Lane:
    """Serves /v2 and every path beneath it with one app's data plane."""

    def __init__(self, plane: DataPlane, settings: Settings) -> None:
        self.plane = plane
        self.settings = settings
        self.server_json = _server_json()
        self._described: tuple[ServedModel, ModelTensors] | None = None
        self._matched: dict[Any, tuple[str, str | None, str | None]] = {}
        """Recent paths, matched (clients call a few paths many times)."""

    def match(self, scope: Scope) -> tuple[str, str | None, str | None] | None:
        key = scope.get("raw_path") or scope["path"]
        found = self._matched.get(key)
        if found is None:
            found = match(segments(scope))
            if found is not None and len(self._matched) < _MATCHED_PATHS:
                self._matched[key] = found
        return found

    def model(self, name: str | None, version: str | None) -> tuple[ServedModel, ModelTensors]:
        """The serving model, if the path names it (else 404; 503 while none is loaded)."""
        served = self.plane.slot.serving()
        tensors = self.describe(served)
        tensors.check(name, version)
        return served, tensors

    def describe(self, served: ServedModel) -> ModelTensors:
        described = self._described
        if described is not None and described[0] is served:
            return described[1]
        tensors = ModelTensors.of(served)
        self._described = (served, tensors)
        return tensors

    async def answer(
        self,
        endpoint: Endpoint,
        method: str,
        name: str | None,
        version: str | None,
        headers: dict[str, str],
    ) -> bytes:
        """Every endpoint's answer but a POST to infer's (`infer`)."""
        if method != endpoint.method:
            raise MethodNotAllowed(endpoint.method)
        if endpoint.guarded:
            authorize(self.settings, Guard.CLIENT, headers.get("authorization"))
        kind = endpoint.kind
        if kind == "live":
            return b'{"live":true}'
        if kind == "ready":
            self.plane.slot.serving()  # 503 until a model is loaded
            return b'{"ready":true}'
        if kind == "server":
            return self.server_json
        _, tensors = self.model(name, version)
        return tensors.metadata_json if kind == "model" else tensors.ready_json

    async def infer(
        self,
        name: str | None,
        version: str | None,
        headers: dict[str, str],
        receive: Receive,
        request_id: str,
    ) -> bytes:
        """A POST to infer's answer."""
        authorize(self.settings, Guard.CLIENT, headers.get("authorization"))
        served, tensors = self.model(name, version)
        if _BINARY_HEADER in headers:
            raise UnsupportedMediaType(
                BINARY_UNSUPPORTED, [{"loc": ["header", _BINARY_HEADER], "msg": "not supported"}]
            )
        check_content_type(headers.get("content-type"))
        reader = TensorReader(tensors.inputs, tensors.output_names)
        read, decode, plane = reader.read, reader.decode, self.plane
        try:
            answering, predictions = await within_limits(
                self.settings,
                receive,
                headers.get("content-length"),
                lambda body: plane.infer(body, read, request_id, decode),
            )
        except InvalidInput as exc:
            raise reader.relocate(exc) from None
        if answering is not served:  # another model was swapped in meanwhile
            tensors = self.describe(answering)
            tensors.check(name, version)
        return tensors.answer(reader.id, predictions, reader.requested)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        found = self.match(scope)
        if found is None:
            await respond(send, _not_found(), render_v2)
            return
        kind, name, version = found
        endpoint = ENDPOINTS[(kind, version is not None)]
        scope["route"] = endpoint.route
        headers = {_WANTED[k]: v.decode("latin-1") for k, v in scope["headers"] if k in _WANTED}
        method = scope["method"]
        if kind == "infer" and method == "POST":
            answer = self.infer(name, version, headers, receive, request_id_of(scope))
        else:
            answer = self.answer(endpoint, method, name, version, headers)
        await respond(send, answer, render_v2)


async def _not_found() -> bytes:
    raise NotFound(
        "not found: the V2 endpoints are /v2, /v2/health/{live,ready} and "
        "/v2/models/{name}[/versions/{version}][/ready|/infer]"
    )
