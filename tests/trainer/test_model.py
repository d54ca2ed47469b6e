"""The pure training functions on iris: split, fit, evaluate."""

from __future__ import annotations

import pandas as pd
import pytest

from trainer import data, model
from trainer.errors import TrainerError


@pytest.fixture(scope="module")
def iris() -> data.Dataset:
    return data.load(data.parse_source("iris"), label="target", table="", limit=0)


def test_the_seed_split_is_80_20_and_deterministic(iris: data.Dataset) -> None:
    first = model.split(iris)
    second = model.split(iris)
    assert (len(first.x_train), len(first.x_valid)) == (120, 30)
    assert list(first.x_valid.index) == list(second.x_valid.index)
    other = model.split(iris, random_state=7)
    assert list(other.x_valid.index) != list(first.x_valid.index)


def test_fit_and_evaluate_iris_gives_a_good_deterministic_accuracy(iris: data.Dataset) -> None:
    pipeline, parts, scores = model.train(iris, model.HyperParams())
    assert list(pipeline.named_steps) == ["scaler", "svc"]
    assert 0.9 <= scores.train_acc <= 1.0
    assert 0.85 <= scores.valid_acc <= 1.0
    _, _, again = model.train(iris, model.HyperParams())
    assert again == scores
    assert scores.as_metrics() == {"train_acc": scores.train_acc, "valid_acc": scores.valid_acc}


def test_hyper_parameters_reach_the_svc(iris: data.Dataset) -> None:
    hyper = model.HyperParams(C=0.5, kernel="linear", gamma=0.1)
    pipeline = model.build_pipeline(hyper)
    svc = pipeline.named_steps["svc"]
    assert (svc.C, svc.kernel, svc.gamma) == (0.5, "linear", 0.1)
    _, _, scores = model.train(iris, hyper, train_size=0.5)
    assert scores.valid_acc > 0.8


def test_a_single_class_label_is_refused_clearly() -> None:
    frame = data.iris_frame().assign(target=0)
    one_class = data.to_dataset(frame, label="target", origin="test")
    with pytest.raises(TrainerError, match="1 class"):
        model.train(one_class, model.HyperParams())


def test_too_few_rows_to_split_is_refused_clearly() -> None:
    tiny = data.to_dataset(pd.DataFrame({"x": [1.0], "target": [0]}), label="target", origin="t")
    with pytest.raises(TrainerError, match="cannot split 1 rows"):
        model.split(tiny)
