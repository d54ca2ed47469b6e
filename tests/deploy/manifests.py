"""deploy/k8s as data: every kustomization rendered by a real `kubectl kustomize`, the objects
validated against Kubernetes' schemas (kubernetes-validate) and KServe's, and the pod each
stack runs (a Deployment's template, an InferenceService's predictor) read the same way."""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml
from referencing import Registry, Resource

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy" / "k8s"
KSERVE_SCHEMA = Path(__file__).parent / "schemas" / "kserve-inferenceservice-v1beta1.json"
# A current Kubernetes release (kubernetes-validate ships its schemas).
KUBERNETES_VERSION = "1.37"
INFERENCE_SERVICE = ("serving.kserve.io/v1beta1", "InferenceService")

Object = dict[str, Any]


def stacks() -> list[Path]:
    """Every kustomization under deploy/k8s that `kubectl apply -k` takes: the base and its
    overlays (Components, which only other kustomizations include, are not among them)."""
    found = []
    for path in sorted(DEPLOY.rglob("kustomization.yaml")):
        if yaml.safe_load(path.read_text()).get("kind", "Kustomization") == "Kustomization":
            found.append(path.parent)
    return sorted(found, key=lambda folder: (len(folder.parts), folder))


def stack_id(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def kubectl_path() -> str | None:
    """A kubectl on PATH that renders kustomizations itself (not a cloud SDK's dispatcher)."""
    path = shutil.which("kubectl")
    if path is None:
        return None
    version = subprocess.run(
        [path, "version", "--client"], capture_output=True, text=True, timeout=60
    )
    if version.returncode != 0 or "dispatcher" in version.stdout:
        return None
    return path


def render(kubectl: str, path: Path) -> list[Object]:
    """`kubectl kustomize PATH`, as objects; a failed render fails with kubectl's message."""
    result = subprocess.run(
        [kubectl, "kustomize", str(path)], capture_output=True, text=True, timeout=120
    )
    if result.returncode != 0:
        raise AssertionError(f"kubectl kustomize {stack_id(path)}: {result.stderr.strip()}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def kind(obj: Object) -> tuple[str, str]:
    return obj["apiVersion"], obj["kind"]


def name(obj: Object) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


@functools.cache
def _kserve_validator() -> jsonschema.protocols.Validator:
    folder = resources.files("kubernetes_validate") / "kubernetes-json-schema"
    definitions = json.loads(
        (folder / f"v{KUBERNETES_VERSION}.0-local-strict" / "_definitions.json").read_text()
    )
    schema = json.loads(KSERVE_SCHEMA.read_text())
    registry: Registry = Registry().with_resources(
        [
            (definitions["$id"], Resource.from_contents(definitions)),
            (schema["$id"], Resource.from_contents(schema)),
        ]
    )
    return jsonschema.Draft202012Validator(schema, registry=registry)


def schema_errors(obj: Object) -> list[str]:
    """What the schema of the object's kind finds wrong with it (strict: unknown fields too)."""
    if kind(obj) == INFERENCE_SERVICE:
        return [
            f"{'.'.join(map(str, err.absolute_path))}: {err.message}"
            for err in _kserve_validator().iter_errors(obj)
        ]
    try:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as err:
        return [f"{'.'.join(map(str, err.path))}: {err.message}"]
    return []


@dataclass(frozen=True)
class Workload:
    """The pod a stack runs: where its spec sits in the rendered objects, and its container."""

    owner: Object
    pod: Object  # a PodSpec (a Deployment's template spec, an InferenceService predictor)
    pod_labels: dict[str, str]  # the labels the pods carry (selectors must match them)

    @property
    def container(self) -> Object:
        (container,) = self.pod["containers"]
        return container


def workloads(objects: list[Object]) -> Iterator[Workload]:
    for obj in objects:
        if kind(obj) == ("apps/v1", "Deployment"):
            template = obj["spec"]["template"]
            yield Workload(obj, template["spec"], template["metadata"]["labels"])
        elif kind(obj) == INFERENCE_SERVICE:
            # KServe labels the predictor's pods with the InferenceService's name.
            labels = {"serving.kserve.io/inferenceservice": obj["metadata"]["name"]}
            yield Workload(obj, obj["spec"]["predictor"], labels)


def the_workload(objects: list[Object]) -> Workload:
    (workload,) = workloads(objects)
    return workload


def of_kind(objects: list[Object], api_version: str, kind_: str) -> list[Object]:
    return [obj for obj in objects if kind(obj) == (api_version, kind_)]


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Whether a label selector (matchLabels only, as these manifests write them) matches."""
    assert set(selector) <= {"matchLabels"}, f"unsupported selector {selector}"
    wanted = selector.get("matchLabels") or {}
    return bool(wanted) and all(labels.get(k) == v for k, v in wanted.items())
