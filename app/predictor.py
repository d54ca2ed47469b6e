"""The model contract, and its MLflow implementation.

A `Predictor` loads one model, reports whether it is ready, predicts on a normalized batch,
and describes itself. `MlflowPredictor` resolves an MLflow model URI to a fixed version,
downloads its files once, compiles the signature into an `InputSchema`, and predicts with the
raw scikit-learn estimator on a float64 matrix when it can (the same numbers as
`mlflow.pyfunc`, without the DataFrame round trip), else through `mlflow.pyfunc`.
"""

from __future__ import annotations

import logging
import os
import platform
import re
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from app.errors import InvalidInput, PredictionFailed
from app.fastpath import compile_predict
from app.schema import InputSchema

logger = logging.getLogger(__name__)

EMBEDDED_DIR = Path(".mlflow")
"""The embedded default store's folder, shared with the trainer: <cwd>/.mlflow/mlflow.db."""

# MLflow's HTTP client retries for minutes on its own; the service has its own retry loop.
MLFLOW_CLIENT_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "15",
}
_PERMANENT_CODES = {"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "PERMISSION_DENIED"}
_RUNS_URI = re.compile(r"^runs:/(?P<run_id>[^/]+)/(?P<path>.+)$")
_ALIAS_URI = re.compile(r"^models:/(?P<name>[^/@]+)@(?P<alias>[^/@]+)$")
_VERSION_URI = re.compile(r"^models:/(?P<name>[^/@]+)/(?P<version>[^/@]+)$")


def default_tracking_uri() -> str:
    """MLFLOW_TRACKING_URI if set, else the embedded SQLite store under ./.mlflow."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{EMBEDDED_DIR.resolve()}/mlflow.db"


class LoadError(Exception):
    """Loading failed. `permanent` ones (no such model, unsupported signature) are not retried."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


@dataclass(frozen=True)
class ModelIdentity:
    uri: str
    name: str
    version: str | None = None
    alias: str | None = None
    run_id: str | None = None
    model_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Predictor(Protocol):
    """What the service needs of a model. Tests swap in a small fake honouring this."""

    identity: ModelIdentity
    schema: InputSchema

    @property
    def ready(self) -> bool: ...

    def resolve(self) -> ModelIdentity:
        """What the URI means now (an alias's current version), without loading (blocking)."""

    def load(self) -> None:
        """Load the model (blocking); raise LoadError on failure."""

    def predict(self, data: np.ndarray | pd.DataFrame) -> list[Any]:
        """Predictions, in order, for input `self.schema.parse()` produced (thread-safe)."""

    def describe(self) -> dict[str, Any]:
        """Everything /model-info shows."""

    def close(self) -> None:
        """Release what load() acquired."""


def _describe_error(exc: BaseException) -> tuple[str, bool]:
    """A one-line reason for a load failure, and whether retrying cannot help."""
    from mlflow.exceptions import MlflowException

    if isinstance(exc, MlflowException):
        message = exc.message.splitlines()[0] if exc.message else type(exc).__name__
        return message[:300], exc.error_code in _PERMANENT_CODES
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}"[:300], False


def load_error(exc: BaseException) -> LoadError:
    """`exc` as a LoadError (itself, if it is one)."""
    if isinstance(exc, LoadError):
        return exc
    message, permanent = _describe_error(exc)
    return LoadError(message, permanent=permanent)


def _to_list(output: Any) -> list[Any]:
    if isinstance(output, np.ndarray):
        return list(output.tolist())
    if isinstance(output, pd.DataFrame):
        if output.shape[1] == 1:
            return output.iloc[:, 0].tolist()
        return output.to_dict(orient="records")
    if isinstance(output, pd.Series):
        return output.tolist()
    return list(output)


