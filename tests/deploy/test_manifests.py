"""`kubectl kustomize` renders deploy/k8s and every overlay, and every object it renders is
valid for a current Kubernetes (kubernetes-validate, strict: unknown fields fail too) or, for
the InferenceService, for KServe's v1beta1 API. Nothing secret is ever rendered."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest

from tests.deploy import manifests
from tests.deploy.manifests import Object

pytestmark = pytest.mark.kubectl

STACKS = manifests.stacks()
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|ACCESS_KEY|API_KEY|CACHE_KEY", re.IGNORECASE)
URL_WITH_PASSWORD = re.compile(r"://[^/\s:@]+:[^/\s@]+@")


def test_the_stacks_are_the_base_and_the_kserve_overlay() -> None:
    assert STACKS == [manifests.DEPLOY, manifests.DEPLOY / "kserve"]


@pytest.mark.parametrize("path", STACKS, ids=manifests.stack_id)
def test_stack_renders_and_every_object_validates(
    rendered: dict[Path, list[Object]], path: Path
) -> None:
    objects = rendered[path]
    assert objects, f"{manifests.stack_id(path)} renders nothing"
    problems = {
        manifests.name(obj): errors for obj in objects if (errors := manifests.schema_errors(obj))
    }
    assert problems == {}


def test_base_renders_the_promised_objects(base: list[Object]) -> None:
    assert sorted(manifests.kind(obj) for obj in base) == sorted(
        [
            ("v1", "ConfigMap"),
            ("apps/v1", "Deployment"),
            ("v1", "Service"),
            ("autoscaling/v2", "HorizontalPodAutoscaler"),
            ("policy/v1", "PodDisruptionBudget"),
            ("networking.k8s.io/v1", "NetworkPolicy"),
        ]
    )


def test_kserve_overlay_renders_the_promised_objects(kserve: list[Object]) -> None:
    assert sorted(manifests.kind(obj) for obj in kserve) == sorted(
        [
            ("v1", "ConfigMap"),
            manifests.INFERENCE_SERVICE,
            ("policy/v1", "PodDisruptionBudget"),
            ("networking.k8s.io/v1", "NetworkPolicy"),
        ]
    )


@pytest.mark.parametrize("path", STACKS, ids=manifests.stack_id)
def test_nothing_secret_is_rendered(rendered: dict[Path, list[Object]], path: Path) -> None:
    objects = rendered[path]
    assert not [obj for obj in objects if obj["kind"] == "Secret"], "Secrets are never committed"
    for config in manifests.of_kind(objects, "v1", "ConfigMap"):
        for key, value in config["data"].items():
            assert not SECRET_NAME.search(key), f"{key} belongs in a Secret"
            assert not URL_WITH_PASSWORD.search(value), f"{key} carries a password"


# -- the validators catch what they are there to catch -------------------------------------------


def test_kubernetes_validation_rejects_a_misspelt_field_and_a_wrong_type(
    base: list[Object],
) -> None:
    (deployment,) = manifests.of_kind(base, "apps/v1", "Deployment")
    assert manifests.schema_errors(deployment) == []

    misspelt = copy.deepcopy(deployment)
    container = misspelt["spec"]["template"]["spec"]["containers"][0]
    container["livenesProbe"] = container.pop("livenessProbe")
    assert any("livenesProbe" in error for error in manifests.schema_errors(misspelt))

    wrong_type = copy.deepcopy(deployment)
    wrong_type["spec"]["replicas"] = "two"
    assert manifests.schema_errors(wrong_type)


def test_kserve_validation_rejects_bad_predictor_fields(kserve: list[Object]) -> None:
    (service,) = manifests.of_kind(kserve, *manifests.INFERENCE_SERVICE)
    assert manifests.schema_errors(service) == []

    misspelt = copy.deepcopy(service)
    misspelt["spec"]["predictor"]["minReplica"] = 2
    assert any("minReplica" in error for error in manifests.schema_errors(misspelt))

    metric = copy.deepcopy(service)
    metric["spec"]["predictor"]["scaleMetric"] = "gpu"
    assert any("gpu" in error for error in manifests.schema_errors(metric))

    # The predictor's containers are Kubernetes containers, checked with Kubernetes' schema.
    port = copy.deepcopy(service)
    port["spec"]["predictor"]["containers"][0]["ports"][0]["containerPort"] = "8080"
    assert any("containerPort" in error for error in manifests.schema_errors(port))

    no_predictor = copy.deepcopy(service)
    del no_predictor["spec"]["predictor"]
    assert any("predictor" in error for error in manifests.schema_errors(no_predictor))
