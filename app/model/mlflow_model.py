"""`MlflowPredictor`: a model loaded from any URI MLflow can load one from.

Loading is four steps: resolve the URI to a fixed version (an alias to its current version)
and download the model's files once (`app.model.registry`), open them (MLmodel, signature compiled
into an `InputSchema`, the pyfunc, and the fastest predict path whose answers equal the
pyfunc's), then read the run's metrics and params for /model-info. Predictions use the raw
scikit-learn estimator on a float64 matrix when that was verified at load, else
`mlflow.pyfunc`. A model from the cache is served from the service's own serving file when it
can be (`app.model.snapshot`: no MLflow import), else opened from MLflow's files as above.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from app.errors import InvalidInput, PredictionFailed, ServiceError
from app.model.cache import CacheEntry
from app.model.failures import LoadError, explain
from app.model.fastpath import verified_fast_path
from app.model.info import MODEL_INFO_KEYS, input_example, model_info, process_info
from app.model.output import VALUES, OutputForm, form_of, rows
from app.model.params import ParamsSchema
from app.model.predictor import ModelIdentity
from app.model.registry import Registry, mlflow_stores, uri_name
from app.model.schema import InputSchema
from app.model.snapshot import FAST_PATHS, Snapshot, read

logger = logging.getLogger(__name__)


class MlflowPredictor:
    """A model loaded from an MLflow model URI or a local folder."""

    def __init__(self, uri: str, tracking_uri: str | None = None) -> None:
        self.uri = uri
        self.tracking_uri, self.registry_uri = mlflow_stores(tracking_uri)
        self.registry = Registry(uri, self.tracking_uri, self.registry_uri)
        self.identity = ModelIdentity(uri=uri, name=uri_name(uri))
        self.local_dir: str | None = None
        """The model's files, once loaded."""
        self._owned_dir: str | None = None
        self._ready = False
        self._pyfunc: Any = None
        self._estimator: Any = None
        self._inputs: list[dict[str, Any]] = []
        self._fitted_order: list[str] | None = None
        self._fast: Callable[[np.ndarray], Any] | None = None
        self._serving_file: bytes | None = None  # snapshot(), made once (cache, model processes)
        self._is_classifier = False
        self._output = VALUES
        self._info: dict[str, Any] = {}
        self.metadata: dict[str, Any] = {}
        """The MLmodel file's `metadata` (the trainer puts the drift baseline there)."""

    @property
    def ready(self) -> bool:
        return self._ready

    @property
    def is_classifier(self) -> bool:
        return self._is_classifier

    def probe(self) -> LoadError | None:
        """Why the tracking server or registry cannot be reached, without MLflow (or None)."""
        from app.model.registry import probe

        return probe(self.tracking_uri, self.registry_uri)

    def resolve(self) -> ModelIdentity:
        try:
            return self.registry.resolve()[0]
        except Exception as exc:
            raise explain(exc, tracking_uri=self.tracking_uri) from exc

    def load(self) -> None:
        start = time.perf_counter()
        try:
            identity, pinned = self.registry.resolve()
            self._owned_dir = tempfile.mkdtemp(prefix="model-serving-")
            self.open(self.registry.download(pinned, self._owned_dir), identity)
        except Exception as exc:
            self.close()
            raise explain(exc, tracking_uri=self.tracking_uri) from exc
        self._info.update(self.registry.run_data(self.identity.run_id))
        self._info["load_seconds"] = round(time.perf_counter() - start, 4)
        logger.info(
            "model loaded: %s (%s) in %.2fs", self.uri, self.identity.label,
            self._info["load_seconds"],
        )  # fmt: skip

    def load_cached(self, entry: CacheEntry) -> None:
        start = time.perf_counter()
        stored = entry.identity
        identity = ModelIdentity(
            self.uri, stored["name"], stored.get("version"), stored.get("alias"),
            stored.get("run_id"), stored.get("model_id"),
        )  # fmt: skip
        snapshot = None
        if entry.serving is not None and entry.serving_sha256 is not None:
            snapshot = read(entry.serving, entry.serving_sha256)
        how = "its serving file"
        try:
            if snapshot is None or not self._serve_snapshot(snapshot, identity):
                how = "MLflow's files"
                self.open(str(entry.model_dir), identity)
        except Exception as exc:
            self.close()
            raise explain(exc) from exc
        self._info.update({k: entry.info.get(k) for k in ("metrics", "params")})
        self._info["cached_at"] = entry.saved_at
        self._info["load_seconds"] = round(time.perf_counter() - start, 4)
        logger.info(
            "model loaded from the cache (%s): %s (%s) in %.2fs", how, self.uri,
            self.identity.label, self._info["load_seconds"],
        )  # fmt: skip

    # -- opening the files ---------------------------------------------------------------

    def open(self, local: str, identity: ModelIdentity) -> None:
        """Serve the model in folder `local` (downloaded, or from the cache) as `identity`."""
        import mlflow
        from mlflow.models import Model

        meta = Model.load(local)
        pyfunc = mlflow.pyfunc.load_model(local)
        estimator = pyfunc.get_raw_model() if "sklearn" in meta.flavors else None
        fitted = getattr(estimator, "feature_names_in_", None)
        self._inputs = meta.signature.inputs.to_dict() if meta.signature else []
        self._fitted_order = [str(c) for c in fitted] if fitted is not None else None
        try:
            schema = (
                InputSchema.from_signature(self._inputs, self._fitted_order)
                if meta.signature
                else InputSchema([], signed=False)
            )
        except ValueError as exc:
            raise LoadError(f"cannot serve this model: {exc}", permanent=True) from exc
        declared = meta.signature.params if meta.signature else None
        schema.params = ParamsSchema.of(declared.to_dict() if declared else None)
        self.identity = ModelIdentity(
            identity.uri, identity.name, identity.version, identity.alias,
            identity.run_id or meta.run_id, meta.model_id,
        )  # fmt: skip
        self.schema, self._pyfunc, self._estimator = schema, pyfunc, estimator
        self.local_dir = local
        self.metadata = dict(meta.metadata or {})
        self._is_classifier = hasattr(estimator, "classes_")
        example = input_example(meta, local)
        self._fast, path = None, "pyfunc"
        if schema.numeric and hasattr(estimator, "predict"):
            self._fast, path = verified_fast_path(estimator, pyfunc, schema, example)
        self._info = {**process_info(self.identity), **model_info(meta, schema, example, path)}
        self._ready = True

    def _serve_snapshot(self, snapshot: Snapshot, identity: ModelIdentity) -> bool:
        """Serve the model from the service's own serving file, if its predict path still
        answers as it did (no MLflow, no skops); False when it cannot."""
        fast = snapshot.predict_path()
        if fast is None:
            logger.warning("cache: the serving file's predict path no longer verifies")
            return False
        self._inputs, self._fitted_order = snapshot.inputs, snapshot.fitted_order
        self.schema = InputSchema.from_signature(self._inputs, self._fitted_order)
        self.identity = identity
        self._estimator, self._fast = snapshot.estimator, fast
        self.metadata = dict(snapshot.metadata)
        self._is_classifier = hasattr(snapshot.estimator, "classes_")
        self._info = {**process_info(self.identity), **snapshot.info}
        self._ready = True
        return True

    def snapshot(self) -> bytes | None:
        """The serving file of this model (see app.model.snapshot), or None when serving it needs
        mlflow.pyfunc (no verified matrix predict path)."""
        path = self._info.get("predict_path")
        example = self._info.get("input_example")
        if self._fast is None or path not in FAST_PATHS or not example or not self._ready:
            return None
        if self._serving_file is not None:
            return self._serving_file
        names, order = list(self.schema.names), list(self.schema.array_order)
        matrix = pd.DataFrame.from_records(example, columns=names)[order].to_numpy(np.float64)
        snapshot = Snapshot(
            estimator=self._estimator,
            inputs=self._inputs,
            fitted_order=self._fitted_order,
            path=path,
            rows=matrix.tolist(),
            answers=rows(self._fast(matrix)),
            info={k: self._info[k] for k in MODEL_INFO_KEYS},
            metadata=self.metadata,
        )
        self._serving_file = snapshot.dumps()
        return self._serving_file

    # -- serving -------------------------------------------------------------------------

    @property
    def output(self) -> OutputForm:
        return self._output

    def predict(
        self, data: np.ndarray | pd.DataFrame, params: dict[str, Any] | None = None
    ) -> list[Any]:
        """Predict on input `InputSchema.parse()` produced, with checked inference `params`
        (the pyfunc takes them; None: the model's defaults)."""
        try:
            if params is not None:
                return self._predict_pyfunc(data, params)
            if self._fast is not None:
                if isinstance(data, pd.DataFrame):
                    data = data[list(self.schema.array_order)].to_numpy(dtype=np.float64)
                return rows(self._fast(data))
            return self._predict_pyfunc(data)
        except ServiceError:
            raise
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

    def _predict_pyfunc(
        self, data: np.ndarray | pd.DataFrame, params: dict[str, Any] | None = None
    ) -> list[Any]:
        from mlflow.exceptions import MlflowException

        if isinstance(data, np.ndarray):
            data = pd.DataFrame(data, columns=list(self.schema.array_order))
        elif not self.schema.signed and list(data.columns) == list(range(data.shape[1])):
            data = data.to_numpy()  # positional rows: the array MLflow hands the model
        try:
            output = self._pyfunc.predict(data, params=params)
        except MlflowException as exc:
            # MLflow's own schema check; its message may quote the input, so it is not sent.
            message = "the model's schema check rejected the input"
            raise InvalidInput(message, [{"loc": [], "msg": message}]) from exc
        self._output = form_of(output)
        return rows(output)

    def describe(self) -> dict[str, Any]:
        return dict(self._info)

    def close(self) -> None:
        self._ready = False
        if self._owned_dir is not None:
            shutil.rmtree(self._owned_dir, ignore_errors=True)
            self._owned_dir = None
