"""Faults, each against real processes: the tracking server or S3 down while the API loads its
model, the data database dropped while the trainer reads it, SIGTERM while requests are in
flight.

The stack is the one test_full_stack.py runs (moto's S3 server, `mlflow server` on Postgres
with artifacts in S3, the seeded data database; compose's commands and environment), with the
API reaching S3 directly. Here the S3 server is one the tests can stop and start again on the
same port with the same objects (tests.integration.faults), as MinIO restarts with its volume.
"""

from __future__ import annotations

import http.client
import json
import re
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import psycopg2
import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from psycopg2 import sql

from tests.integration.conftest import (
    BUCKET,
    MLFLOW_START_S,
    S3_START_S,
    TrackingServer,
    assert_port_free,
    check,
    run_service,
)
from tests.integration.faults import Restartable, snapshot
from tests.integration.local_stack import localize_argv
from tests.iris import IRIS_EXAMPLE
from tests.servers import ROOT, Server, free_port, python_env, running, wait_for
from tests.stack import compose

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

# Only the direct-to-S3 server: the API must reach S3 itself for S3 to be its fault.
DIRECT = pytest.mark.parametrize("tracking", ["direct"], indirect=True)
ROW = dict(IRIS_EXAMPLE)
RETRY = re.compile(r"model load attempt (\d+) failed: (.*); retrying in ([\d.]+)s")
API_START_S = 60.0


# -- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def s3_server(workdir: Path) -> Iterator[Restartable]:
    """moto's S3 server, restartable (overrides conftest's s3_url through the fixture below)."""
    port = free_port()
    base = [sys.executable, "-m", "tests.integration.faults", "s3-server", "--port", str(port)]
    env = python_env({"PYTHONPATH": str(ROOT)})  # it runs in workdir, tests/ is in ROOT
    server = Restartable("s3", base, env, workdir, f"http://127.0.0.1:{port}/", S3_START_S)
    server.start()
    yield server
    server.stop()
    assert_port_free(port)


@pytest.fixture(scope="module")
def s3_url(s3_server: Restartable) -> str:
    return s3_server.health_url.rstrip("/")


@pytest.fixture(scope="module")
def tracking_server(
    tracking: TrackingServer, services: dict[str, Any], workdir: Path
) -> Iterator[Restartable]:
    """conftest's tracking server, restartable with its own command and environment."""
    server = Restartable(
        "mlflow",
        tracking.server.args,
        tracking.endpoints.env(services["mlflow-server"]),
        workdir,
        f"{tracking.url}/health",
        MLFLOW_START_S,
    )
    server.adopt(tracking.server)
    yield server
    server.stop()  # a restarted one; conftest stops the original and checks the port


@pytest.fixture(scope="module")
def champion(
    tracking_server: Restartable,
    tracking: TrackingServer,
    services: dict[str, Any],
    workdir: Path,
) -> dict[str, Any]:
    """compose's trainer service: sk_model@champion registered, its files in S3."""
    service = services["trainer"]
    argv = localize_argv(compose.command(service))
    return json.loads(check(run_service(argv, tracking.client_env(service), workdir)))


def _up(*servers: Restartable) -> None:
    """Start again what an earlier test left stopped (that test failed half-way)."""
    for server in servers:
        if server.server is None or server.server.proc.poll() is not None:
            server.start()


def _api_args(services: dict[str, Any], port: int, *extra: str) -> list[str]:
    return [*localize_argv(compose.command(services["api"]), port=port), *extra]


def _api_env(tracking: TrackingServer, services: dict[str, Any], **extra: str) -> dict[str, str]:
    return tracking.client_env(services["api"], **extra)


def _retries(log: str) -> list[tuple[int, str, float]]:
    return [(int(n), why, float(delay)) for n, why, delay in RETRY.findall(log)]


def _wait_for(condition: Callable[[], bool], timeout: float, what: str, log: Server) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if log.proc.poll() is not None:
            break
        time.sleep(0.2)
    raise AssertionError(f"{what} (within {timeout}s):\n{log.output()[-4000:]}")


