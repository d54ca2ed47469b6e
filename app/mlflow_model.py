"""`MlflowPredictor`: a model loaded from any URI MLflow can load one from.

Loading is four steps: resolve the URI to a fixed version (an alias to its current version),
download the model's files once, open them (MLmodel, signature compiled into an `InputSchema`,
the pyfunc, and the fastest predict path whose answers equal the pyfunc's), then read the
run's metrics and params for /model-info. Predictions use the raw scikit-learn estimator on a
float64 matrix when that was verified at load, else `mlflow.pyfunc`.
"""

from __future__ import annotations

import logging
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from app.cache import CacheEntry
from app.errors import InvalidInput, PredictionFailed
from app.failures import LoadError, explain
from app.fastpath import to_list, verified_fast_path
from app.predictor import ModelIdentity
from app.schema import InputSchema
from model_serving import uris
from model_serving.stores import default_tracking_uri

logger = logging.getLogger(__name__)


def _uri_name(uri: str) -> str:
    """A name for a model that has no registered one: the last part of its URI."""
    tail = uri.removeprefix("models:/").rstrip("/").rsplit("/", 1)[-1]
    return tail or uri


def mlflow_stores(tracking_uri: str | None = None) -> tuple[str, str]:
    """(tracking URI, registry URI): an explicit store is the registry too; else MLflow's own
    variables decide, and without them the embedded default."""
    tracking = tracking_uri or default_tracking_uri()
    registry = None if tracking_uri else os.environ.get("MLFLOW_REGISTRY_URI")
    return tracking, registry or tracking


