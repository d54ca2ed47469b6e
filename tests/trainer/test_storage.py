"""create-bucket against moto's standalone S3 server, spoken to over real HTTP."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from tests.servers import free_port, python_env, running
from tests.trainer.conftest import trainer
from trainer.errors import TrainerError
from trainer.storage import create_bucket

AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    args = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    with running(args, python_env(AWS), log) as server:
        url = f"http://127.0.0.1:{port}"
        server.wait_http(url + "/moto-api/", timeout=30)
        yield url


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in AWS.items():
        monkeypatch.setenv(key, value)


def buckets(endpoint: str) -> set[str]:
    s3 = boto3.client("s3", endpoint_url=endpoint)
    return {b["Name"] for b in s3.list_buckets()["Buckets"]}


def test_create_bucket_creates_then_is_idempotent(s3_endpoint: str, aws_env: None) -> None:
    assert create_bucket("mlflow-artifacts", s3_endpoint, timeout=5) is True
    assert "mlflow-artifacts" in buckets(s3_endpoint)
    assert create_bucket("mlflow-artifacts", s3_endpoint, timeout=5) is False


def test_an_invalid_bucket_name_is_a_clear_error(s3_endpoint: str, aws_env: None) -> None:
    with pytest.raises(TrainerError, match="Invalid bucket name|invalid bucket name"):
        create_bucket("Not_A/Valid*Bucket", s3_endpoint, timeout=5)


def test_an_unreachable_endpoint_gives_up_within_the_timeout(aws_env: None) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(TrainerError, match="unreachable, gave up after 1.5s"):
        create_bucket("b", endpoint, timeout=1.5)
    assert 1.0 <= time.monotonic() - started < 5


def test_the_cli_reads_the_endpoint_from_mlflow_s3_endpoint_url(
    s3_endpoint: str, tmp_path: Path
) -> None:
    env = python_env({**AWS, "MLFLOW_S3_ENDPOINT_URL": s3_endpoint})
    first = trainer("create-bucket", "cli-bucket", cwd=tmp_path, env=env)
    assert (first.returncode, first.stdout) == (0, "created bucket cli-bucket\n"), first.stderr
    second = trainer("create-bucket", "cli-bucket", cwd=tmp_path, env=env)
    assert (second.returncode, second.stdout) == (0, "bucket cli-bucket already exists\n")
    assert "cli-bucket" in buckets_with(env, s3_endpoint)


def buckets_with(env: dict[str, str], endpoint: str) -> set[str]:
    session = boto3.Session(
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name=env["AWS_DEFAULT_REGION"],
    )
    return {
        b["Name"] for b in session.client("s3", endpoint_url=endpoint).list_buckets()["Buckets"]
    }
