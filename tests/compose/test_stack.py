"""`docker compose up` on a real engine, then what the manual tells a user to do, step by step.
test_fleet.py then scales the same project to the fleet; the last step (down -v) runs after it.

One compose project (tests/compose/stack.py: a fresh copy, its own name, .env and host ports) goes
through the steps in order; each step is a test, so a report names the step that failed and the
later ones still run. The operations page's curl and roll-out commands run as printed, in the copy,
with only the host port swapped for the test's own."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import boto3
import httpx
import pytest

from tests.compose.stack import Stack, last_step, manual_blocks, wait_for
from tests.iris import IRIS_EXAMPLE  # class 2
from tests.stack import compose

pytestmark = pytest.mark.compose

SECTION = "The full stack (Docker Compose)"
EXPERIMENT = "new-exp"
UP_FROM_NOTHING_S = 1800  # image builds included (pip inside the builds)
UP_S = 600
CACHED_START_S = 30.0  # the bound on being ready again from the model cache


def readme_block(stack: Stack, *words: str) -> list[str]:
    """The operations page's block (in the compose section) whose commands mention all
    `words`, with the default host ports of .env.example replaced by the test stack's."""
    example = compose.read_env_file(stack.dir / ".env.example")
    blocks = [b for b in manual_blocks(SECTION) if all(any(w in c for c in b) for w in words)]
    assert len(blocks) == 1, f"docs/operations.md, {SECTION}: {len(blocks)} blocks mention {words}"
    commands = blocks[0]
    for name, port in stack.settings.items():
        if name.endswith("_HOST_PORT"):
            old, new = f"localhost:{example[name]}", f"127.0.0.1:{port}"
            commands = [command.replace(old, new) for command in commands]
    return commands


def api(stack: Stack) -> httpx.Client:
    return httpx.Client(base_url=stack.url("API_HOST_PORT"), timeout=30)


def admin_headers(stack: Stack) -> dict[str, str]:
    return {"Authorization": f"Bearer {stack.settings['API_KEY']}"}


def predict(stack: Stack) -> dict[str, Any]:
    with api(stack) as client:
        answer = client.post("/predict", json=IRIS_EXAMPLE)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    assert body["predictions"] == [2]
    return body


def mlflow_ui(stack: Stack, method: str, path: str, **kwargs: Any) -> Any:
    """What the MLflow UI's own calls (/ajax-api) answer a browser on the published port."""
    port = stack.settings["MLFLOW_HOST_PORT"]
    answer = httpx.request(
        method,
        f"http://127.0.0.1:{port}/ajax-api/2.0/mlflow/{path}",
        headers={"Host": f"localhost:{port}"},
        timeout=30,
        **kwargs,
    )
    assert answer.status_code == 200, f"{path}: {answer.status_code} {answer.text[:500]}"
    return answer.json()


def experiment_runs(stack: Stack) -> list[dict[str, Any]]:
    experiment = mlflow_ui(
        stack, "GET", "experiments/get-by-name", params={"experiment_name": EXPERIMENT}
    )["experiment"]
    found = mlflow_ui(
        stack, "POST", "runs/search", json={"experiment_ids": [experiment["experiment_id"]]}
    )
    return list(found.get("runs", []))


def readiness(stack: Stack) -> dict[str, Any] | None:
    """/readyz's body once it answers 200, else None."""
    with api(stack) as client:
        answer = client.get("/readyz", timeout=5)
    return answer.json() if answer.status_code == 200 else None


