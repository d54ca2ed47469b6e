"""An Open Inference Protocol (V2) inference request, checked against the protocol: its keys,
`id`, `parameters` (those of extensions not implemented here refused), the `outputs` it asks
for, and each input tensor's keys, name, datatype, shape and `data` array. What the tensors
mean for the model (which rows) is `app.protocols.v2.inputs`'s to read."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.errors import InvalidInput, UnsupportedMediaType, summarize
from app.formats.payload import json_type, safe_name
from app.protocols.v2.datatypes import FAMILY

BINARY_UNSUPPORTED = (
    "binary tensor data is not supported: send the tensors as JSON 'data' "
    "(tritonclient: binary_data=False)"
)
_REQUEST_KEYS = frozenset({"id", "parameters", "inputs", "outputs", "model_name", "model_version"})
"""The protocol's keys, and KServe's SDK's model_name / model_version (ignored: the path names
the model)."""
_INPUT_KEYS = frozenset({"name", "shape", "datatype", "parameters", "data"})
_OUTPUT_KEYS = frozenset({"name", "parameters"})
# Parameters of protocol extensions this service does not implement: refused, not ignored.
_UNSUPPORTED = {
    "binary_data_size": BINARY_UNSUPPORTED,
    "shared_memory_region": "the shared-memory extension is not supported",
    "classification": "the classification extension is not supported",
}


def invalid(loc: list[Any], msg: str) -> InvalidInput:
    """InvalidInput with one problem, at `loc`."""
    details = [{"loc": loc, "msg": msg}]
    return InvalidInput(summarize(details), details)


def _keys(value: Any, allowed: frozenset[str], loc: list[Any], what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise invalid(loc, f"expected {what} (an object), got {json_type(value)}")
    unknown = value.keys() - allowed
    if unknown:
        raise invalid(loc, f"unknown key(s): {', '.join(sorted(map(safe_name, unknown)))}")
    return value


def _parameters(value: Any, loc: list[Any]) -> None:
    """Parameters are name/value pairs (values strings, numbers or booleans); those of the
    extensions not implemented here are refused, any other is accepted and has no effect."""
    if value is None:
        return
    if not isinstance(value, dict):
        raise invalid(loc, f"expected an object, got {json_type(value)}")
    for key, item in value.items():
        if item is None or isinstance(item, list | dict):
            wrong = f"expected a string, number or boolean, got {json_type(item)}"
            raise invalid([*loc, safe_name(key)], wrong)
        unsupported = _UNSUPPORTED.get(key)
        if unsupported == BINARY_UNSUPPORTED:
            raise UnsupportedMediaType(unsupported, [{"loc": [*loc, key], "msg": unsupported}])
        if unsupported is not None:
            raise invalid([*loc, key], unsupported)


@dataclass(slots=True)
class Tensor:
    """An input tensor as sent, its keys checked (`index`: its place in `inputs`)."""

    index: int
    name: str
    datatype: str
    shape: list[int]
    data: list[Any]


@dataclass(frozen=True, slots=True)
class Request:
    id: str | None
    requested: tuple[str, ...] | None
    """The outputs asked for, in the model's order; None: all of them."""
    tensors: list[Tensor]


def read_request(payload: Any, outputs: tuple[str, ...]) -> Request:
    """The request in `payload` for a model with `outputs`, or InvalidInput saying what is
    wrong (UnsupportedMediaType for binary data)."""
    request = payload
    if type(request) is not dict or not request.keys() <= _REQUEST_KEYS:
        _keys(request, _REQUEST_KEYS, [], "an inference request")  # raises, saying why
    ident = request.get("id")
    if ident is not None:
        if not isinstance(ident, str):
            raise invalid(["id"], f"expected a string, got {json_type(ident)}")
        try:
            ident.encode()
        except UnicodeEncodeError:
            raise invalid(["id"], "not valid Unicode (a lone surrogate)") from None
    for key in ("model_name", "model_version"):
        value = request.get(key)
        if value is not None and not isinstance(value, str):
            raise invalid([key], f"expected a string, got {json_type(value)}")
    parameters, wanted = request.get("parameters"), request.get("outputs")
    if parameters is not None:
        _parameters(parameters, ["parameters"])
    requested = None if wanted is None else _requested(wanted, outputs)
    inputs = request.get("inputs")
    if inputs is None:
        raise invalid(["inputs"], "field required")
    if not isinstance(inputs, list):
        raise invalid(["inputs"], f"expected an array of input tensors, got {json_type(inputs)}")
    if not inputs:
        raise invalid(["inputs"], "empty: send at least one input tensor")
    return Request(ident, requested, [_tensor(value, i) for i, value in enumerate(inputs)])


def _requested(value: Any, outputs: tuple[str, ...]) -> tuple[str, ...] | None:
    if not isinstance(value, list):
        raise invalid(["outputs"], f"expected an array of outputs, got {json_type(value)}")
    names: set[str] = set()
    for i, item in enumerate(value):
        output = _keys(item, _OUTPUT_KEYS, ["outputs", i], "a requested output")
        _parameters(output.get("parameters"), ["outputs", i, "parameters"])
        name = output.get("name")
        if not isinstance(name, str):
            wrong = f"expected a string, got {json_type(name)}"
            raise invalid(["outputs", i, "name"], "field required" if name is None else wrong)
        if name not in outputs:
            known = ", ".join(outputs)
            raise invalid(["outputs", i, "name"], f"unknown output; this model's outputs: {known}")
        names.add(name)
    return tuple(n for n in outputs if n in names) or None


def _tensor(value: Any, index: int) -> Tensor:
    loc: list[Any] = ["inputs", index]
    if type(value) is not dict or not value.keys() <= _INPUT_KEYS:
        _keys(value, _INPUT_KEYS, loc, "an input tensor")  # raises, saying why
    parameters = value.get("parameters")
    if parameters is not None:
        _parameters(parameters, [*loc, "parameters"])
    name, datatype = value.get("name"), value.get("datatype")
    shape, data = value.get("shape"), value.get("data")
    if name is None or datatype is None or shape is None or data is None:
        missing = next(k for k in ("name", "datatype", "shape", "data") if value.get(k) is None)
        raise invalid([*loc, missing], "field required")
    if type(name) is not str:
        raise invalid([*loc, "name"], f"expected a string, got {json_type(name)}")
    if type(datatype) is not str or datatype not in FAMILY:
        raise invalid(
            [*loc, "datatype"], f"unsupported datatype; expected one of {', '.join(FAMILY)}"
        )
    if type(shape) is not list or not all(type(d) is int and d >= 0 for d in shape):
        raise invalid([*loc, "shape"], "expected an array of non-negative integers")
    if type(data) is not list:
        raise invalid([*loc, "data"], f"expected an array, got {json_type(data)}")
    return Tensor(index, name, datatype, shape, data)
