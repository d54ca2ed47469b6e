"""Where a model URI points: MLflow's tracking server and registry, asked about one URI.

`Registry` resolves a URI to the exact model it means now (an alias to its current version)
and where that model's files are, downloads them, and reads the run's metrics and params, all
on its own stores (never MLflow's process-wide ones). `probe()` asks, without MLflow, whether
the tracking server and registry can be reached at all: a TCP connect, so a start with a
cached model need not import MLflow to find out it has to serve the cache.
"""

from __future__ import annotations

import logging
import os
import socket
from functools import cached_property
from typing import Any
from urllib.parse import urlsplit

from app.model.failures import LoadError, explain
from app.model.predictor import ModelIdentity
from model_serving import uris
from model_serving.stores import default_tracking_uri

logger = logging.getLogger(__name__)

PROBE_TIMEOUT = 1.0
"""Seconds the probe waits for a TCP connection: a host that does not answer within it is
taken as unreachable for the first load (the background retries use MLflow's own timeouts)."""


def uri_name(uri: str) -> str:
    """A name for a model that has no registered one: the last part of its URI."""
    tail = uri.removeprefix("models:/").rstrip("/").rsplit("/", 1)[-1]
    return tail or uri


def mlflow_stores(tracking_uri: str | None = None) -> tuple[str, str]:
    """(tracking URI, registry URI): an explicit store is the registry too; else MLflow's own
    variables decide, and without them the embedded default."""
    tracking = tracking_uri or default_tracking_uri()
    registry = None if tracking_uri else os.environ.get("MLFLOW_REGISTRY_URI")
    return tracking, registry or tracking


def _unreachable(server: str, url: str, exc: OSError) -> LoadError:
    if isinstance(exc, socket.gaierror):
        cause = "name not resolved"
    elif isinstance(exc, ConnectionRefusedError):
        cause = "connection refused"
    elif isinstance(exc, TimeoutError):
        cause = "timed out"
    else:
        cause = "connection failed"
    parts = urlsplit(url)
    return LoadError(f"{server} {parts.scheme}://{parts.netloc}: {cause}", unreachable=True)


def probe(tracking_uri: str, registry_uri: str, timeout: float = PROBE_TIMEOUT) -> LoadError | None:
    """Why the tracking server or registry cannot be reached (a TCP connect to each HTTP
    one), or None when they can, or are not HTTP servers (a SQLite or file store)."""
    servers = [("tracking server", tracking_uri)]
    if registry_uri != tracking_uri:
        servers.append(("registry", registry_uri))
    for server, url in servers:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            continue
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
            socket.create_connection((parts.hostname, port), timeout=timeout).close()
        except ValueError:
            continue  # a malformed port: MLflow will say what is wrong with the URI
        except OSError as exc:
            return _unreachable(server, url, exc)
    return None


class Registry:
    """MLflow's tracking server and registry, as one model URI sees them."""

    def __init__(self, uri: str, tracking_uri: str, registry_uri: str) -> None:
        self.uri = uri
        self.tracking_uri = tracking_uri
        self.registry_uri = registry_uri

    @cached_property
    def client(self) -> Any:
        """MLflow's client on these stores, made on first use (for a SQLite store, making it
        creates the file: a model served from a folder never needs one)."""
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.registry_uri)

    def resolve(self) -> tuple[ModelIdentity, str]:
        """The identity of the exact version the URI means now, and where its files are.

        models:/ URIs are resolved here, with these stores: MLflow 3.17's models:/ artifact
        repository would read the process-wide registry URI instead."""
        if m := uris.RUNS.match(self.uri):
            return self._resolve_run(m["run_id"], m["path"].rstrip("/"))
        if m := uris.ALIAS.match(self.uri):
            mv = self.client.get_model_version_by_alias(m["name"], m["alias"])
            identity = ModelIdentity(self.uri, mv.name, str(mv.version), m["alias"], mv.run_id)
        elif m := uris.VERSION.match(self.uri):
            mv = self.client.get_model_version(m["name"], m["version"])
            identity = ModelIdentity(self.uri, mv.name, str(mv.version), None, mv.run_id)
        elif self.uri.startswith("models:/"):
            return self._resolve_pinned_model()
        else:
            # A path, file://, s3://, mlflow-artifacts:/ ...: one fixed folder, as given.
            return ModelIdentity(self.uri, uri_name(self.uri)), self.uri
        return identity, self.client.get_model_version_download_uri(mv.name, mv.version)

    def _resolve_run(self, run_id: str, path: str) -> tuple[ModelIdentity, str]:
        """runs:/<run_id>/<path>: the model logged under that name by the run (MLflow 3), else
        the run's artifacts at <path> (models logged as run artifacts)."""
        name = path.rsplit("/", 1)[-1]
        run = self.client.get_run(run_id)
        quoted = path.replace("'", "\\'")
        logged = self.client.search_logged_models(
            experiment_ids=[run.info.experiment_id],
            filter_string=f"name = '{quoted}' AND source_run_id = '{run.info.run_id}'",
        )
        for model in logged:
            if model.source_run_id == run_id:
                identity = ModelIdentity(self.uri, name, None, None, run_id, model.model_id)
                return identity, model.artifact_location
        return ModelIdentity(self.uri, name, run_id=run_id), f"{run.info.artifact_uri}/{path}"

    def _resolve_pinned_model(self) -> tuple[ModelIdentity, str]:
        """models:/<model_id> (a logged model) or models:/<name>/<stage> (deprecated)."""
        ref = self.uri.removeprefix("models:/").strip("/")
        if "/" in ref:
            name, stage = ref.split("/", 1)
            latest = self.client.get_latest_versions(name, [stage])
            if not latest:
                raise LoadError(f"no version of {name} in stage {stage}", permanent=True)
            mv = latest[0]
            identity = ModelIdentity(self.uri, mv.name, str(mv.version), None, mv.run_id)
            return identity, self.client.get_model_version_download_uri(mv.name, mv.version)
        logged = self.client.get_logged_model(ref)
        identity = ModelIdentity(self.uri, logged.name, None, None, None, logged.model_id)
        return identity, logged.artifact_location

    def download(self, location: str, dst: str) -> str:
        """The model files at `location`, downloaded into folder `dst`: their local folder."""
        import mlflow

        return str(
            mlflow.artifacts.download_artifacts(
                artifact_uri=location,
                dst_path=dst,
                tracking_uri=self.tracking_uri,
                registry_uri=self.registry_uri,
            )
        )

    def run_data(self, run_id: str | None) -> dict[str, Any]:
        """The run's metrics and params, or nothing when there is no run or store to read."""
        sqlite = self.tracking_uri.removeprefix("sqlite:///")
        if not run_id or (sqlite != self.tracking_uri and not os.path.exists(sqlite)):
            return {}  # no run, or no store to read it from (and none to create)
        try:
            data = self.client.get_run(run_id).data
        except Exception as exc:
            logger.warning("could not read run %s: %s", run_id, explain(exc))
            return {}
        return {"metrics": dict(data.metrics), "params": dict(data.params)}
