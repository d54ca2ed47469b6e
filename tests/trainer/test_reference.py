"""The drift baseline of the training rows: deciles, shares per bin, class shares."""

from __future__ import annotations

import json

import numpy as np
import pytest

from model_serving import baseline as fmt
from trainer import data, model, reference


@pytest.fixture(scope="module")
def parts() -> model.Split:
    iris = data.to_dataset(data.iris_frame(), label="target", origin="iris")
    return model.split(iris)


def test_the_baseline_has_the_shared_format_and_counts_the_training_rows(
    parts: model.Split,
) -> None:
    b = reference.baseline(parts.x_train, parts.y_train)
    assert fmt.is_baseline(b)
    assert b["rows"] == 120
    assert list(b["features"]) == list(data.IRIS_FEATURES)
    for name, feature in b["features"].items():
        assert len(feature["edges"]) == fmt.BINS - 1
        assert feature["edges"] == sorted(feature["edges"])
        assert feature["edges"][4] == pytest.approx(parts.x_train[name].median())
        assert len(feature["shares"]) == fmt.BINS
        assert sum(feature["shares"]) == pytest.approx(1.0)
    counts = parts.y_train.value_counts()
    assert b["classes"] == {str(k): counts[k] / 120 for k in (0, 1, 2)}
    json.dumps(b)  # plain numbers: it goes to YAML (MLmodel) and JSON (baseline.json)


def test_training_rows_show_no_drift_and_shifted_rows_do(parts: model.Split) -> None:
    """The point of the baseline: PSI of the training rows against it is ~0; rows shifted by
    one standard deviation score far above the 0.2 that means the population moved."""
    b = reference.baseline(parts.x_train, parts.y_train)
    for name, feature in b["features"].items():
        values = parts.x_train[name].to_numpy()
        same = fmt.psi(feature["shares"], fmt.shares(feature["edges"], values))
        shifted = fmt.psi(feature["shares"], fmt.shares(feature["edges"], values + values.std()))
        assert same == pytest.approx(0.0, abs=1e-12), name
        assert shifted > 0.2, (name, shifted)


def test_continuous_values_fill_the_ten_bins_evenly() -> None:
    rng = np.random.default_rng(7)
    x = data.to_dataset(
        data.iris_frame().assign(sepal_length=rng.normal(size=150)), label="target", origin="t"
    )
    b = reference.baseline(x.features, x.labels)
    assert b["features"]["sepal_length"]["shares"] == pytest.approx([0.1] * 10, abs=0.01)


def test_training_rows_are_features_then_the_label(parts: model.Split) -> None:
    rows = reference.training_rows(parts.x_train, parts.y_train)
    assert list(rows.columns) == [*data.IRIS_FEATURES, "target"]
    assert rows.shape == (120, 5)
    assert (rows["target"].to_numpy() == parts.y_train.to_numpy()).all()