class MlflowPredictor:
    """A model loaded from an MLflow URI (runs:/, models:/name@alias, models:/name/version)."""

    def __init__(self, uri: str, tracking_uri: str | None = None) -> None:
        self.uri = uri
        self.tracking_uri = tracking_uri or default_tracking_uri()
        # An explicit store is the registry too; else MLflow's own variables decide.
        env_registry = None if tracking_uri else os.environ.get("MLFLOW_REGISTRY_URI")
        self.registry_uri = env_registry or self.tracking_uri
        self.identity = ModelIdentity(uri=uri, name=uri)
        self._ready = False
        self._dir: str | None = None
        self._pyfunc: Any = None
        self._fast: Callable[[np.ndarray], Any] | None = None
        self._is_classifier = False
        self._info: dict[str, Any] = {}

    @property
    def ready(self) -> bool:
        return self._ready

    @property
    def is_classifier(self) -> bool:
        return self._is_classifier

    # -- loading -------------------------------------------------------------------------

    def _resolve(self, client: Any) -> tuple[ModelIdentity, str]:
        """The identity of the exact version the URI means now, and a URI pinned to it."""
        if m := _RUNS_URI.match(self.uri):
            name = m["path"].rstrip("/").rsplit("/", 1)[-1]
            return ModelIdentity(self.uri, name, run_id=m["run_id"]), self.uri
        if m := _ALIAS_URI.match(self.uri):
            mv = client.get_model_version_by_alias(m["name"], m["alias"])
            pinned = f"models:/{mv.name}/{mv.version}"
            return ModelIdentity(self.uri, mv.name, str(mv.version), m["alias"], mv.run_id), pinned
        if (m := _VERSION_URI.match(self.uri)) and m["version"].isdigit():
            mv = client.get_model_version(m["name"], m["version"])
            return ModelIdentity(self.uri, mv.name, str(mv.version), None, mv.run_id), self.uri
        # models:/<name>/<stage> (deprecated stages) or models:/<model_id>: load as given.
        return ModelIdentity(self.uri, self.uri.removeprefix("models:/")), self.uri

    def resolve(self) -> ModelIdentity:
        from mlflow import MlflowClient

        try:
            client = MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.registry_uri)
            return self._resolve(client)[0]
        except Exception as exc:
            raise load_error(exc) from exc

    def load(self) -> None:
        import mlflow
        import sklearn
        from mlflow import MlflowClient
        from mlflow.models import Model

        start = time.perf_counter()
        # Parts of MLflow (the models:/ artifact repository) only read the global URIs.
        registry_uri = self.registry_uri
        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_registry_uri(registry_uri)
        try:
            client = MlflowClient(tracking_uri=self.tracking_uri, registry_uri=registry_uri)
            identity, pinned = self._resolve(client)
            self._dir = tempfile.mkdtemp(prefix="model-serving-")
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=pinned,
                dst_path=self._dir,
                tracking_uri=self.tracking_uri,
                registry_uri=registry_uri,
            )
            meta = Model.load(local)
            if meta.signature is None:
                raise LoadError("the model has no signature: log it with one", permanent=True)
            pyfunc = mlflow.pyfunc.load_model(local)
        except Exception as exc:
            self.close()
            raise load_error(exc) from exc

        estimator = None
        if "sklearn" in meta.flavors:
            estimator = pyfunc.get_raw_model()
        fitted_order = getattr(estimator, "feature_names_in_", None)
        try:
            schema = InputSchema.from_signature(
                meta.signature.inputs.to_dict(),
                [str(c) for c in fitted_order] if fitted_order is not None else None,
            )
        except ValueError as exc:
            self.close()
            raise LoadError(f"cannot serve this model: {exc}", permanent=True) from exc

        run_id = identity.run_id or meta.run_id
        self.identity = ModelIdentity(
            identity.uri, identity.name, identity.version, identity.alias, run_id, meta.model_id
        )
        self.schema = schema
        self._pyfunc = pyfunc
        self._is_classifier = hasattr(estimator, "classes_")
        example = self._example(meta, local)
        self._fast = None
        path = "pyfunc"
        if schema.numeric and hasattr(estimator, "predict"):
            # Fitted on a DataFrame, fed a matrix in the same column order: the warning is noise.
            warnings.filterwarnings("ignore", message="X does not have valid feature names")
            self._fast, path = self._verified_fast_path(estimator, pyfunc, schema, example)
        metrics, params = self._run_data(client, run_id)
        load_seconds = time.perf_counter() - start
        self._info = {
            **self.identity.as_dict(),
            "flavor": "sklearn" if "sklearn" in meta.flavors else "python_function",
            "flavors": sorted(meta.flavors),
            "signature": {
                "inputs": schema.describe(),
                "outputs": meta.signature.outputs.to_dict() if meta.signature.outputs else None,
            },
            "input_example": example,
            "metrics": metrics,
            "params": params,
            "loaded_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "load_seconds": round(load_seconds, 4),
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
        self._ready = True
        logger.info(
            "model loaded: %s (name=%s version=%s run_id=%s) in %.2fs",
            self.uri, self.identity.name, self.identity.version, run_id, load_seconds,
        )  # fmt: skip

    @staticmethod
    def _verified_fast_path(
        estimator: Any, pyfunc: Any, schema: InputSchema, example: list[dict[str, Any]] | None
    ) -> tuple[Callable[[np.ndarray], Any] | None, str]:
        """The fastest matrix predict whose answers equal mlflow.pyfunc's on the input example
        and on perturbed copies of it: the lean compiled one, else the estimator's own
        `predict` (a ColumnTransformer selecting columns by name would fail both), else None."""
        if not example:
            return None, "pyfunc (no input example to verify a faster path on)"
        frame = pd.DataFrame.from_records(example, columns=list(schema.names))
        base = frame[list(schema.array_order)].to_numpy(dtype=np.float64)
        factors = np.random.default_rng(2022).uniform(0.5, 1.5, size=(20, *base.shape))
        matrix = np.concatenate([base, *(base * f for f in factors)])
        check = pd.DataFrame(matrix, columns=list(schema.array_order))[list(schema.names)]
        try:
            reference = _to_list(pyfunc.predict(check))
        except Exception as exc:
            logger.warning(
                "mlflow.pyfunc cannot predict on the model's own input example (%s): "
                "requests may be refused", type(exc).__name__,
            )  # fmt: skip
            return None, f"pyfunc (reference predict failed: {type(exc).__name__})"
        candidates = [("lean", compile_predict(estimator)), ("estimator", estimator.predict)]
        for name, candidate in candidates:
            if candidate is None:
                continue
            try:
                if _to_list(candidate(matrix.copy())) == reference:
                    return candidate, name
            except Exception as exc:
                logger.info("%s predict path unusable: %s", name, type(exc).__name__)
        return None, "pyfunc (faster paths disagreed with it)"

    def _example(self, meta: Any, local: str) -> list[dict[str, Any]] | None:
        try:
            example = meta.load_input_example(local)
        except Exception:  # an unreadable example must not stop serving
            logger.warning("could not read the model's input example", exc_info=True)
            return None
        if isinstance(example, pd.DataFrame):
            return example.head(10).to_dict(orient="records")  # type: ignore[return-value]
        return None

    def _run_data(self, client: Any, run_id: str | None) -> tuple[dict[str, Any] | None, ...]:
        if not run_id:
            return None, None
        try:
            data = client.get_run(run_id).data
        except Exception as exc:
            logger.warning("could not read run %s: %s", run_id, _describe_error(exc)[0])
            return None, None
        return dict(data.metrics), dict(data.params)

    # -- serving -------------------------------------------------------------------------

    def predict(self, data: np.ndarray | pd.DataFrame) -> list[Any]:
        """Predict on input `InputSchema.parse()` produced."""
        from mlflow.exceptions import MlflowException

        try:
            if self._fast is not None:
                if isinstance(data, pd.DataFrame):
                    data = data[list(self.schema.array_order)].to_numpy(dtype=np.float64)
                return _to_list(self._fast(data))
            if isinstance(data, np.ndarray):
                data = pd.DataFrame(data, columns=list(self.schema.array_order))
            return _to_list(self._pyfunc.predict(data))
        except MlflowException as exc:
            # MLflow's own schema check; its message may quote the input, so it is not sent.
            message = "the model's schema check rejected the input"
            raise InvalidInput(message, [{"loc": [], "msg": message}]) from exc
        except ValueError as exc:
            # Valid by the signature, yet not computable (e.g. 1e308 overflows once scaled).
            logger.info("the model refused an input: %s", str(exc).splitlines()[0][:200])
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
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