class Poller(threading.Thread):
    """A client posting to /predict over and over, recording every answer."""

    def __init__(self, stack: Stack) -> None:
        super().__init__(daemon=True)
        self.url = stack.url("API_HOST_PORT") + "/predict"
        self.answers: list[tuple[int, str]] = []  # (status, version or what went wrong)
        self.done = threading.Event()

    def run(self) -> None:
        with httpx.Client(timeout=30) as client:
            while not self.done.is_set():
                try:
                    answer = client.post(self.url, json=IRIS_EXAMPLE)
                    body = answer.json()
                    ok = answer.status_code == 200 and body["predictions"] == [2]
                    seen = body["model"]["version"] if ok else answer.text[:300]
                    self.answers.append((answer.status_code if ok else -answer.status_code, seen))
                except (httpx.HTTPError, ValueError, KeyError) as exc:
                    self.answers.append((0, repr(exc)))
                self.done.wait(0.02)

    def versions(self) -> set[str]:
        return {seen for status, seen in self.answers if status == 200}


# -- 1. up ---------------------------------------------------------------------------------------


def test_1_up_starts_every_service_in_the_documented_order(stack: Stack) -> None:
    started = time.monotonic()
    stack.compose("up", "--detach", "--build", "--wait", timeout=UP_FROM_NOTHING_S)
    stack.timings["up from here"] = time.monotonic() - started

    services = stack.file()["services"]
    running = stack.ps()
    assert set(running) == stack.started_services()
    for name, container in running.items():
        if "healthcheck" in services[name]:
            assert (container["State"], container["Health"]) == ("running", "healthy"), name
        else:  # a one-shot job
            assert (container["State"], container["ExitCode"]) == ("exited", 0), container

    events = stack.events.events()

    def first(service: str, action: str) -> int:
        times = [e.nanos for e in events if e.service == service and e.action == action]
        assert times, f"no {action!r} event of {service}"
        return min(times)

    for name in running:
        start = first(name, "start")
        for dep, condition in compose.depends_on(services[name]).items():
            if condition == "service_healthy":
                ready = first(dep, "health_status: healthy")
            elif condition == "service_completed_successfully":
                ready = min(
                    e.nanos
                    for e in events
                    if e.service == dep and e.action == "die" and e.exit_code == "0"
                )
            else:
                ready = first(dep, "start")
            assert ready <= start, f"{name} started before {dep} was {condition}"


# -- 2. the first model, served ------------------------------------------------------------------


def test_2_the_readme_curl_answers_and_model_info_shows_the_first_run(stack: Stack) -> None:
    prediction, info_text = stack.shell(readme_block(stack, "/predict", "/model-info"))
    answer = json.loads(prediction)
    assert answer["predictions"] == [2]
    assert (answer["model"]["name"], answer["model"]["version"]) == ("sk_model", "1")
    info = json.loads(info_text)
    assert (info["version"], info["alias"]) == ("1", "champion")

    # The MLflow UI on its port lists that run in new-exp, with the metrics the API shows.
    page = httpx.get(stack.url("MLFLOW_HOST_PORT"), timeout=30)
    assert page.status_code == 200 and "<html" in page.text.lower()
    (run,) = experiment_runs(stack)
    assert run["info"]["run_id"] == info["run_id"]
    metrics = {m["key"]: m["value"] for m in run["data"]["metrics"]}
    assert {"train_acc", "valid_acc"} <= metrics.keys()
    assert info["metrics"] == pytest.approx(metrics)


def test_2a_large_requests_are_shared_with_the_containers_model_process(stack: Stack) -> None:
    """The container runs the API as shipped: one worker and, beside it, its model process,
    which answers large bodies (over 16 KiB) as the worker would."""

    def started() -> list[dict[str, Any]] | None:
        return client.get("/model-info").json()["model_processes"] or None

    with api(stack) as client:
        (process,) = wait_for("the model process", started, timeout=60)
        assert process["running"]
        rows = [list(IRIS_EXAMPLE.values())] * 1000
        body = {"dataframe_split": {"columns": list(IRIS_EXAMPLE), "data": rows}}
        assert len(json.dumps(body)) > 16 * 1024
        answer = client.post("/predict", json=body)
        (after,) = client.get("/model-info").json()["model_processes"]
    assert answer.status_code == 200, answer.text
    assert answer.json()["predictions"] == [2] * 1000
    assert after["requests"] == process["requests"] + 1


