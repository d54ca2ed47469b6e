"""create-bucket: make the S3 (MinIO) bucket MLflow stores artifacts in, idempotently."""

from __future__ import annotations

import logging
import time
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ParamValidationError,
    ReadTimeoutError,
)

from trainer.errors import TrainerError, first_line

logger = logging.getLogger(__name__)

MISSING = {"404", "NoSuchBucket", "NotFound"}
ALREADY_MINE = {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}
UNREACHABLE = (EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError)
RETRY_PAUSE_S = 1.0


def create_bucket(name: str, endpoint_url: str | None, timeout: float = 60.0) -> bool:
    """Create bucket `name`; True if created, False if it already existed (and is ours).

    Credentials and region come from the AWS_* environment as boto3 reads them. While the
    endpoint is unreachable, retries for up to `timeout` seconds, then raises TrainerError.
    """
    per_try = max(1.0, min(5.0, timeout))
    try:
        client = boto3.client(
            "s3",
            endpoint_url=endpoint_url or None,
            config=Config(
                connect_timeout=per_try, read_timeout=per_try, retries={"max_attempts": 1}
            ),
        )
    except ValueError as exc:  # botocore rejects a malformed endpoint URL
        raise TrainerError(f"invalid S3 endpoint URL: {first_line(exc)}") from None
    region = client.meta.region_name
    kwargs: dict[str, object] = {"Bucket": name}
    if region and region != "us-east-1":
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
    where = endpoint_url or "the default S3 endpoint"
    deadline = time.monotonic() + timeout
    while True:
        try:
            if exists(client, name):
                return False
            client.create_bucket(**kwargs)  # type: ignore[arg-type]
            return True
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = error.get("Code", "")
            if code in ALREADY_MINE:
                return False
            message = error.get("Message") or code
            raise TrainerError(f"cannot create bucket {name!r} at {where}: {message}") from None
        except UNREACHABLE:
            if time.monotonic() + RETRY_PAUSE_S >= deadline:
                raise TrainerError(
                    f"S3 endpoint {where} unreachable, gave up after {timeout:g}s"
                ) from None
            logger.info("S3 endpoint %s unreachable, retrying", where)
            time.sleep(RETRY_PAUSE_S)
        except NoCredentialsError:
            raise TrainerError(
                "no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
            ) from None
        except ParamValidationError as exc:
            raise TrainerError(f"invalid bucket name {name!r}: {first_line(exc)}") from None
        except BotoCoreError as exc:
            raise TrainerError(f"cannot create bucket {name!r}: {first_line(exc)}") from None


def exists(client: Any, name: str) -> bool:
    """Whether the bucket exists and is reachable with these credentials.

    Asked first because S3 in us-east-1 answers CreateBucket on a bucket you own with 200.
    """
    try:
        client.head_bucket(Bucket=name)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code", "") in MISSING:
            return False
        raise
    return True
