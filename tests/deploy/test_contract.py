"""What deploy/k8s asks of the app, the image and the stack is what they provide.

Read from the rendered objects of every stack (the base and the KServe overlay): each
environment variable is a setting of the app (or one MLflow or boto3 reads), the settings pass
the app's validation and equal docker-compose.yaml's, the container runs the image Dockerfile.api
builds with its command and user, it listens on the port the manifests declare, the probe paths
answer as probes on the real app, and selectors, ports and budgets fit together.
"""

from __future__ import annotations

import copy
import inspect
import json
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from fastapi.testclient import TestClient

from app.__main__ import build_parser as app_parser
from app.api.application import create_app
from app.model.predictor import LoadError
from app.server import supervisor as app_server
from app.settings import Settings
from tests.deploy import manifests
from tests.deploy.manifests import Object, Workload
from tests.env_names import AWS_VARIABLES, MLFLOW_VARIABLES
from tests.stack import compose

pytestmark = pytest.mark.kubectl

STACKS = manifests.stacks()
SETTINGS = {field.upper() for field in Settings.model_fields}
# Read by KServe's controller, not by the app: the protocol a custom predictor speaks.
KSERVE_VARIABLES = {"PROTOCOL"}
DEFAULT_PORTS = {"http": 80, "https": 443}
OPERATIONS = manifests.ROOT / "docs" / "operations.md"


@pytest.fixture(scope="module", params=STACKS, ids=manifests.stack_id)
def objects(request: pytest.FixtureRequest, rendered: dict[Path, list[Object]]) -> list[Object]:
    return rendered[request.param]


@pytest.fixture(scope="module")
def workload(objects: list[Object]) -> Workload:
    return manifests.the_workload(objects)


@pytest.fixture(scope="module")
def settings_env(objects: list[Object], workload: Workload) -> dict[str, str]:
    """The environment the container gets from its ConfigMap(s) and literal values."""
    configs = {
        c["metadata"]["name"]: c["data"] for c in manifests.of_kind(objects, "v1", "ConfigMap")
    }
    env: dict[str, str] = {}
    for source in workload.container.get("envFrom", []):
        ref = source["configMapRef"]["name"]
        assert ref in configs, f"envFrom names ConfigMap {ref}, which the stack does not render"
        env.update(configs[ref])
    env.update({v["name"]: v["value"] for v in workload.container.get("env", []) if "value" in v})
    return env


def secret_refs(workload: Workload) -> dict[str, dict[str, Any]]:
    """{variable: secretKeyRef} of the container's variables that come from Secrets."""
    return {
        var["name"]: var["valueFrom"]["secretKeyRef"]
        for var in workload.container.get("env", [])
        if "secretKeyRef" in var.get("valueFrom", {})
    }


def container_port(workload: Workload) -> dict[str, Any]:
    (port,) = workload.container["ports"]
    return port


def refers_to_port(ref: int | str, port: dict[str, Any]) -> bool:
    return ref == port["containerPort"] or ref == port.get("name")


def probes(workload: Workload) -> dict[str, dict[str, Any]]:
    found = {
        name: workload.container[f"{name}Probe"]["httpGet"]
        for name in ("startup", "liveness", "readiness")
        if f"{name}Probe" in workload.container
    }
    assert set(found) == {"startup", "liveness", "readiness"}, "every probe, over HTTP"
    return found


def dockerfile_api_stage() -> dict[str, str]:
    """The `api` stage of Dockerfile.api: {instruction: argument} (the last of each)."""
    text = re.sub(r"\\\n", " ", (manifests.ROOT / "Dockerfile.api").read_text())
    stages: dict[str, dict[str, str]] = {}
    current: dict[str, str] = {}
    for line in text.splitlines():
        op, _, arg = line.strip().partition(" ")
        if op.upper() == "FROM":
            current = stages.setdefault(arg.split()[-1], {})
        elif op and not op.startswith("#"):
            current[op.upper()] = arg.strip()
    return stages["api"]


