"""Without SVC's libsvm predict, an SVC pipeline is served through its own `predict`: the
same predictions as MLflow's, with scikit-learn's validation on every call."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from app.compat import sklearn as sklearn_compat
from tests.app.compat.conftest import Forcing, fallback_warnings
from tests.app.conftest import AppFactory


def test_the_lean_path_serves_the_svc_on_the_locked_scikit_learn(serve: AppFactory) -> None:
    with serve() as client:
        assert client.get("/model-info").json()["predict_path"] == "lean"


def test_without_it_the_estimators_own_predict_serves_the_same_answers(
    serve: AppFactory,
    iris_records: list[dict[str, float]],
    reference: Callable[[list[dict[str, float]]], list[Any]],
    force_fallback: Forcing,
    caplog: pytest.LogCaptureFixture,
) -> None:
    force_fallback(sklearn_compat, sklearn_compat.supported)
    with serve() as client:
        assert client.get("/model-info").json()["predict_path"] == "estimator"
        answer = client.post("/predict", json={"records": iris_records})
    assert answer.status_code == 200
    assert answer.json()["predictions"] == reference(iris_records)
    assert len(fallback_warnings(caplog, "scikit-learn")) == 1
