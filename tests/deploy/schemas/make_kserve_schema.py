"""Write the JSON schema of KServe's `InferenceService` (serving.kserve.io/v1beta1) that the
deploy tests validate `deploy/k8s/kserve/` against, from the models of the `kserve` package.

    pip download --no-deps kserve==0.21.0 -d /tmp/kserve
    python tests/deploy/schemas/make_kserve_schema.py /tmp/kserve/kserve-0.21.0-py3-none-any.whl \
        > tests/deploy/schemas/kserve-inferenceservice-v1beta1.json

Why from the package: KServe publishes its CRD only in its repository and release manifests
(about 1 MB, the pod spec inlined a dozen times); the `kserve` package on PyPI carries the same
API as generated models (`kserve/models/v1beta1_*.py`, made by openapi-generator from the Go
types the CRD is generated from): every field's JSON name and type, and which are required.
This script reads those models from the wheel without importing them and writes one schema:

- every KServe type reachable from `V1beta1InferenceService.spec` becomes a closed object
  (`additionalProperties: false`: a misspelt field fails, as `kubectl apply --validate=strict`
  would fail it), with the package's field names, types and required fields;
- Kubernetes types (`V1Container`, `V1Volume`, `K8sIoApiAppsV1DeploymentStrategy`, ...) are
  `$ref`s into kubernetes-validate's strict definitions (https://kubernetes.io/api/_definitions.json),
  which the tests load for the same Kubernetes version as every other object;
- `status` is left open: the controller writes it, a manifest never carries one;
- the package has no enum markers, so the one that matters for an HPA-scaled predictor is added
  from the Go source (`+kubebuilder:validation:Enum=cpu;memory;concurrency;rps` on ScaleMetric).
"""

from __future__ import annotations

import ast
import json
import re
import sys
import zipfile
from pathlib import PurePosixPath
from typing import Any

K8S_DEFINITIONS = "https://kubernetes.io/api/_definitions.json#/$defs/"
ROOT = "V1beta1InferenceService"
# Client type names of Kubernetes types that are not core/v1.
K8S_NAMES = {
    "V1ObjectMeta": "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
    "ResourceQuantity": "io.k8s.apimachinery.pkg.api.resource.Quantity",
    "V1beta1MetricQuantity": "io.k8s.apimachinery.pkg.api.resource.Quantity",
    "K8sIoApiAppsV1DeploymentStrategy": "io.k8s.api.apps.v1.DeploymentStrategy",
    "K8sIoApiAutoscalingV2HorizontalPodAutoscalerBehavior": (
        "io.k8s.api.autoscaling.v2.HorizontalPodAutoscalerBehavior"
    ),
}
SCALE_METRIC = {"type": "string", "enum": ["cpu", "memory", "concurrency", "rps"]}
MARKERS = {
    (kind, "scaleMetric"): SCALE_METRIC
    for kind in ("V1beta1PredictorSpec", "V1beta1TransformerSpec", "V1beta1ExplainerSpec")
}
SCALARS = {
    "str": {"type": "string"},
    "int": {"type": "integer"},
    "float": {"type": "number"},
    "bool": {"type": "boolean"},
    "object": {},
    "datetime": {"type": "string", "format": "date-time"},
}


class Model:
    def __init__(self, types: dict[str, str], names: dict[str, str], required: set[str]):
        self.types, self.names, self.required = types, names, required


def read_models(wheel: str) -> tuple[str, dict[str, Model]]:
    """The package version and every generated model class: field types, JSON names, required."""
    models: dict[str, Model] = {}
    version = ""
    with zipfile.ZipFile(wheel) as archive:
        for name in archive.namelist():
            path = PurePosixPath(name)
            if path.parent.name.endswith(".dist-info") and path.name == "METADATA":
                found = re.search(r"^Version: (\S+)$", archive.read(name).decode(), re.M)
                version = found.group(1) if found else ""
            if path.parent != PurePosixPath("kserve/models") or path.suffix != ".py":
                continue
            source = archive.read(name).decode()
            for node in ast.parse(source).body:
                if isinstance(node, ast.ClassDef):
                    tables = {
                        stmt.targets[0].id: ast.literal_eval(stmt.value)
                        for stmt in node.body
                        if isinstance(stmt, ast.Assign)
                        and isinstance(stmt.targets[0], ast.Name)
                        and stmt.targets[0].id in ("openapi_types", "attribute_map")
                    }
                    if len(tables) == 2:
                        required = set(re.findall(r"`(\w+)`, must not be `None`", source))
                        models[node.name] = Model(
                            tables["openapi_types"], tables["attribute_map"], required
                        )
    return version, models


def k8s_definition(name: str) -> str:
    if name in K8S_NAMES:
        return K8S_NAMES[name]
    if re.fullmatch(r"V1[A-Z]\w*", name):
        return "io.k8s.api.core.v1." + name.removeprefix("V1")
    raise SystemExit(f"no Kubernetes definition known for {name}: add it to K8S_NAMES")


def type_schema(spec: str, models: dict[str, Model], wanted: list[str]) -> dict[str, Any]:
    if spec in SCALARS:
        return dict(SCALARS[spec])
    if spec.startswith("list[") and spec.endswith("]"):
        return {"type": "array", "items": type_schema(spec[5:-1], models, wanted)}
    if spec.startswith("dict(str, ") and spec.endswith(")"):
        return {"type": "object", "additionalProperties": type_schema(spec[10:-1], models, wanted)}
    if spec in models and spec not in K8S_NAMES:
        wanted.append(spec)
        return {"$ref": f"#/$defs/{spec}"}
    return {"$ref": K8S_DEFINITIONS + k8s_definition(spec)}


def build(version: str, models: dict[str, Model]) -> dict[str, Any]:
    defs: dict[str, Any] = {}
    wanted = [ROOT]
    while wanted:
        kind = wanted.pop()
        if kind in defs:
            continue
        model = models[kind]
        properties: dict[str, Any] = {}
        for attr, spec in sorted(model.types.items()):
            key = model.names[attr]
            if kind == ROOT and key == "status":
                properties[key] = {"type": "object"}
            else:
                properties[key] = MARKERS.get((kind, key)) or type_schema(spec, models, wanted)
        schema: dict[str, Any] = {
            "type": "object",
            "properties": properties,
            "additionalProperties": False,
        }
        required = sorted(model.names[attr] for attr in model.required if attr in model.names)
        if required:
            schema["required"] = required
        defs[kind] = schema
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "urn:model-serving:kserve:inferenceservice:v1beta1",
        "$comment": (
            f"InferenceService (serving.kserve.io/v1beta1) as the models of the kserve {version} "
            "package (PyPI) define it; written by tests/deploy/schemas/make_kserve_schema.py. "
            "Kubernetes types refer to kubernetes-validate's definitions."
        ),
        "x-kserve-version": version,
        "$ref": f"#/$defs/{ROOT}",
        "$defs": dict(sorted(defs.items())),
    }


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        sys.stderr.write(__doc__ or "")
        return 2
    version, models = read_models(argv[0])
    json.dump(build(version, models), sys.stdout, indent=1, sort_keys=False)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
