"""The iris facts the tests share, each spelled once: the model's feature names (the trained
signature, in order), one example flower, and the data set as records of those features.

Tests compare what the trainer and the app produce against these, so they are written out
here rather than imported from `trainer.data`."""

from __future__ import annotations

FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")
# The seed's example flower (class 2).
IRIS_EXAMPLE: dict[str, float] = dict(zip(FEATURES, (6.7, 3.3, 5.7, 2.1), strict=True))


def iris_data() -> tuple[list[dict[str, float]], list[int]]:
    """scikit-learn's 150 iris rows as records of FEATURES, and their true labels."""
    from sklearn.datasets import load_iris

    data = load_iris()
    records = [dict(zip(FEATURES, map(float, row), strict=True)) for row in data.data]
    return records, [int(y) for y in data.target]
