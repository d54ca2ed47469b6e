"""Servers the fault tests stop and start again on the same port, with the same state.

- `Restartable`: a server process (the MLflow tracking server, the S3 server) that a test can
  stop and start again with the same command and environment, so clients configured with its
  URL see it go away and come back.
- moto's S3 server keeps its objects in memory, so a restart loses them, where MinIO keeps
  them on its volume. `snapshot()` copies a bucket's objects out over S3 before a stop, and
  `python -m tests.integration.faults s3-server --port P --snapshot DIR` starts moto's server
  with those objects already in it, before it listens: no client ever sees an empty bucket.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from tests.servers import Server


class Restartable:
    """A server that can be stopped and started again, same args and env, same port."""

    def __init__(
        self,
        name: str,
        args: list[str],
        env: dict[str, str],
        workdir: Path,
        health_url: str,
        start_timeout: float,
    ) -> None:
        self.name = name
        self.args = args
        self.env = env
        self.workdir = workdir
        self.health_url = health_url
        self.start_timeout = start_timeout
        self.server: Server | None = None
        self.starts = 0

    def adopt(self, server: Server) -> None:
        """Take over an already running process (started by another fixture)."""
        self.server = server

    def start(self) -> None:
        assert self.server is None or self.server.proc.poll() is not None, "already running"
        self.starts += 1
        log = self.workdir / f"{self.name}-restart{self.starts}.log"
        self.server = Server(self.args, self.env, log, cwd=self.workdir)
        self.server.wait_http(self.health_url, timeout=self.start_timeout)

    def stop(self) -> None:
        if self.server is not None and self.server.proc.poll() is None:
            self.server.stop()


def snapshot(s3: Any, bucket: str, into: Path) -> int:
    """Copy every object of `bucket` to files under `into` (keys as paths); their number."""
    count = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            path = into / item["Key"]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read())
            count += 1
    return count


def _restore(bucket: str, snapshot_dir: Path) -> None:
    """Put the snapshot's objects into this process's moto backend (before it serves)."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    backend = s3_backends[DEFAULT_ACCOUNT_ID]["global"]
    backend.create_bucket(bucket, "us-east-1")
    for path in sorted(p for p in snapshot_dir.rglob("*") if p.is_file()):
        backend.put_object(bucket, path.relative_to(snapshot_dir).as_posix(), path.read_bytes())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.integration.faults")
    commands = parser.add_subparsers(dest="command", required=True)
    s3 = commands.add_parser("s3-server", help="moto's S3 server, optionally pre-filled")
    s3.add_argument("--host", default="127.0.0.1")
    s3.add_argument("--port", type=int, required=True)
    s3.add_argument("--bucket", default="mlflow")
    s3.add_argument("--snapshot", type=Path, help="folder written by snapshot()")
    args = parser.parse_args(argv)

    from moto.server import main as moto_main

    if args.snapshot is not None:
        _restore(args.bucket, args.snapshot)
    moto_main(["-H", args.host, "-p", str(args.port)])


if __name__ == "__main__":
    main(sys.argv[1:])