def _assert_unready_and_retrying(api: Server, port: int, error_mentions: str) -> None:
    """Alive, unready in the error shape with the last error, and retrying with backoff."""
    base = f"http://127.0.0.1:{port}"
    api.wait_http(f"{base}/healthz", timeout=API_START_S)
    _wait_for(lambda: len(_retries(api.output())) >= 3, 30, "three load attempts failed", api)
    ready = httpx.get(f"{base}/readyz")
    assert ready.status_code == 503
    error = ready.json()["error"]
    assert (error["status"], error["code"]) == (503, "not_ready")
    assert "last error:" in error["message"] and error_mentions in error["message"], error
    assert httpx.get(f"{base}/healthz").status_code == 200
    predict = httpx.post(f"{base}/predict", json=ROW)
    assert predict.status_code == 503 and predict.json()["error"]["code"] == "not_ready"
    retries = _retries(api.output())
    assert [n for n, _, _ in retries] == list(range(1, len(retries) + 1))
    delays = [delay for _, _, delay in retries[:3]]
    assert delays == sorted(delays) and delays[0] < delays[2], f"no backoff: {delays}"
    assert "Traceback" not in api.output()


def _assert_gives_up(result: Server, budget: int) -> None:
    """Exit 1 with one clear `giving up` line and no traceback."""
    assert result.proc.wait(60) == 1, result.output()[-4000:]
    log = result.output()
    giving_up = [line for line in log.splitlines() if "giving up" in line]
    assert len(giving_up) == 1, log[-4000:]
    assert f"model models:/sk_model@champion not loaded after {budget}s" in giving_up[0]
    assert "CRITICAL" in giving_up[0]
    assert "Traceback" not in log


def _serves(port: int) -> None:
    answer = httpx.post(f"http://127.0.0.1:{port}/predict", json={"records": [ROW] * 3})
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["predictions"]) == 3


# -- the tracking server down at startup -------------------------------------------------------


@DIRECT
def test_tracking_server_down_at_startup_then_back(
    champion: dict[str, Any],
    tracking: TrackingServer,
    tracking_server: Restartable,
    services: dict[str, Any],
    s3_server: Restartable,
    workdir: Path,
) -> None:
    _up(s3_server)
    tracking_server.stop()
    port = free_port()
    env = _api_env(tracking, services, MODEL_LOAD_TIMEOUT="120")
    with running(_api_args(services, port), env, workdir / "api-tracking-down.log") as api:
        _assert_unready_and_retrying(api, port, f"127.0.0.1:{tracking.port}")

        tracking_server.start()  # same port, same backend store and artifacts
        api.wait_http(f"http://127.0.0.1:{port}/readyz", timeout=60)
        _serves(port)
        info = httpx.get(f"http://127.0.0.1:{port}/model-info").json()
        assert (info["version"], info["run_id"]) == (str(champion["version"]), champion["run_id"])
    assert_port_free(port)


@DIRECT
def test_tracking_server_never_back_gives_up_with_one_line(
    services: dict[str, Any], tracking: TrackingServer, workdir: Path
) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    env = _api_env(tracking, services, MODEL_LOAD_TIMEOUT="3", MLFLOW_TRACKING_URI=closed)
    with running(_api_args(services, free_port()), env, workdir / "api-tracking-gone.log") as api:
        _assert_gives_up(api, 3)


# -- S3 unreachable while loading --------------------------------------------------------------


@DIRECT
def test_s3_down_while_loading_then_back(
    champion: dict[str, Any],
    tracking: TrackingServer,
    tracking_server: Restartable,
    s3_server: Restartable,
    s3_url: str,
    s3: Any,
    services: dict[str, Any],
    workdir: Path,
) -> None:
    _up(tracking_server, s3_server)
    saved = workdir / "s3-snapshot"
    assert snapshot(s3, BUCKET, saved) >= 3
    s3_server.stop()
    # From now on the S3 server starts again with the objects it had.
    s3_server.args = [*s3_server.args, "--snapshot", str(saved)]
    port = free_port()
    env = _api_env(tracking, services, MODEL_LOAD_TIMEOUT="120")
    with running(_api_args(services, port), env, workdir / "api-s3-down.log") as api:
        _assert_unready_and_retrying(api, port, urlsplit(s3_url).netloc)

        s3_server.start()
        api.wait_http(f"http://127.0.0.1:{port}/readyz", timeout=60)
        _serves(port)
    assert_port_free(port)

    s3_server.stop()
    env = _api_env(tracking, services, MODEL_LOAD_TIMEOUT="3")
    with running(_api_args(services, free_port()), env, workdir / "api-s3-gone.log") as api:
        _assert_gives_up(api, 3)
    s3_server.start()


# -- the data database going away mid-training -------------------------------------------------