# -- 2b. monitoring: the prediction log, drift, accuracy, Prometheus and the dashboard ----------


def test_2b_rows_are_logged_and_every_dashboard_query_has_data(stack: Stack) -> None:
    from tests.monitoring.load import Load
    from tests.monitoring.prometheus import check_stack

    with api(stack) as client:
        check_stack(
            stack.url("PROMETHEUS_HOST_PORT"),
            Load(client, api_key=stack.settings["API_KEY"]).run,
            timeout=180,
        )
        metrics = client.get("/metrics", headers=admin_headers(stack)).text
    assert "drift_baseline_share{" in metrics  # the trainer logged a baseline with the model
    assert "drift_bin_rows_total{" in metrics  # and the load's rows were binned against it
    assert "feedback_rows_total{" in metrics  # the load sent feedback

    # Every row the API predicted is in the stack's `predictions` database.
    def predicted_and_logged() -> tuple[float, int] | None:
        with api(stack) as client:
            text = client.get("/metrics", headers=admin_headers(stack)).text
        predicted = sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("predicted_rows_total{")
        )
        count = stack.compose(
            "exec", "-T", "postgres", "psql", "-U", stack.settings["POSTGRES_USER"],
            "-d", "predictions", "-tAc", "SELECT count(*) FROM prediction_log",
        )  # fmt: skip
        logged = int(count.stdout.strip())
        return (predicted, logged) if predicted > 0 and logged == predicted else None

    predicted, logged = wait_for("every predicted row in the log", predicted_and_logged, 60)
    assert logged == predicted


# -- 3. retrain and roll out ---------------------------------------------------------------------


def test_3_the_readme_rollout_serves_version_2_without_a_failed_request(stack: Stack) -> None:
    commands = readme_block(stack, "docker compose run --rm trainer", "/admin/reload")
    poller = Poller(stack)
    poller.start()
    try:
        wait_for("a first answer to the polling client", lambda: poller.versions() or None, 30)
        outputs = stack.shell(commands)
        reloads = [out for cmd, out in zip(commands, outputs, strict=True) if "reload" in cmd]
        (reload,) = [json.loads(out) for out in reloads]
        assert reload["status"] == "reloaded", reload
        assert (reload["previous"]["version"], reload["model"]["version"]) == ("1", "2")
        assert json.loads(outputs[-1])["version"] == "2"
        wait_for("version 2 answering the client", lambda: "2" in poller.versions() or None, 30)
    finally:
        poller.done.set()
        poller.join(30)
    failed = [answer for answer in poller.answers if answer[0] != 200]
    assert not failed, f"{len(failed)} of {len(poller.answers)} requests failed: {failed[:5]}"
    versions = [seen for _, seen in poller.answers]
    assert versions[0] == "1" and versions[-1] == "2"
    assert versions == sorted(versions), "version 1 answered again after version 2"
    assert len(experiment_runs(stack)) == 2


# -- 4. the tracking server stops ----------------------------------------------------------------


def test_4_without_the_tracking_server_predict_answers_and_reload_fails_cleanly(
    stack: Stack,
) -> None:
    stack.compose("stop", "mlflow-server")
    assert predict(stack)["model"]["version"] == "2"
    with api(stack) as client:
        reload = client.post("/admin/reload", headers=admin_headers(stack))
        assert reload.status_code == 502, reload.text
        assert reload.json()["error"]["code"] == "reload_failed"
        assert client.get("/readyz").status_code == 200
    assert predict(stack)["model"]["version"] == "2"


# -- 5. the api restarts while the tracking server is down ---------------------------------------


