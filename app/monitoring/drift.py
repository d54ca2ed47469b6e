"""Drift of the serving model's inputs, as counts that add up over workers and replicas.

Per model version, feature and training decile bin, a counter of the rows served
(`drift_bin_rows_total`); beside it, once per version, the baseline the trainer logged with the
model (model_serving.baseline): each bin's training share, the training rows, and the
chi-square quantile the alert's threshold is made of. Prometheus' recording rules
(monitoring/prometheus/rules) compute the PSI per feature over a window from the counts summed
over every process: one answer however many serve. A model without a baseline serves without
drift metrics.

A request pays an append (on the event loop); the rows are binned and counted off the request
path, every quarter second, by the recorder's task.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from statistics import NormalDist
from typing import Any

import numpy as np

from app.monitoring.metrics import Metrics
from model_serving import baseline

logger = logging.getLogger(__name__)


def chi2_quantile(p: float, df: int) -> float:
    """The p-quantile of chi-square(df), by Wilson and Hilferty's cube-root normal approximation
    (within 1% for df >= 3 and p up to 1 - 1e-6)."""
    z = NormalDist().inv_cdf(p)
    return df * (1 - 2 / (9 * df) + z * math.sqrt(2 / (9 * df))) ** 3


def psi_chi2_critical(alpha: float, features: int, bins: int = baseline.BINS) -> float:
    """The chi-square critical value of no-drift PSI: under no drift, PSI between n live and m
    training rows over `bins` bins goes as chi-square(bins - 1) x (1/n + 1/m); testing every
    feature at alpha / features (Bonferroni) keeps the chance of any false alarm under alpha."""
    return chi2_quantile(1 - alpha / max(features, 1), bins - 1)


class _Feature:
    """One feature's bin edges and counters."""

    __slots__ = ("name", "edges", "counters")

    def __init__(self, name: str, edges: Sequence[float], counters: list[Any]) -> None:
        self.name = name
        self.edges = np.asarray(edges, dtype=np.float64)
        self.counters = counters


class DriftCounter:
    """Counts the serving model's rows per feature and baseline bin."""

    def __init__(self, metrics: Metrics, alpha: float, enabled: bool = True) -> None:
        self.metrics = metrics
        self.alpha = alpha
        self.enabled = enabled
        self._key: tuple[str, str] | None = None
        self._features: dict[str, _Feature] = {}
        # Where each feature is among the columns of the rows, per column order seen.
        self._columns: dict[tuple[str, ...], list[tuple[_Feature, int]]] = {}
        self._pending: list[tuple[np.ndarray, tuple[str, ...]]] = []

    def serve(self, name: str, version: str, meta: dict[str, Any]) -> None:
        """A model serves: bind its counters and export its baseline. The counters start at 0 in
        every bin, before any request, so that a window's count of a bin nobody hit is 0, not
        absent."""
        if self._key == (name, version):
            return
        self.flush()
        self._key, self._features, self._columns = (name, version), {}, {}
        found: dict[str, Any] = meta.get(baseline.METADATA_KEY) or {}
        if not self.enabled:
            return
        if not baseline.is_baseline(found):
            logger.info("model %s %s has no drift baseline: no drift metrics", name, version)
            return
        m = self.metrics
        for label, share in found["classes"].items():
            m.training_class_share.labels(name, version, str(label)).set(share)
        for feature, spec in found["features"].items():
            counters = []
            for b, share in enumerate(spec["shares"]):
                m.baseline_share.labels(name, version, feature, str(b)).set(share)
                counters.append(m.drift_rows.labels(name, version, feature, str(b)))
            self._features[feature] = _Feature(feature, spec["edges"], counters)
        m.baseline_rows.labels(name, version).set(found.get("rows") or 0)
        m.psi_chi2.labels(name, version).set(psi_chi2_critical(self.alpha, len(self._features)))

    def add(
        self, key: tuple[str, str], names: Sequence[str], meta: dict[str, Any], rows: np.ndarray
    ) -> None:
        """(On the event loop) rows, a float matrix with columns in `names` order."""
        if key != self._key:
            self.serve(*key, meta)
        if self._features:
            self._pending.append((rows, names if isinstance(names, tuple) else tuple(names)))

    def flush(self) -> None:
        """Bin what was added and count it. A value that is not finite is in no bin."""
        pending, self._pending = self._pending, []
        if not pending or not self._features:
            return
        by_names: dict[tuple[str, ...], list[np.ndarray]] = {}
        for rows, names in pending:
            by_names.setdefault(names, []).append(rows)
        for names, matrices in by_names.items():
            rows = matrices[0] if len(matrices) == 1 else np.concatenate(matrices)
            for feature, column in self._where(names):
                values = rows[:, column]
                values = values[np.isfinite(values)]
                # Bin i holds edges[i-1] < v <= edges[i]: numpy's side="left", as bisect_left.
                counts = np.bincount(
                    np.searchsorted(feature.edges, values, side="left"),
                    minlength=len(feature.counters),
                )
                for counter, n in zip(feature.counters, counts.tolist(), strict=True):
                    if n:
                        counter.inc(n)

    def _where(self, names: tuple[str, ...]) -> list[tuple[_Feature, int]]:
        where = self._columns.get(names)
        if where is None:
            where = self._columns[names] = [
                (self._features[n], i) for i, n in enumerate(names) if n in self._features
            ]
        return where