class MlflowPredictor:
    """A model loaded from an MLflow model URI or a local folder."""

    def __init__(self, uri: str, tracking_uri: str | None = None) -> None:
        self.uri = uri
        self.tracking_uri, self.registry_uri = mlflow_stores(tracking_uri)
        self.identity = ModelIdentity(uri=uri, name=_uri_name(uri))
        self.local_dir: str | None = None
        """The model's files, once loaded."""
        self._owned_dir: str | None = None
        self._ready = False
        self._pyfunc: Any = None
        self._fast: Callable[[np.ndarray], Any] | None = None
        self._is_classifier = False
        self._info: dict[str, Any] = {}
        self.metadata: dict[str, Any] = {}
        """The MLmodel file's `metadata` (the trainer puts the drift baseline there)."""

    @property
    def ready(self) -> bool:
        return self._ready

    @property
    def is_classifier(self) -> bool:
        return self._is_classifier

    # -- resolving and downloading -------------------------------------------------------

    @cached_property
    def client(self) -> Any:
        """MLflow's client on this predictor's stores, made on first use (for a SQLite store,
        making it creates the file: a model served from a folder never needs one)."""
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.registry_uri)

    def _resolve(self) -> tuple[ModelIdentity, str]:
        """The identity of the exact version the URI means now, and where its files are.

        models:/ URIs are resolved here, with this predictor's own stores: MLflow 3.17's
        models:/ artifact repository would read the process-wide registry URI instead."""
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
            return ModelIdentity(self.uri, _uri_name(self.uri)), self.uri
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

    def resolve(self) -> ModelIdentity:
        try:
            return self._resolve()[0]
        except Exception as exc:
            raise explain(exc, tracking_uri=self.tracking_uri) from exc

    def _download(self, pinned: str) -> str:
        import mlflow

        self._owned_dir = tempfile.mkdtemp(prefix="model-serving-")
        return str(
            mlflow.artifacts.download_artifacts(
                artifact_uri=pinned,
                dst_path=self._owned_dir,
                tracking_uri=self.tracking_uri,
                registry_uri=self.registry_uri,
            )
        )

    def load(self) -> None:
        start = time.perf_counter()
        try:
            identity, pinned = self._resolve()
            local = self._download(pinned)
            self.open(local, identity)
        except Exception as exc:
            self.close()
            raise explain(exc, tracking_uri=self.tracking_uri) from exc
        self._info.update(self._run_data())
        self._info["load_seconds"] = round(time.perf_counter() - start, 4)
        logger.info(
            "model loaded: %s (%s) in %.2fs", self.uri, self.identity.label,
            self._info["load_seconds"],
        )  # fmt: skip

    def load_cached(self, entry: CacheEntry) -> None:
        start = time.perf_counter()
        identity = entry.identity
        try:
            self.open(
                str(entry.model_dir),
                ModelIdentity(
                    self.uri, identity["name"], identity.get("version"), identity.get("alias"),
                    identity.get("run_id"), identity.get("model_id"),
                ),
            )  # fmt: skip
        except Exception as exc:
            self.close()
            raise explain(exc) from exc
        self._info.update({k: entry.info.get(k) for k in ("metrics", "params")})
        self._info["cached_at"] = entry.saved_at
        self._info["load_seconds"] = round(time.perf_counter() - start, 4)
        logger.info("model loaded from the cache: %s (%s)", self.uri, self.identity.label)

    # -- opening the files ---------------------------------------------------------------

    def open(self, local: str, identity: ModelIdentity) -> None:
        """Serve the model in folder `local` (downloaded, or from the cache) as `identity`."""
        import mlflow
        from mlflow.models import Model

        meta = Model.load(local)
        if meta.signature is None:
            raise LoadError("the model has no signature: log it with one", permanent=True)
        pyfunc = mlflow.pyfunc.load_model(local)
        estimator = pyfunc.get_raw_model() if "sklearn" in meta.flavors else None
        fitted_order = getattr(estimator, "feature_names_in_", None)
        try:
            schema = InputSchema.from_signature(
                meta.signature.inputs.to_dict(),
                [str(c) for c in fitted_order] if fitted_order is not None else None,
            )
        except ValueError as exc:
            raise LoadError(f"cannot serve this model: {exc}", permanent=True) from exc
        self.identity = ModelIdentity(
            identity.uri, identity.name, identity.version, identity.alias,
            identity.run_id or meta.run_id, meta.model_id,
        )  # fmt: skip
        self.schema, self._pyfunc, self.local_dir = schema, pyfunc, local
        self.metadata = dict(meta.metadata or {})
        self._is_classifier = hasattr(estimator, "classes_")
        example = _example(meta, local)
        self._fast, path = None, "pyfunc"
        if schema.numeric and hasattr(estimator, "predict"):
            self._fast, path = verified_fast_path(estimator, pyfunc, schema, example)
        self._info = self._describe(meta, example, path)
        self._ready = True

    def _describe(self, meta: Any, example: Any, path: str) -> dict[str, Any]:
        import mlflow
        import sklearn

        return {
            **self.identity.as_dict(),
            "flavor": "sklearn" if "sklearn" in meta.flavors else "python_function",
            "flavors": sorted(meta.flavors),
            "signature": {
                "inputs": self.schema.describe(),
                "outputs": meta.signature.outputs.to_dict() if meta.signature.outputs else None,
            },
            "input_example": example,
            "metrics": None,
            "params": None,
            "loaded_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "load_seconds": None,
            "predict_path": path,
            "versions": {
                "python": platform.python_version(),
                "mlflow": mlflow.__version__,
                "scikit_learn": sklearn.__version__,
                "numpy": np.__version__,
                "pandas": pd.__version__,
            },
            "trained_with": {
                "mlflow": meta.mlflow_version,
                "scikit_learn": meta.flavors.get("sklearn", {}).get("sklearn_version"),
            },
        }

    def _run_data(self) -> dict[str, Any]:
        run_id = self.identity.run_id
        sqlite = self.tracking_uri.removeprefix("sqlite:///")
        if not run_id or (sqlite != self.tracking_uri and not os.path.exists(sqlite)):
            return {}  # no run, or no store to read it from (and none to create)
        try:
            data = self.client.get_run(run_id).data
        except Exception as exc:
            logger.warning("could not read run %s: %s", run_id, explain(exc))
            return {}
        return {"metrics": dict(data.metrics), "params": dict(data.params)}

    # -- serving -------------------------------------------------------------------------

    def predict(self, data: np.ndarray | pd.DataFrame) -> list[Any]:
        """Predict on input `InputSchema.parse()` produced."""
        from mlflow.exceptions import MlflowException

        try:
            if self._fast is not None:
                if isinstance(data, pd.DataFrame):
                    data = data[list(self.schema.array_order)].to_numpy(dtype=np.float64)
                return to_list(self._fast(data))
            if isinstance(data, np.ndarray):
                data = pd.DataFrame(data, columns=list(self.schema.array_order))
            return to_list(self._pyfunc.predict(data))
        except MlflowException as exc:
            # MLflow's own schema check; its message may quote the input, so it is not sent.
            message = "the model's schema check rejected the input"
            raise InvalidInput(message, [{"loc": [], "msg": message}]) from exc
        except ValueError as exc:
            # Valid by the signature, yet not computable (e.g. 1e308 overflows once scaled);
            # logged by the data plane, in the request's context.
            message = (
                "the model cannot predict on these values (ValueError): check for values far "
                "outside the range it was trained on"
            )
            raise InvalidInput(message, [{"loc": [], "msg": message}]) from exc
        except Exception as exc:
            logger.error("predict failed: %s", type(exc).__name__, exc_info=exc)
            raise PredictionFailed(f"the model failed to predict ({type(exc).__name__})") from exc

    def describe(self) -> dict[str, Any]:
        return dict(self._info)

    def close(self) -> None:
        self._ready = False
        if self._owned_dir is not None:
            shutil.rmtree(self._owned_dir, ignore_errors=True)
            self._owned_dir = None


def _example(meta: Any, local: str) -> list[dict[str, Any]] | None:
    try:
        example = meta.load_input_example(local)
    except Exception:  # an unreadable example must not stop serving
        logger.warning("could not read the model's input example", exc_info=True)
        return None
    if isinstance(example, pd.DataFrame):
        return example.head(10).to_dict(orient="records")  # type: ignore[return-value]
    return None