def app_settings(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    for variable in SETTINGS:
        monkeypatch.delenv(variable, raising=False)
    for variable, value in env.items():
        monkeypatch.setenv(variable, value)
    return Settings(_env_file=None)


def with_secrets(env: dict[str, str], workload: Workload) -> dict[str, str]:
    """`env` plus a stand-in value for each Secret the pod cannot start without."""
    stand_ins = {"API_KEY": "a-key-of-at-least-16-chars"}
    required = [var for var, ref in secret_refs(workload).items() if not ref.get("optional")]
    return {**env, **{var: stand_ins.get(var, "stand-in") for var in required}}


# -- environment and settings ----------------------------------------------------------------------


def test_every_variable_is_a_setting_or_one_mlflow_boto3_or_kserve_reads(
    workload: Workload, settings_env: dict[str, str]
) -> None:
    names = set(settings_env) | set(secret_refs(workload))
    allowed = SETTINGS | MLFLOW_VARIABLES | AWS_VARIABLES
    if manifests.kind(workload.owner) == manifests.INFERENCE_SERVICE:
        allowed |= KSERVE_VARIABLES
    assert names - allowed == set(), "not a setting of app/settings.py, nor MLflow's or boto3's"
    # Nothing else reaches the environment: no <SERVICE>_PORT variables from service links.
    assert workload.pod["enableServiceLinks"] is False


def test_settings_pass_the_apps_validation(
    workload: Workload, settings_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = app_settings(with_secrets(settings_env, workload), monkeypatch)
    argv = workload.container["command"] + workload.container["args"]
    assert argv[:3] == ["python", "-m", "app"], argv
    args = app_parser().parse_args(argv[3:])
    Settings(**{**settings.model_dump(), **{k: v for k, v in vars(args).items() if v}})
    assert settings.resolved_model_uri == settings_env["MODEL_URI"]
    assert settings.workers == 1, "one process a pod: replicas scale, not workers"


def test_settings_are_composes_and_compose_variables_all_have_a_source(
    workload: Workload, settings_env: dict[str, str]
) -> None:
    api = compose.environment(compose.load()["services"]["api"])
    shared = set(api) & set(settings_env)
    assert {k: settings_env[k] for k in shared} == {k: api[k] for k in shared}
    # What compose sets, Kubernetes sets too: literally, or from a Secret.
    assert set(api) - set(settings_env) - set(secret_refs(workload)) == set()


def test_secrets_are_referenced_by_name_and_the_manual_creates_them(workload: Workload) -> None:
    commands = readme_secret_commands()
    refs = secret_refs(workload)
    assert {"API_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= set(refs)
    readme = OPERATIONS.read_text()
    for variable, ref in refs.items():
        assert ref["key"] == variable, "a Secret's key is the variable's name"
        if ref.get("optional"):
            assert f"{variable}=" in readme, f"docs/operations.md never says how to set {variable}"
        else:
            assert variable in commands.get(ref["name"], set()), (
                f"docs/operations.md has no `kubectl create secret generic {ref['name']}` "
                f"with --from-literal={variable}=..."
            )


def readme_secret_commands() -> dict[str, set[str]]:
    """{secret name: keys} of the manual's `kubectl create secret generic` commands."""
    text = re.sub(r"\\\n\s*", " ", OPERATIONS.read_text())
    found: dict[str, set[str]] = {}
    for match in re.finditer(r"kubectl (?:-n \S+ )?create secret generic (\S+)([^\n]*)", text):
        found.setdefault(match[1], set()).update(re.findall(r"--from-literal=(\w+)=", match[2]))
    return found


def test_model_cache_and_tmp_are_the_only_writable_paths(
    workload: Workload, settings_env: dict[str, str]
) -> None:
    volumes = {v["name"]: v for v in workload.pod["volumes"]}
    mounts = {m["mountPath"]: volumes[m["name"]] for m in workload.container["volumeMounts"]}
    # The cache's parent: an emptyDir is writable by all (mode 0777), which the app refuses
    # for MODEL_CACHE_DIR itself; it makes that folder inside, writable by its user only.
    cache = Path(settings_env["MODEL_CACHE_DIR"])
    assert set(mounts) == {"/tmp", str(cache.parent)}
    assert all(
        "emptyDir" in volume and volume["emptyDir"]["sizeLimit"] for volume in mounts.values()
    )
    assert workload.container["securityContext"]["readOnlyRootFilesystem"] is True


# -- image, user, command, port --------------------------------------------------------------------


def test_runs_the_image_dockerfile_api_builds_as_its_user(workload: Workload) -> None:
    api = compose.raw()["services"]["api"]
    assert api["build"]["dockerfile"] == "Dockerfile.api" and api["build"]["target"] == "api"
    repository = api["image"].rpartition(":")[0]
    settings = manifests.DEPLOY / "settings" / "kustomization.yaml"
    (image,) = yaml.safe_load(settings.read_text())["images"]
    # The manifests name compose's image, and kustomize rewrote that name to the registry's.
    assert image["name"] == repository
    assert workload.container["image"] == f"{image['newName']}:{image['newTag']}"
    assert image["newName"].endswith("/" + repository)

    stage = dockerfile_api_stage()
    cmd = json.loads(stage["CMD"])
    argv = workload.container["command"] + workload.container["args"]
    port = str(container_port(workload)["containerPort"])
    expected = list(cmd)
    expected[expected.index("--port") + 1] = port
    assert argv == expected, "the image's CMD, spelt out (the port aside)"
    user = int(stage["USER"].split(":")[0])
    pod = workload.pod["securityContext"]
    assert (pod["runAsUser"], pod["runAsNonRoot"]) == (user, True)


def test_pod_is_locked_down(workload: Workload) -> None:
    context = workload.container["securityContext"]
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"]["drop"] == ["ALL"]
    assert workload.pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert workload.pod["automountServiceAccountToken"] is False


def test_listens_on_the_declared_port_and_probes_use_it(workload: Workload) -> None:
    argv = workload.container["command"] + workload.container["args"]
    args = app_parser().parse_args(argv[3:])
    port = container_port(workload)
    assert (args.host, args.port) == ("0.0.0.0", port["containerPort"])
    for probe in probes(workload).values():
        assert refers_to_port(probe["port"], port), probe


def test_requests_and_limits_for_cpu_and_memory(workload: Workload) -> None:
    resources = workload.container["resources"]
    for resource in ("cpu", "memory"):
        request, limit = resources["requests"][resource], resources["limits"][resource]
        assert quantity(request) <= quantity(limit), f"{resource}: {request} > {limit}"


def quantity(text: str) -> float:
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "": 1}
    number, unit = re.fullmatch(r"([\d.]+)([A-Za-z]*)", str(text)).groups()  # type: ignore[union-attr]
    return float(number) * units[unit]


# -- the probes on the real app --------------------------------------------------------------------


class LoadingForever:
    """A model whose load() does not return until the test ends: the app stays "loading"."""

    def __init__(self, release: threading.Event) -> None:
        self.release = release

    def load(self) -> None:
        self.release.wait(60)
        raise LoadError("the test is over", permanent=True)


@pytest.fixture()
def loading_app(
    workload: Workload, settings_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[TestClient]:
    """The app with the manifest's settings, its model still loading."""
    settings = app_settings(with_secrets(settings_env, workload), monkeypatch)
    release = threading.Event()
    app = create_app(settings, predictor_factory=lambda: LoadingForever(release))  # type: ignore[arg-type,return-value]
    with TestClient(app, raise_server_exceptions=False) as client:
        try:
            yield client
        finally:
            # Before the client's exit, which waits for the load's thread: released after it,
            # each of these tests' teardowns took ~121 s (4 min of CI).
            release.set()


def test_probe_paths_answer_as_probes_while_the_model_loads(
    workload: Workload, loading_app: TestClient
) -> None:
    found = probes(workload)
    # Alive (no restart) while loading; not ready (no traffic) until the model is in.
    assert loading_app.get(found["startup"]["path"]).status_code == 200
    assert loading_app.get(found["liveness"]["path"]).status_code == 200
    assert loading_app.get(found["readiness"]["path"]).status_code == 503
    annotations = (
        workload.owner["spec"].get("template", {}).get("metadata", {}).get("annotations", {})
    )
    if "prometheus.io/scrape" in annotations:
        assert int(annotations["prometheus.io/port"]) == container_port(workload)["containerPort"]
        # The pod's API_KEY guards /metrics: the scrape job sends it from the Secret (manual).
        path = annotations["prometheus.io/path"]
        assert loading_app.get(path).status_code == 401
        auth = {"Authorization": f"Bearer {with_secrets({}, workload)['API_KEY']}"}
        assert loading_app.get(path, headers=auth).status_code == 200
        assert "credentials_file: /etc/prometheus/secrets/model-serving/API_KEY" in (
            OPERATIONS.read_text()
        )


def test_endpoints_drain_before_sigterm_and_shutdown_fits_the_grace_period(
    workload: Workload, settings_env: dict[str, str]
) -> None:
    pause = workload.container["lifecycle"]["preStop"]["sleep"]["seconds"]
    source = inspect.getsource(app_server._serve_one)
    assert "timeout_graceful_shutdown=SHUTDOWN_GRACE" in source, "uvicorn's grace period moved"
    assert pause >= 5, "endpoint removal takes seconds to reach every proxy"
    # After SIGTERM: the drain, requests in flight, then the prediction log's last write.
    given = {k.lower(): v for k, v in settings_env.items() if k.lower() in Settings.model_fields}
    settings = Settings(**{"model_uri": "models:/m@a", **given})
    stop = settings.drain_seconds + app_server.SHUTDOWN_GRACE
    stop += settings.prediction_log_flush_seconds
    assert workload.pod["terminationGracePeriodSeconds"] > pause + stop


# -- scaling, disruption, traffic ------------------------------------------------------------------


def test_policies_select_the_pods_and_allow_what_the_settings_reach(
    objects: list[Object], workload: Workload, settings_env: dict[str, str]
) -> None:
    (budget,) = manifests.of_kind(objects, "policy/v1", "PodDisruptionBudget")
    assert manifests.selects(budget["spec"]["selector"], workload.pod_labels)
    assert budget["spec"]["maxUnavailable"] == 1

    (policy,) = manifests.of_kind(objects, "networking.k8s.io/v1", "NetworkPolicy")
    spec = policy["spec"]
    assert manifests.selects(spec["podSelector"], workload.pod_labels)
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    (ingress,) = spec["ingress"]
    assert [p["port"] for p in ingress["ports"]] in (
        [container_port(workload)["name"]],
        [container_port(workload)["containerPort"]],
    )
    egress = {
        (p["port"], p.get("protocol", "TCP")) for rule in spec["egress"] for p in rule["ports"]
    }
    assert (53, "UDP") in egress, "no DNS"
    for variable in ("MLFLOW_TRACKING_URI", "MLFLOW_S3_ENDPOINT_URL"):
        url = urlsplit(settings_env[variable])
        assert (url.port or DEFAULT_PORTS[url.scheme], "TCP") in egress, variable
    assert (5432, "TCP") in egress, "PREDICTION_LOG_URL's PostgreSQL"


def test_base_rolls_out_without_losing_ready_pods_and_scales_on_cpu(base: list[Object]) -> None:
    workload = manifests.the_workload(base)
    deployment = workload.owner["spec"]
    assert deployment["replicas"] == 2
    assert deployment["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}
    assert manifests.selects(deployment["selector"], workload.pod_labels)

    (hpa,) = manifests.of_kind(base, "autoscaling/v2", "HorizontalPodAutoscaler")
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["apiVersion"], target["kind"], target["name"]) == (
        "apps/v1",
        "Deployment",
        workload.owner["metadata"]["name"],
    )
    assert hpa["spec"]["minReplicas"] == deployment["replicas"] < hpa["spec"]["maxReplicas"]
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert metric["resource"]["target"]["type"] == "Utilization"
    assert "cpu" in workload.container["resources"]["requests"], "utilization of what request?"

    (service,) = manifests.of_kind(base, "v1", "Service")
    assert manifests.selects({"matchLabels": service["spec"]["selector"]}, workload.pod_labels)
    (port,) = service["spec"]["ports"]
    assert refers_to_port(port["targetPort"], container_port(workload))


# -- KServe ----------------------------------------------------------------------------------------


def test_kserve_runs_the_same_pod_as_a_v2_custom_predictor(
    base: list[Object], kserve: list[Object]
) -> None:
    plain, custom = manifests.the_workload(base), manifests.the_workload(kserve)
    service = custom.owner
    annotations = service["metadata"]["annotations"]
    assert annotations["serving.kserve.io/deploymentMode"] == "Standard"
    assert annotations["serving.kserve.io/autoscalerClass"] == "hpa"
    container = custom.container
    assert container["name"] == "kserve-container"
    assert {"name": "PROTOCOL", "value": "v2"} in container["env"]
    assert container_port(custom)["containerPort"] == 8080, "KServe's default port"

    # Scales as the base does: same replicas, same CPU target.
    (hpa,) = manifests.of_kind(base, "autoscaling/v2", "HorizontalPodAutoscaler")
    predictor = custom.pod
    assert predictor["scaleMetric"] == "cpu"
    assert (
        predictor["scaleTarget"]
        == hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"]
    )
    assert (predictor["minReplicas"], predictor["maxReplicas"]) == (
        hpa["spec"]["minReplicas"],
        hpa["spec"]["maxReplicas"],
    )
    assert (
        predictor["deploymentStrategy"]["rollingUpdate"]
        == (plain.owner["spec"]["strategy"]["rollingUpdate"])
    )

    # The same pod otherwise: only the container's name, port and protocol differ.
    for field in (
        "securityContext",
        "volumes",
        "terminationGracePeriodSeconds",
        "automountServiceAccountToken",
        "enableServiceLinks",
    ):
        assert predictor[field] == plain.pod[field], field
    assert same_container(container) == same_container(plain.container)


def same_container(container: dict[str, Any]) -> dict[str, Any]:
    """A container without what legitimately differs between the two stacks: its name, its
    port (declared, listened on, probed) and the protocol variable KServe reads."""
    normal = copy.deepcopy(container)
    for key in ("name", "ports"):
        normal.pop(key)
    args = normal["args"]
    args[args.index("--port") + 1] = "PORT"
    normal["env"] = [v for v in normal["env"] if v["name"] not in KSERVE_VARIABLES]
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        normal[probe]["httpGet"].pop("port")
    return normal