def test_5_a_restart_without_the_tracking_server_serves_the_cached_model(stack: Stack) -> None:
    stack.compose("stop", "mlflow-server")  # still stopped after step 4; stopped if it failed
    stack.compose("restart", "api")
    restarted = time.monotonic()
    ready = wait_for("/readyz 200 after the restart", lambda: readiness(stack), CACHED_START_S)
    stack.timings["api ready from the cache"] = time.monotonic() - restarted
    assert ready["status"] == "ready"
    assert (ready["source"], ready["registry"]) == ("cache", "unreachable"), ready
    assert (ready["model"]["name"], ready["model"]["version"]) == ("sk_model", "2")
    assert predict(stack)["model"]["version"] == "2"

    stack.compose("start", "mlflow-server")
    back = wait_for(
        "/readyz reporting the registry reachable again",
        lambda: (r := readiness(stack)) and r["registry"] == "reachable" and r or None,
        UP_S,
    )
    assert back["model"]["version"] == "2"
    assert predict(stack)["model"]["version"] == "2"


# -- 6. down, up again ---------------------------------------------------------------------------


def test_6_down_and_up_again_serve_the_same_version_without_retraining(stack: Stack) -> None:
    stack.compose("up", "--detach", "--wait", timeout=UP_S)  # whatever the steps before left
    served = predict(stack)["model"]
    runs = {run["info"]["run_id"] for run in experiment_runs(stack)}

    minio = stack.file()["services"]["minio"]["image"]
    kept = bucket_objects(stack) if stack.image_is_standin(minio) else None
    stack.compose("down")
    assert stack.leftovers()["containers"] == []
    if kept is not None:
        # The stand-in MinIO (../shared/docker-offline) keeps objects in memory only; the real
        # one keeps them in the minio-data volume, which `down` keeps: put back what it kept.
        stack.compose("up", "--detach", "--wait", "minio")
        restore_bucket(stack, kept)

    started = time.monotonic()
    stack.compose("up", "--detach", "--wait", timeout=UP_S)
    stack.timings["up again (data kept)"] = time.monotonic() - started
    assert predict(stack)["model"] == served
    # Its JSON result is on stdout, the "not training" line on stderr: `compose logs` merges
    # the two streams by timestamp, so either may come last.
    trainer = stack.output_of("trainer")
    results = [json.loads(line) for line in trainer if line.startswith("{")]
    assert len(results) == 1, trainer
    result = results[0]
    assert result["skipped"] is True, trainer
    assert any(line.endswith("not training") for line in trainer), trainer
    assert str(result["version"]) == served["version"]
    assert {run["info"]["run_id"] for run in experiment_runs(stack)} == runs


def s3(stack: Stack) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=stack.url("MINIO_HOST_PORT"),
        aws_access_key_id=stack.settings["MINIO_ROOT_USER"],
        aws_secret_access_key=stack.settings["MINIO_ROOT_PASSWORD"],
        region_name="us-east-1",
    )


def bucket(stack: Stack) -> str:
    command = compose.command(stack.file()["services"]["create-bucket"])
    return command[-1]


def bucket_objects(stack: Stack) -> dict[str, bytes]:
    client, name = s3(stack), bucket(stack)
    keys = [
        obj["Key"]
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=name)
        for obj in page.get("Contents", [])
    ]
    assert keys, f"bucket {name} is empty"
    return {key: client.get_object(Bucket=name, Key=key)["Body"].read() for key in keys}


def restore_bucket(stack: Stack, objects: dict[str, bytes]) -> None:
    client, name = s3(stack), bucket(stack)
    client.create_bucket(Bucket=name)
    for key, data in objects.items():
        client.put_object(Bucket=name, Key=key, Body=data)


# -- 7. down -v ----------------------------------------------------------------------------------


@last_step
def test_7_down_v_leaves_nothing_of_the_project(stack: Stack) -> None:
    assert any(stack.leftovers().values()), "nothing to take down: the steps before left nothing"
    # --remove-orphans: the fleet's load balancer (test_fleet.py) is not in this file.
    stack.compose("down", "--volumes", "--remove-orphans")
    assert stack.leftovers() == {"containers": [], "networks": [], "volumes": []}
