"""The lean predict functions answer exactly what scikit-learn's own predict answers."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler
from sklearn.svm import SVC

from app.model.fastpath import compile_predict

X, Y = load_iris(return_X_y=True)
NAMES = np.array(["setosa", "versicolor", "virginica"])


def _probe() -> np.ndarray:
    rng = np.random.default_rng(7)
    spread = X.max(axis=0) - X.min(axis=0)
    noisy = X.min(axis=0) + rng.uniform(-0.5, 1.5, size=(2000, 4)) * spread
    return np.concatenate([X, noisy, X * 1e6, -X])


@pytest.mark.parametrize(
    "model",
    [
        Pipeline([("scaler", StandardScaler()), ("svc", SVC())]),
        Pipeline([("scaler", StandardScaler(with_mean=False)), ("svc", SVC(kernel="linear"))]),
        Pipeline([("scaler", StandardScaler(with_std=False)), ("svc", SVC(kernel="poly"))]),
        Pipeline([("skip", "passthrough"), ("svc", SVC(kernel="sigmoid", C=3.0))]),
        SVC(gamma=0.3),
        SVC(decision_function_shape="ovo"),
    ],
    ids=["scaler+rbf", "no-mean+linear", "no-std+poly", "passthrough+sigmoid", "bare", "ovo"],
)
@pytest.mark.parametrize("labels", ["ints", "strings", "binary"])
def test_lean_predict_equals_sklearn_predict(model: Any, labels: str) -> None:
    y = {"ints": Y, "strings": NAMES[Y], "binary": (Y == 2).astype(int)}[labels]
    model.fit(X, y)
    lean = compile_predict(model)
    assert lean is not None
    probe = _probe()
    expected = model.predict(probe)
    got = lean(probe.copy())
    assert got.dtype == expected.dtype
    assert np.array_equal(got, expected)
    assert len(set(expected)) > 1  # the probe crosses decision boundaries


def test_values_that_overflow_once_scaled_are_refused_like_sklearn_does() -> None:
    model = Pipeline([("scaler", StandardScaler()), ("svc", SVC())]).fit(X, Y)
    lean = compile_predict(model)
    assert lean is not None
    huge = np.array([[1.7e308, 3.0, 4.0, 1.0]])
    with pytest.raises(ValueError, match="infinity"):
        model.predict(huge)
    with pytest.raises(ValueError, match="infinity"):
        lean(huge)


def test_lean_predict_leaves_the_input_untouched() -> None:
    model = Pipeline([("scaler", StandardScaler()), ("svc", SVC())]).fit(X, Y)
    lean = compile_predict(model)
    assert lean is not None
    probe = X.copy()
    lean(probe)
    assert np.array_equal(probe, X)


@pytest.mark.parametrize(
    "model",
    [
        Pipeline([("scaler", MinMaxScaler()), ("svc", SVC())]),
        Pipeline([("scaler", StandardScaler()), ("lr", LogisticRegression())]),
        SVC(break_ties=True),
        SVC(kernel="precomputed"),
    ],
    ids=["unknown-transform", "unknown-final", "break-ties", "precomputed"],
)
def test_models_it_does_not_know_are_left_to_sklearn(model: Any) -> None:
    if getattr(model, "kernel", None) == "precomputed":
        model.fit(X @ X.T, Y)
    else:
        model.fit(X, Y)
    assert compile_predict(model) is None
