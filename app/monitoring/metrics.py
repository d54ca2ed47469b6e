"""Prometheus metrics of the service, in a registry of their own (one per app instance)."""

from __future__ import annotations

import collections
import os
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.multiprocess import MultiProcessCollector

SHARED_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
"""The folder the workers under one supervisor share: prometheus-client's multiprocess files, and
the workers' own marks (app.serving.workers)."""

# Sub-millisecond buckets: a small sklearn model answers in well under 1 ms.
LATENCY_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
)  # fmt: skip
CONTENT_TYPE = CONTENT_TYPE_LATEST
# The *_created series double the exposition for no use on a dashboard.
disable_created_metrics()


class Metrics:
    """Every metric the service exports. Model metrics are labelled by model name and version."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self._http(self.registry)
        self._model(self.registry)
        self._monitoring(self.registry)
        self._shadow(self.registry)
        self._info_labels: tuple[str, ...] | None = None
        # labels() costs a lock and a validation per call: keep the children per key.
        self._http_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def _http(self, r: CollectorRegistry) -> None:
        self.requests = Counter(
            "http_requests", "HTTP requests answered, by route, method and status.",
            ["route", "method", "status"], registry=r,
        )  # fmt: skip
        self.request_seconds = Histogram(
            "http_request_duration_seconds", "Time to answer an HTTP request, by route.",
            ["route"], buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.predict_seconds = Histogram(
            "prediction_duration_seconds",
            "Time spent in the model's predict calls (one call may answer several requests).",
            ["model", "version"], buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.rows = Counter(
            "predicted_rows", "Rows (records) predicted.", ["model", "version"], registry=r
        )
        self.classes = Counter(
            "predictions_by_class", "Predictions by predicted class (classifiers only).",
            ["model", "version", "class_"], registry=r,
        )  # fmt: skip

    def _model(self, r: CollectorRegistry) -> None:
        self.load_seconds = Gauge(
            "model_load_duration_seconds", "How long loading the serving model took.",
            ["model", "version"], registry=r, multiprocess_mode="livemax",
        )  # fmt: skip
        self.load_failures = Counter(
            "model_load_failures", "Failed attempts to load a model.", registry=r
        )
        self.reloads = Counter(
            "model_reloads", "Reloads, by result: success, unchanged, failure.",
            ["result"], registry=r,
        )  # fmt: skip
        self.model_info = Gauge(
            "model_info", "The model being served (value 1), by identity.",
            ["model", "version", "alias", "run_id", "uri"], registry=r,
            multiprocess_mode="livemax",
        )  # fmt: skip
        self.ready = Gauge(
            "model_ready", "1 when a model is loaded and serving (in every worker).",
            registry=r, multiprocess_mode="livemin",
        )  # fmt: skip
        self.source = Gauge(
            "model_source", "Where the serving model came from (1): registry or cache.",
            ["source"], registry=r, multiprocess_mode="livemax",
        )  # fmt: skip
        self.registry_reachable = Gauge(
            "model_registry_reachable",
            "1 while the tracking server and artifact store answer the API, 0 since they did not.",
            registry=r, multiprocess_mode="livemin",
        )  # fmt: skip

    def _monitoring(self, r: CollectorRegistry) -> None:
        """Drift and live accuracy as counts (they add up over workers and replicas: the PSI and
        the accuracy are computed from them by Prometheus' recording rules), the baseline they
        are compared with, and the prediction log."""
        baseline = {"registry": r, "multiprocess_mode": "livemax"}
        self.drift_rows = Counter(
            "drift_bin_rows",
            "Rows served, by feature and the training decile bin (0-9) its value fell in.",
            ["model", "version", "feature", "bin"], registry=r,
        )  # fmt: skip
        self.baseline_share = Gauge(
            "drift_baseline_share", "Share of the training rows in each feature's decile bin.",
            ["model", "version", "feature", "bin"], **baseline,  # type: ignore[arg-type]
        )  # fmt: skip
        self.baseline_rows = Gauge(
            "drift_baseline_rows", "Training rows the drift baseline was computed from.",
            ["model", "version"], **baseline,  # type: ignore[arg-type]
        )  # fmt: skip
        self.psi_chi2 = Gauge(
            "drift_psi_chi2_critical",
            "The chi-square quantile no-drift PSI stays under (times 1/rows + 1/training rows),"
            " at DRIFT_ALERT_ALPHA over all the model's features.",
            ["model", "version"], **baseline,  # type: ignore[arg-type]
        )  # fmt: skip
        self.training_class_share = Gauge(
            "training_class_share", "Share of each class in the model's training rows.",
            ["model", "version", "class_"], **baseline,  # type: ignore[arg-type]
        )  # fmt: skip
        self.feedback_rows = Counter(
            "feedback_rows", "Labelled rows (POST /feedback), by outcome: right or wrong.",
            ["model", "version", "outcome"], registry=r,
        )  # fmt: skip
        self.log_queue = Gauge(
            "prediction_log_queue_rows", "Rows waiting to be written to the prediction log.",
            registry=r, multiprocess_mode="livesum",
        )  # fmt: skip
        self.log_written = Counter(
            "prediction_log_rows_written", "Rows written to the prediction log.", registry=r
        )
        self.log_dropped = Counter(
            "prediction_log_rows_dropped",
            "Rows not logged because the queue was full (the database slow or down).",
            registry=r,
        )  # fmt: skip
        self.log_failures = Counter(
            "prediction_log_write_failures", "Failed writes to the prediction log (retried).",
            registry=r,
        )  # fmt: skip

    def _shadow(self, r: CollectorRegistry) -> None:
        """The shadow model (SHADOW_MODEL_URI) beside the served one: counts by version pair
        (the served model's name and version, the shadow's), so that agreement and accuracy
        over the fleet are recording rules on them."""
        pair = ["model", "version", "shadow_model", "shadow_version"]
        self.shadow_info = Gauge(
            "shadow_model_info", "The shadow model (value 1), by identity.",
            ["shadow_model", "shadow_version", "alias", "run_id", "uri"], registry=r,
            multiprocess_mode="livemax",
        )  # fmt: skip
        self.shadow_rows = Counter(
            "shadow_rows", "Served rows the shadow model predicted too, by version pair.",
            pair, registry=r,
        )  # fmt: skip
        self.shadow_agreeing = Counter(
            "shadow_agreeing_rows",
            "Shadowed rows where the shadow's prediction equals the served one.", pair, registry=r,
        )  # fmt: skip
        self.shadow_dropped = Counter(
            "shadow_rows_dropped",
            "Rows of sampled requests not shadowed: SHADOW_QUEUE_ROWS rows were waiting.",
            registry=r,
        )  # fmt: skip
        self.shadow_failures = Counter(
            "shadow_failed_rows",
            "Rows the shadow model failed to predict (it raised, or answered another number).",
            ["shadow_model", "shadow_version"], registry=r,
        )  # fmt: skip
        self.shadow_feedback = Counter(
            "shadow_feedback_rows",
            "Labelled rows (POST /feedback) both models predicted, by version pair and by the"
            " served and the shadow prediction's outcome (right or wrong): a paired table.",
            [*pair, "served", "shadow"], registry=r,
        )  # fmt: skip
        self.shadow_reloads = Counter(
            "shadow_model_reloads", "Reloads of the shadow model, by result.",
            ["result"], registry=r,
        )  # fmt: skip
        self.shadow_load_failures = Counter(
            "shadow_model_load_failures", "Failed attempts to load the shadow model.",
            registry=r,
        )  # fmt: skip
        self._shadow_labels: tuple[str, ...] | None = None

    def observe_shadow(self, identity: dict[str, Any]) -> None:
        """Record that the model with this identity is now the shadow."""
        if self._shadow_labels is not None:
            self.shadow_info.labels(*self._shadow_labels).set(0)
        self._shadow_labels = (
            identity["name"], identity.get("version") or "", identity.get("alias") or "",
            identity.get("run_id") or "", identity["uri"],
        )  # fmt: skip
        self.shadow_info.labels(*self._shadow_labels).set(1)

    def count_request(self, route: str, method: str, status: int, seconds: float) -> None:
        """One HTTP answer, by route template, method and status."""
        key = (route, method, status)
        children = self._http_children.get(key)
        if children is None:
            children = self._http_children[key] = (
                self.requests.labels(route, method, str(status)),
                self.request_seconds.labels(route),
            )
        children[0].inc()
        children[1].observe(seconds)

    def observe_model(self, identity: dict[str, Any], load_seconds: float) -> None:
        """Record that the model with this identity is now the one serving."""
        if self._info_labels is not None:
            # Not clear(): with several workers the old series lives on in their shared files.
            self.model_info.labels(*self._info_labels).set(0)
        name, version = identity["name"], identity.get("version") or ""
        alias, run_id = identity.get("alias") or "", identity.get("run_id") or ""
        self._info_labels = (name, version, alias, run_id, identity["uri"])
        self.model_info.labels(*self._info_labels).set(1)
        self.load_seconds.labels(name, version).set(load_seconds)
        self.ready.set(1)

    def observe_source(self, source: str) -> None:
        """The serving model came from `source` (registry or cache)."""
        for name in ("registry", "cache"):
            self.source.labels(name).set(1 if name == source else 0)

    def for_model(self, name: str, version: str, classifier: bool) -> ModelMetrics:
        return ModelMetrics(self, name, version, classifier)

    def render(self) -> bytes:
        """The exposition: of this process, or of all workers in multiprocess mode."""
        if os.environ.get(SHARED_DIR_ENV):
            registry = CollectorRegistry()
            MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)


class ModelMetrics:
    """One model's prediction metrics, label children bound once (they are hit per request)."""

    def __init__(self, metrics: Metrics, name: str, version: str, classifier: bool) -> None:
        self._metrics, self._name, self._version = metrics, name, version
        self._seconds = metrics.predict_seconds.labels(name, version)
        self._rows = metrics.rows.labels(name, version)
        self._classifier = classifier
        self._classes: dict[Any, Any] = {}

    def observe(self, predictions: list[Any], seconds: float) -> None:
        self._seconds.observe(seconds)
        self._rows.inc(len(predictions))
        if not self._classifier:
            return
        try:  # Counter counts in C: a 1000-row answer costs ~20 us, not ~100 us of a loop
            counts = (
                collections.Counter(predictions) if len(predictions) != 1 else {predictions[0]: 1}
            )
        except TypeError:  # unhashable predictions (lists, dicts) are not classes
            return
        for value, n in counts.items():
            child = self._classes.get(value)
            if child is None:
                label = str(value)
                child = self._classes[value] = self._metrics.classes.labels(
                    self._name, self._version, label
                )
            child.inc(n)
