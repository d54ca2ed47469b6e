"""A served model as the Open Inference Protocol (V2) sees it: its inputs and outputs
described as tensors (the model metadata document), and its predictions written as the
response's output tensors."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import chain
from typing import Any

import orjson

from app.errors import NotFound, PredictionFailed
from app.model.schema import InputSchema
from app.protocols.v2.datatypes import COLUMN_DATATYPE, numpy_datatype, values_datatype
from app.protocols.v2.inputs import ModelInputs
from app.serving.served import ServedModel

PREDICT = "predict"
"""The name of the output tensor holding the predictions."""


@dataclass(frozen=True, slots=True)
class OutputSpec:
    name: str
    datatype: str | None  # None: not in the signature; the values decide
    shape: list[int]


def output_specs(outputs: list[dict[str, Any]] | None) -> tuple[OutputSpec, ...]:
    """The output tensors, from the signature's outputs (`Schema.to_dict()`): one output is
    `predict`; several columns are one tensor each, named as the column."""
    specs = []
    for i, spec in enumerate(outputs or []):
        if spec.get("type") == "tensor":
            tensor = spec.get("tensor-spec") or {}
            datatype = numpy_datatype(tensor.get("dtype"))
            shape = [int(d) for d in tensor.get("shape") or [-1]]
        else:
            datatype, shape = COLUMN_DATATYPE.get(str(spec.get("type"))), [-1]
        name = PREDICT if len(outputs or []) == 1 else str(spec.get("name") or f"output_{i}")
        specs.append(OutputSpec(name, datatype, shape))
    return tuple(specs)


def input_metadata(schema: InputSchema) -> list[dict[str, Any]]:
    """One tensor per input: a value per row."""
    return [
        {"name": c.name, "datatype": COLUMN_DATATYPE[c.kind], "shape": [-1]} for c in schema.columns
    ]


def encode_outputs(
    predictions: list[Any], specs: tuple[OutputSpec, ...], requested: tuple[str, ...] | None
) -> list[dict[str, Any]]:
    """The response's output tensors: one value per row (shape [n]), a row of k values per
    row ([n, k], data flat), or one tensor per column when the model answers records."""
    n = len(predictions)
    first = predictions[0] if predictions else None
    if isinstance(first, dict):
        tensors = [(str(k), [p[k] for p in predictions], [n]) for k in first]
    elif isinstance(first, list):
        width = len(first)
        if any(len(p) != width for p in predictions):
            raise PredictionFailed("the model's output rows differ in length: not a tensor")
        tensors = [(PREDICT, list(chain.from_iterable(predictions)), [n, width])]
    else:
        tensors = [(PREDICT, predictions, [n])]
    declared = {s.name: s.datatype for s in specs}
    return [
        {
            "name": name,
            "datatype": declared.get(name) or values_datatype(data),
            "shape": shape,
            "data": data,
        }
        for name, data, shape in tensors
        if requested is None or name in requested
    ]


@dataclass(frozen=True, slots=True)
class ModelTensors:
    """A served model as the protocol describes it (computed once per model)."""

    name: str
    version: str | None
    inputs: ModelInputs
    outputs: tuple[OutputSpec, ...]
    output_names: tuple[str, ...]
    metadata_json: bytes
    ready_json: bytes
    head: bytes
    """The inference response's JSON up to the id or the outputs."""
    single: bytes | None
    """When the model has one output with a datatype: the response's JSON from the outputs
    to the tensor's shape, which the answers fill in."""

    def check(self, name: str | None, version: str | None) -> None:
        """404 unless the path names this model (and its version, if it names one)."""
        if name != self.name:
            raise NotFound(f"unknown model: this service serves model '{self.name}'")
        if version is not None and version != self.version:
            served = (
                f"version {self.version}"
                if self.version
                else "a model without a registered version (from a run)"
            )
            raise NotFound(f"unknown version of model '{self.name}': this service serves {served}")

    def answer(
        self, ident: str | None, predictions: list[Any], requested: tuple[str, ...] | None
    ) -> bytes:
        """The inference response's JSON."""
        first = predictions[0] if predictions else None
        if self.single is not None and first is not None and not isinstance(first, (dict, list)):
            # The one output, one value per row: the JSON around the values is the model's.
            head = self.head if ident is None else b'%s,"id":%s' % (self.head, orjson.dumps(ident))
            data = orjson.dumps(predictions, option=orjson.OPT_SERIALIZE_NUMPY)
            return b'%s%s%d],"data":%s}]}' % (head, self.single, len(predictions), data)
        doc: dict[str, Any] = {"model_name": self.name}
        if self.version:
            doc["model_version"] = self.version
        if ident is not None:
            doc["id"] = ident
        doc["outputs"] = encode_outputs(predictions, self.outputs, requested)
        return orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)

    @classmethod
    def of(cls, served: ServedModel) -> ModelTensors:
        predictor = served.predictor
        identity = predictor.identity
        info = predictor.describe()
        signature = info.get("signature") or {}
        outputs = output_specs(signature.get("outputs"))
        doc: dict[str, Any] = {"name": identity.name}
        if identity.version:
            doc["versions"] = [identity.version]
        doc["platform"] = f"mlflow_{info.get('flavor') or 'python_function'}"
        doc["inputs"] = input_metadata(predictor.schema)
        doc["outputs"] = [
            {"name": s.name, "datatype": s.datatype, "shape": s.shape}
            for s in outputs
            if s.datatype  # else the values decide, at each answer
        ]
        head = {"model_name": identity.name}
        if identity.version:
            head["model_version"] = identity.version
        single = None
        if len(outputs) == 1 and outputs[0].datatype:
            named = orjson.dumps({"name": outputs[0].name, "datatype": outputs[0].datatype})
            single = b',"outputs":[%s,"shape":[' % named[:-1]
        return cls(
            identity.name,
            identity.version,
            ModelInputs.of(predictor.schema),
            outputs,
            tuple(s.name for s in outputs) or (PREDICT,),
            orjson.dumps(doc),
            orjson.dumps({"name": identity.name, "ready": True}),
            orjson.dumps(head)[:-1],
            single,
        )
