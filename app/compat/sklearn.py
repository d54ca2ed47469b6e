"""scikit-learn's SVC, predicted through libsvm without its per-call validation.

`SVC.predict` validates its input, then calls the private `_dense_predict` on a dense
model (`_sparse` false, set by `fit`). The service's lean predict path (`app.model.fastpath`)
calls `_dense_predict` itself on input it has already validated. Without it, an SVC is
served through its own `predict`: the same answers, with scikit-learn's validation on every
call.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable
from typing import Any

from app.compat._warn import fallback

logger = logging.getLogger(__name__)


def probe(svc: type[Any] | None = None) -> str | None:
    """What the lean SVC path relies on that this scikit-learn lacks; None: nothing."""
    if svc is None:
        from sklearn.svm import SVC

        svc = SVC
    if not callable(getattr(svc, "_dense_predict", None)):
        return "SVC has no _dense_predict"
    fit = getattr(svc, "fit", None)
    try:
        source = inspect.getsource(fit) if fit is not None else ""
    except (OSError, TypeError):
        source = ""
    if "self._sparse" not in source:
        return "SVC.fit no longer sets _sparse"
    return None


@functools.cache
def supported() -> bool:
    """Whether the lean SVC path can be taken; False logs one warning."""
    problem = probe()
    if problem is not None:
        fallback(logger, "scikit-learn", problem, "SVC models validate their input per call")
    return problem is None


def svc_dense_predict(step: Any) -> Callable[[Any], Any] | None:
    """The fitted SVC's libsvm predict on a validated dense float64 matrix, or None (a sparse
    model, or a scikit-learn without it: then its own `predict` serves)."""
    if not supported() or getattr(step, "_sparse", True):
        return None
    predict: Callable[[Any], Any] = step._dense_predict
    return predict