@DIRECT
def test_data_database_dropped_mid_training_fails_the_run_and_registers_nothing(
    tracking: TrackingServer,
    services: dict[str, Any],
    make_database: Callable[[], str],
    postgres_admin_url: str,
    tracking_server: Restartable,
    workdir: Path,
) -> None:
    from trainer.seed import seed

    _up(tracking_server)

    url = make_database()
    name = url.rsplit("/", 1)[1]
    seed(url, "iris_data")
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        # The same rows, but reading them takes 60 s: the trainer is held at its data load.
        cur.execute(
            "CREATE VIEW iris_slow AS SELECT i.* FROM iris_data i"
            " CROSS JOIN (SELECT pg_sleep(60)) AS held"
        )
    conn.close()

    experiment, registered = "faults-data-gone", "faults_model"
    service = services["trainer"]
    env = tracking.client_env(service, TRAINER_DATA=url)
    args = [sys.executable, "-m", "trainer", "train", "--table", "iris_slow"]
    args += ["--experiment", experiment, "--register", registered, "--alias", "champion"]
    admin = psycopg2.connect(postgres_admin_url)
    admin.autocommit = True
    try:
        with running(args, env, workdir / "trainer-data-gone.log") as trainer:

            def reading() -> bool:
                with admin.cursor() as cur:
                    cur.execute(
                        "SELECT count(*) FROM pg_stat_activity"
                        " WHERE datname = %s AND state = 'active' AND query LIKE %s",
                        (name, "%iris_slow%"),
                    )
                    (active,) = cur.fetchone() or (0,)
                    return bool(active)

            _wait_for(reading, 60, "the trainer is reading the data", trainer)
            with admin.cursor() as cur:
                cur.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
            code = trainer.proc.wait(60)
            log = trainer.output()
    finally:
        admin.close()

    assert code == 1, log
    assert "Traceback" not in log
    errors = [line for line in log.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, log
    assert "iris_slow" in errors[0]

    client = MlflowClient(tracking_uri=tracking.url, registry_uri=tracking.url)
    found = client.get_experiment_by_name(experiment)
    assert found is not None, f"no experiment {experiment}"
    (run,) = client.search_runs([found.experiment_id])
    assert run.info.status == "FAILED"
    assert run.data.params["table"] == "iris_slow"
    assert "train_acc" not in run.data.metrics
    with pytest.raises(MlflowException, match="RESOURCE_DOES_NOT_EXIST|not found"):
        client.get_registered_model(registered)
    assert client.search_model_versions(f"run_id = '{run.info.run_id}'") == []


# -- SIGTERM with requests in flight -----------------------------------------------------------


def _open_request(port: int, body: bytes, sent: int) -> http.client.HTTPConnection:
    """A POST /predict whose headers and first `sent` body bytes are on their way."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.putrequest("POST", "/predict")
    conn.putheader("Content-Type", "application/json")
    conn.putheader("Content-Length", str(len(body)))
    conn.endheaders()
    conn.send(body[:sent])
    return conn


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


@DIRECT
@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_finishes_requests_in_flight_refuses_new_ones_and_exits_0(
    workers: int,
    champion: dict[str, Any],
    tracking: TrackingServer,
    tracking_server: Restartable,
    s3_server: Restartable,
    services: dict[str, Any],
    workdir: Path,
) -> None:
    _up(tracking_server, s3_server)
    rows = 10_000
    body = json.dumps({"records": [ROW] * rows}).encode()
    port = free_port()
    args = _api_args(services, port, "--workers", str(workers))
    log = workdir / f"api-sigterm-{workers}.log"
    with running(args, _api_env(tracking, services), log) as api:
        api.wait_http(f"http://127.0.0.1:{port}/readyz", timeout=API_START_S)
        api.wait_output("model loaded: ", count=workers)  # /readyz answered for one worker
        # Four large requests in flight: headers and half the body sent, the rest to come.
        half = len(body) // 2
        in_flight = [_open_request(port, body, half) for _ in range(4)]
        wait_for(lambda: api.read_connections(port) == 4, 30, "the workers read all that was sent")

        api.proc.send_signal(signal.SIGTERM)
        # Well within BODY_TIMEOUT: the in-flight requests must still be waiting for their body.
        deadline = time.monotonic() + 3
        while not (refused := _refused(port)) and time.monotonic() < deadline:
            time.sleep(0.1)
        alive_while_draining = api.proc.poll() is None

        answers = []
        for conn in in_flight:
            conn.send(body[half:])
            response = conn.getresponse()
            answers.append((response.status, json.loads(response.read())))
            conn.close()
        code = api.proc.wait(60)
        output = api.output()
    assert [status for status, _ in answers] == [200] * 4, answers
    assert all(len(answer["predictions"]) == rows for _, answer in answers)
    assert alive_while_draining, "exited with requests in flight"
    assert refused, "a new connection was accepted after SIGTERM, with requests draining"
    assert code == 0, output[-4000:]
    assert_port_free(port)
