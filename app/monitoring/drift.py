"""Drift and live accuracy of the serving model, exported in /metrics.

`DriftMonitor` keeps a window of the most recent rows and predictions of the serving model
(added on the event loop as requests are answered: a deque append). Every DRIFT_INTERVAL
seconds a snapshot of the window is measured off the event loop, which sets, per feature,
the population stability index of the window against the baseline the trainer logged with
the model (model_serving.baseline), and the predicted class shares beside the training ones. A model
without a baseline serves without drift metrics.

`LiveAccuracy` remembers recent predictions by request id; labels sent to POST /feedback are
scored against them, over the last ACCURACY_WINDOW_ROWS labelled rows per model version.
"""

from __future__ import annotations

import logging
from collections import OrderedDict, deque
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
from prometheus_client import Gauge

from app.monitoring.metrics import Metrics
from model_serving import baseline

logger = logging.getLogger(__name__)


class DriftMonitor:
    """The window of one serving model's recent rows, and the drift gauges it sets."""

    def __init__(self, metrics: Metrics, window: int) -> None:
        self.metrics = metrics
        self.window = window
        self._key: tuple[str, str] | None = None
        self._baseline: dict[str, Any] | None = None
        self._names: tuple[str, ...] = ()
        self._rows: deque[np.ndarray] = deque()
        self._count = 0
        self._predictions: deque[Any] = deque(maxlen=window)
        self._series: list[tuple[Gauge, tuple[str, ...]]] = []

    def _switch(self, name: str, version: str, names: Sequence[str], meta: dict[str, Any]) -> None:
        """A new model serves: start its window; the old model's series go."""
        for gauge, labels in self._series:
            try:
                gauge.remove(*labels)
            except KeyError:
                pass
        self._series = []
        self._key = (name, version)
        self._names = tuple(names)
        self._rows.clear()
        self._count = 0
        self._predictions.clear()
        found = meta.get(baseline.METADATA_KEY)
        self._baseline = found if baseline.is_baseline(found) else None
        if self._baseline is None:
            logger.info("model %s %s has no drift baseline: no drift metrics", name, version)
            return
        for label, share in self._baseline["classes"].items():
            self._set(self.metrics.training_class_share, (name, version, str(label)), share)

    def _set(self, gauge: Gauge, labels: tuple[str, ...], value: float) -> None:
        gauge.labels(*labels).set(value)
        if (gauge, labels) not in self._series:
            self._series.append((gauge, labels))

    def add(
        self, key: tuple[str, str], names: Sequence[str], meta: dict[str, Any],
        rows: np.ndarray, predictions: list[Any],
    ) -> None:  # fmt: skip
        """Rows (a float matrix, columns in `names` order) and their predictions."""
        if key != self._key:
            self._switch(*key, names, meta)
        self._rows.append(rows)
        self._count += len(rows)
        while self._count - len(self._rows[0]) >= self.window:
            self._count -= len(self._rows.popleft())
        self._predictions.extend(predictions)

    def snapshot(self) -> DriftSnapshot | None:
        """(On the event loop, where rows are added) what the next computation works on."""
        if self._key is None or self._baseline is None or not self._rows:
            return None
        return DriftSnapshot(
            self._key, self._names, self._baseline, list(self._rows), list(self._predictions)
        )

    def measure(self, snap: DriftSnapshot) -> list[tuple[Gauge, tuple[str, ...], float]]:
        """(Anywhere: it reads only the snapshot) PSI per feature and predicted class shares."""
        name, version = snap.key
        window = np.concatenate(snap.rows)[-self.window :]
        features = snap.baseline["features"]
        values: list[tuple[Gauge, tuple[str, ...], float]] = []
        for i, feature in enumerate(snap.names):
            spec = features.get(feature)
            if spec is None:
                continue
            actual = baseline.shares(spec["edges"], window[:, i].tolist())
            psi = baseline.psi(spec["shares"], actual)
            values.append((self.metrics.feature_psi, (name, version, feature), psi))
        counts: dict[str, int] = {}
        for value in snap.predictions:
            counts[str(value)] = counts.get(str(value), 0) + 1
        total = len(snap.predictions)
        for label in set(counts) | set(snap.baseline["classes"]):
            share = counts.get(label, 0) / total if total else 0.0
            values.append((self.metrics.predicted_class_share, (name, version, label), share))
        return values

    def publish(
        self, snap: DriftSnapshot, values: list[tuple[Gauge, tuple[str, ...], float]]
    ) -> None:
        """(On the event loop) set the gauges, unless another model serves since."""
        if snap.key == self._key:
            for gauge, labels, value in values:
                self._set(gauge, labels, value)


class DriftSnapshot(NamedTuple):
    key: tuple[str, str]
    names: tuple[str, ...]
    baseline: dict[str, Any]
    rows: list[np.ndarray]
    predictions: list[Any]


class LiveAccuracy:
    """Recent predictions by request id, and accuracy over the labels sent for them."""

    def __init__(
        self, metrics: Metrics, window: int, remember: int = 100_000, rows: int = 1_000_000
    ) -> None:
        self.metrics = metrics
        self.window = window
        self.remember = remember
        self.rows = rows
        # The newest requests' predictions: up to `remember` requests and `rows` predictions
        # in all (1000-row requests once kept 100,000 of them, ~1 GB), alive for minutes.
        # Kept as tuples of atoms, which the cyclic GC stops tracking, or every full
        # collection walks them all (with lists: ~20 ms pauses several times a second under
        # load, the p99 of every request).
        self._recent: OrderedDict[str, tuple[str, str, tuple[Any, ...]]] = OrderedDict()
        self._kept = 0
        self._scores: dict[tuple[str, str], deque[bool]] = {}

    def add(self, request_id: str, key: tuple[str, str], predictions: list[Any]) -> None:
        recent = self._recent
        if (again := recent.pop(request_id, None)) is not None:  # a client reused its id
            self._kept -= len(again[2])
        recent[request_id] = (*key, tuple(predictions))
        self._kept += len(predictions)
        # The newest request stays, even alone over the bound (MAX_REQUEST_ROWS bounds it).
        while (len(recent) > self.remember or self._kept > self.rows) and len(recent) > 1:
            self._kept -= len(recent.popitem(last=False)[1][2])

    def predictions(self, request_id: str) -> tuple[str, str, Sequence[Any]] | None:
        return self._recent.get(request_id)

    def score(
        self, key: tuple[str, str], predictions: Sequence[Any], labels: list[Any]
    ) -> tuple[int, float]:
        """Count labels against predictions: how many were right, and the model version's
        accuracy now."""
        scores = self._scores.setdefault(key, deque(maxlen=self.window))
        right = [_same(p, y) for p, y in zip(predictions, labels, strict=True)]
        scores.extend(right)
        accuracy = sum(scores) / len(scores)
        self.metrics.live_accuracy.labels(*key).set(accuracy)
        self.metrics.live_accuracy_rows.labels(*key).set(len(scores))
        return sum(right), accuracy


def _same(prediction: Any, label: Any) -> bool:
    """Whether a label names the predicted class (2 == 2.0 == "2")."""
    if prediction == label:
        return True
    return str(prediction) == str(label) or _number(prediction) == _number(label) is not None


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
