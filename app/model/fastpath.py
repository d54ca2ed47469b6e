"""Lean predict functions for common fitted scikit-learn estimators.

scikit-learn validates its input on every call (dtype, finiteness, feature names, fitted state,
tags), which for one row costs many times the arithmetic itself. The service has already validated
its input (a finite, C-ordered float64 matrix in the fitted column order), so for the estimators
below it does the same arithmetic itself, in the same order and with the same calls, and skips the
rest. Anything else, or any estimator configured in a way not handled here, returns None and is
served by the estimator's own `predict`. The predictor also checks, at load, that the lean
function's answers equal `mlflow.pyfunc`'s on the input example and on perturbed copies of it before
using it."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from app.compat.sklearn import svc_dense_predict
from app.model.output import rows
from app.model.schema import InputSchema

logger = logging.getLogger(__name__)

Transform = Callable[[np.ndarray], np.ndarray]


def _standard_scaler(step: Any) -> Transform | None:
    from sklearn.preprocessing import StandardScaler

    if type(step) is not StandardScaler:
        return None
    mean = step.mean_ if step.with_mean else None
    scale = step.scale_ if step.with_std else None
    for array in (mean, scale):
        if array is not None and (not isinstance(array, np.ndarray) or array.dtype != np.float64):
            return None

    def transform(x: np.ndarray) -> np.ndarray:
        x = x.copy()  # StandardScaler.transform copies, then works in place: same operations
        if mean is not None:
            x -= mean
        if scale is not None:
            x /= scale
        return x

    return transform


def _svc(step: Any) -> Transform | None:
    from sklearn.svm import SVC

    if type(step) is not SVC:
        return None
    if step.kernel not in ("linear", "poly", "rbf", "sigmoid"):
        return None
    if step.break_ties and step.decision_function_shape == "ovr" and len(step.classes_) > 2:
        return None
    dense_predict = svc_dense_predict(step)
    if dense_predict is None or step.n_support_.sum() != step.support_vectors_.shape[0]:
        return None
    classes = step.classes_

    def predict(x: np.ndarray) -> np.ndarray:
        # SVC.predict = classes_.take(libsvm's predict on the validated matrix); its
        # validation refuses what earlier steps overflowed to infinity, and so do we.
        if not np.isfinite(x).all():
            raise ValueError("Input X contains infinity or a value too large for float64")
        y = dense_predict(np.ascontiguousarray(x, dtype=np.float64))
        return np.asarray(classes.take(np.asarray(y, dtype=np.intp)))

    return predict


_TRANSFORMS = (_standard_scaler,)
_FINALS = (_svc,)


def _first(
    builders: tuple[Callable[[object], Transform | None], ...], step: object
) -> Transform | None:
    for build in builders:
        if (built := build(step)) is not None:
            return built
    return None


def compile_predict(estimator: Any) -> Transform | None:
    """A lean `predict` for `estimator` (a Pipeline of supported steps, or one supported
    final estimator), or None when it is not one this module knows."""
    from sklearn.pipeline import Pipeline

    if type(estimator) is Pipeline:
        steps = [s for _, s in estimator.steps if s is not None and s != "passthrough"]
    else:
        steps = [estimator]
    if not steps:
        return None
    transforms = [_first(_TRANSFORMS, step) for step in steps[:-1]]
    final = _first(_FINALS, steps[-1])
    if final is None or any(t is None for t in transforms):
        return None
    chain = [t for t in transforms if t is not None]

    def predict(x: np.ndarray) -> np.ndarray:
        for transform in chain:
            x = transform(x)
        return final(x)

    return predict


def verified_fast_path(
    estimator: Any, pyfunc: Any, schema: InputSchema, example: list[dict[str, Any]] | None
) -> tuple[Callable[[np.ndarray], Any] | None, str]:
    """The fastest matrix predict whose answers equal mlflow.pyfunc's on the input example
    and on perturbed copies of it: the lean compiled one, else the estimator's own `predict`
    (a ColumnTransformer selecting columns by name would fail both), else None."""
    if not example:
        return None, "pyfunc (no input example to verify a faster path on)"
    frame = pd.DataFrame.from_records(example, columns=list(schema.names))
    base = frame[list(schema.array_order)].to_numpy(dtype=np.float64)
    factors = np.random.default_rng(2022).uniform(0.5, 1.5, size=(20, *base.shape))
    matrix = np.concatenate([base, *(base * f for f in factors)])
    check = pd.DataFrame(matrix, columns=list(schema.array_order))[list(schema.names)]
    try:
        reference = rows(pyfunc.predict(check))
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
            if rows(candidate(matrix.copy())) == reference:
                return candidate, name
        except Exception as exc:
            logger.info("%s predict path unusable: %s", name, type(exc).__name__)
    return None, "pyfunc (faster paths disagreed with it)"
