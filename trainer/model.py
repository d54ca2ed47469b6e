"""The pure part of training: split, build the pipeline, fit, evaluate. No MLflow here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import pandas as pd
from sklearn.metrics import accuracy_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from trainer.data import Dataset
from trainer.errors import TrainerError
from trainer.hyper import HyperParams


class Predictor(Protocol):
    """A fitted pipeline or an MLflow pyfunc model: anything that predicts."""

    def predict(self, x: pd.DataFrame) -> Any: ...


@dataclass(frozen=True)
class Split:
    x_train: pd.DataFrame
    x_valid: pd.DataFrame
    y_train: pd.Series
    y_valid: pd.Series


@dataclass(frozen=True)
class Scores:
    train_acc: float
    valid_acc: float

    def as_metrics(self) -> dict[str, float]:
        return {"train_acc": self.train_acc, "valid_acc": self.valid_acc}


def split(data: Dataset, *, train_size: float = 0.8, random_state: int = 2022) -> Split:
    """The seed's split: train_test_split(train_size=0.8, random_state=2022) by default."""
    try:
        x_train, x_valid, y_train, y_valid = train_test_split(
            data.features, data.labels, train_size=train_size, random_state=random_state
        )
    except ValueError as exc:
        raise TrainerError(
            f"cannot split {len(data.labels)} rows with train size {train_size}: {exc}"
        ) from None
    return Split(x_train, x_valid, y_train, y_valid)


def build_pipeline(hyper: HyperParams) -> Pipeline:
    """StandardScaler then SVC, unfitted."""
    return Pipeline(
        [
            ("scaler", StandardScaler()),
            ("svc", SVC(C=hyper.C, kernel=hyper.kernel, gamma=hyper.gamma)),
        ]
    )


def fit(pipeline: Pipeline, x: pd.DataFrame, y: pd.Series) -> Pipeline:
    """Fit in place and return the pipeline; a label with a single class is refused."""
    classes = y.nunique()
    if classes < 2:
        raise TrainerError(
            f"the training labels have {classes} class(es) ({y.name!r}); at least 2 are needed"
        )
    return pipeline.fit(x, y)


def accuracy(model: Predictor, x: pd.DataFrame, y: pd.Series) -> float:
    """Share of rows whose prediction equals the label."""
    return float(accuracy_score(y, model.predict(x)))


def evaluate(model: Predictor, parts: Split) -> Scores:
    """Train and validation accuracy of a fitted model."""
    return Scores(
        train_acc=accuracy(model, parts.x_train, parts.y_train),
        valid_acc=accuracy(model, parts.x_valid, parts.y_valid),
    )


def train(
    data: Dataset, hyper: HyperParams, *, train_size: float = 0.8, random_state: int = 2022
) -> tuple[Pipeline, Split, Scores]:
    """Split, fit and evaluate in one call."""
    parts = split(data, train_size=train_size, random_state=random_state)
    pipeline = fit(build_pipeline(hyper), parts.x_train, parts.y_train)
    return pipeline, parts, evaluate(pipeline, parts)
