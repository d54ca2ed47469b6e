"""The stack's servers as fixtures: moto's S3 server, `mlflow server` on Postgres, the data DB.

Everything runs from docker-compose.yaml's own commands and environment (tests.integration
.local_stack translates the host names). Each server runs in its own process group and is
stopped with it; the databases are dropped by the session's make_database fixture.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import psycopg2
import pytest

from tests.integration.local_stack import (
    Endpoints,
    localize_argv,
    replace_option,
)
from tests.iris import FEATURES
from tests.servers import Server, free_port, python_env, run_cli, running
from tests.stack import compose

BUCKET = "mlflow"
# Artifacts of the proxied-artifacts server go under this prefix of the same bucket.
PROXIED_PREFIX = "proxied"
S3_START_S = 60.0
MLFLOW_START_S = 180.0  # imports, then migrates a fresh Postgres database


def assert_port_free(port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))  # raises if anything still listens


def run_service(
    argv: list[str], env: dict[str, str], cwd: Path, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """A one-shot compose service (`python -m trainer ...`), run to completion."""
    assert argv[:2] == [sys.executable, "-m"], argv
    return run_cli(argv[2], *argv[3:], env=env, cwd=cwd, timeout=timeout)


def check(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def services() -> dict[str, dict[str, Any]]:
    """docker-compose.yaml's services, interpolated with .env.example's values."""
    return compose.load()["services"]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Working directory of the services (the trainer writes data.csv) and the server logs."""
    return tmp_path_factory.mktemp("stack")


@pytest.fixture(scope="module")
def s3_url(workdir: Path) -> Iterator[str]:
    """moto's standalone S3 server, in MinIO's place."""
    port = free_port()
    args = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    with running(args, python_env(), workdir / "moto.log") as server:
        server.wait_http(f"http://127.0.0.1:{port}/", timeout=S3_START_S)
        yield f"http://127.0.0.1:{port}"
    assert_port_free(port)


@pytest.fixture(scope="module")
def data_url(make_database: Callable[[], str]) -> str:
    """An empty database standing for compose's `iris`."""
    return make_database()


@pytest.fixture(scope="module")
def base_endpoints(s3_url: str, data_url: str, make_database: Callable[[], str]) -> Endpoints:
    """Endpoints before any tracking server exists (create-bucket and seed-db need none);
    `predictions` stands for compose's prediction-log database."""
    databases = {"iris": data_url, "predictions": make_database()}
    return Endpoints(s3=s3_url, tracking="http://unused.invalid", databases=databases)


@pytest.fixture(scope="module")
def s3(s3_url: str, services: dict[str, Any]) -> Any:
    """A boto3 client of the S3 server, with the stack's credentials."""
    env = compose.environment(services["create-bucket"])
    return boto3.client(
        "s3",
        endpoint_url=s3_url,
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name=env["AWS_DEFAULT_REGION"],
    )


@pytest.fixture(scope="module")
def bucket(
    base_endpoints: Endpoints, services: dict[str, Any], workdir: Path, s3: Any
) -> dict[str, str]:
    """The create-bucket service, run twice (a second `docker compose up` runs it again)."""
    service = services["create-bucket"]
    argv = localize_argv(compose.command(service))
    env = base_endpoints.env(service)
    outputs = {
        "first": check(run_service(argv, env, workdir)),
        "second": check(run_service(argv, env, workdir)),
    }
    s3.head_bucket(Bucket=BUCKET)
    return outputs


@pytest.fixture(scope="module")
def seeded(
    base_endpoints: Endpoints, services: dict[str, Any], workdir: Path, data_url: str
) -> dict[str, Any]:
    """The seed-db service, run twice; the rows it left in iris_data."""
    service = services["seed-db"]
    argv = localize_argv(compose.command(service))
    env = base_endpoints.env(service)
    first = check(run_service(argv, env, workdir))
    second = check(run_service(argv, env, workdir))
    with psycopg2.connect(data_url) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT {', '.join(FEATURES)}, target FROM iris_data ORDER BY id")
        rows = cur.fetchall()
    conn.close()
    return {"first": first, "second": second, "rows": rows}


@dataclass
class TrackingServer:
    mode: str  # "direct": clients write to S3 themselves; "proxied": through the server
    endpoints: Endpoints
    server: Server
    port: int

    @property
    def url(self) -> str:
        return self.endpoints.tracking

    @property
    def proxied(self) -> bool:
        return self.mode == "proxied"

    def client_env(self, service: dict[str, Any], **extra: str) -> dict[str, str]:
        """A client service's environment; in proxied mode without any S3 setting at all."""
        env = self.endpoints.env(service, without_s3_credentials=self.proxied, extra=extra)
        if self.proxied:
            s3_settings = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "MLFLOW_S3_ENDPOINT_URL"}
            assert not s3_settings & set(env), "a proxied-artifacts client got S3 settings"
        return env


@pytest.fixture(scope="module", params=["direct", "proxied"])
def tracking(
    request: pytest.FixtureRequest,
    services: dict[str, Any],
    base_endpoints: Endpoints,
    make_database: Callable[[], str],
    workdir: Path,
    bucket: dict[str, str],
    seeded: dict[str, Any],
) -> Iterator[TrackingServer]:
    """compose's mlflow-server on a fresh backend database.

    direct: exactly compose's command (`--default-artifact-root s3://mlflow/`).
    proxied: `--serve-artifacts --artifacts-destination s3://mlflow/proxied` instead, so only
    the server holds S3 credentials.
    """
    mode = request.param
    port = free_port()
    endpoints = Endpoints(
        s3=base_endpoints.s3,
        tracking=f"http://127.0.0.1:{port}",
        databases={**base_endpoints.databases, "mlflow": make_database()},
    )
    service = services["mlflow-server"]
    argv = localize_argv(compose.command(service), port=port)
    if mode == "proxied":
        argv = replace_option(argv, "--default-artifact-root", None)
        argv = replace_option(argv, "--artifacts-destination", f"s3://{BUCKET}/{PROXIED_PREFIX}")
        argv.append("--serve-artifacts")
    log = workdir / f"mlflow-{mode}.log"
    with running(argv, endpoints.env(service), log, cwd=workdir) as server:
        server.wait_http(f"{endpoints.tracking}/health", timeout=MLFLOW_START_S)
        yield TrackingServer(mode, endpoints, server, port)
    assert_port_free(port)
