"""docker-compose.yaml's services as local processes: same commands, same environment.

Only what a container network provides is translated: the service host names (postgres,
minio, mlflow-server) become loopback addresses on free ports and fresh test databases, and the
`python`/`mlflow` executables become this interpreter. Credentials stay as .env.example sets
them (moto accepts any key pair; the machine's Postgres trusts loopback connections).
"""

from __future__ import annotations

import re
import sys
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from tests.servers import python_env
from tests.stack import compose

POSTGRES_URL = re.compile(r"postgres(?:ql)?(?:\+\w+)?://[^\s\"']+")
# What the test process's own environment must not leak into a service's.
FOREIGN = re.compile(
    r"^(MLFLOW_|AWS_|TRAINER_|MODEL_|RUN_ID$|MAX_|LOG_LEVEL$|HOST$|PORT$|WORKERS$)"
)
S3_CLIENT_VARIABLES = re.compile(r"^(AWS_|MLFLOW_S3_)")
# boto3 must find no credentials anywhere but the environment, and not wait on EC2 metadata.
NO_AWS_FILES = {
    "AWS_CONFIG_FILE": "/nonexistent/aws-config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
    "AWS_EC2_METADATA_DISABLED": "true",
}


@dataclass(frozen=True)
class Endpoints:
    """Where the stack's host names point on this machine."""

    s3: str  # http://127.0.0.1:<port>, for http://minio:9000
    tracking: str  # http://127.0.0.1:<port>, for http://mlflow-server:5000
    databases: Mapping[str, str]  # compose database name -> local postgresql:// URL

    def localize(self, text: str) -> str:
        text = POSTGRES_URL.sub(lambda m: self._database(m.group(0)), text)
        text = text.replace("http://minio:9000", self.s3)
        return text.replace("http://mlflow-server:5000", self.tracking)

    def _database(self, url: str) -> str:
        parts = urlsplit(url)
        name = parts.path.lstrip("/")
        if name not in self.databases:
            raise KeyError(f"compose names database {name!r}; the test made {set(self.databases)}")
        local = urlsplit(self.databases[name])
        # Keep the driver compose asks for (postgresql+psycopg2://): it is part of the contract.
        return urlunsplit(local._replace(scheme=parts.scheme))

    def env(
        self,
        service: Mapping[str, Any],
        *,
        without_s3_credentials: bool = False,
        extra: Mapping[str, str] | None = None,
    ) -> dict[str, str]:
        """The service's compose environment, localized, over a clean copy of this process's."""
        service_env = {k: self.localize(v) for k, v in compose.environment(service).items()}
        if "MODEL_CACHE_DIR" in service_env:
            # compose's volume path, here a folder of this run's own: a cache on the host's
            # /var/cache would outlive the test and serve one test's model to the next.
            service_env["MODEL_CACHE_DIR"] = tempfile.mkdtemp(prefix="model-cache-")
        service_env.update(extra or {})
        drop = [name for name in python_env() if FOREIGN.match(name)]
        if without_s3_credentials:
            service_env = {k: v for k, v in service_env.items() if not S3_CLIENT_VARIABLES.match(k)}
        return python_env({**service_env, **NO_AWS_FILES}, drop=drop)


def localize_argv(argv: Iterable[str], *, port: int | None = None) -> list[str]:
    """A compose command run here: this interpreter, loopback, and `port` for --port."""
    args = list(argv)
    if args[0] == "python":
        args[0] = sys.executable
    elif args[0] == "mlflow":
        args[:1] = [sys.executable, "-m", "mlflow"]
    out: list[str] = []
    values = {"--host": "127.0.0.1", "--port": str(port)}
    i = 0
    while i < len(args):
        arg = args[i]
        name, eq, _ = arg.partition("=")
        if name in values and (name != "--port" or port is not None):
            if eq:
                out.append(f"{name}={values[name]}")
            else:
                out += [name, values[name]]
                i += 1
        else:
            out.append(arg)
        i += 1
    return out


def replace_option(argv: list[str], name: str, value: str | None) -> list[str]:
    """argv without `name=...`, plus `name=value` unless value is None."""
    out = [arg for arg in argv if arg.partition("=")[0] != name]
    return out if value is None else [*out, f"{name}={value}"]


def localize_healthcheck(service: Mapping[str, Any], port: int) -> list[str]:
    """The service's healthcheck command, pointed at the local process's port."""
    argv = compose.healthcheck(service)
    argv = [re.sub(r"127\.0\.0\.1:\d+", f"127.0.0.1:{port}", arg) for arg in argv]
    return localize_argv(argv)
