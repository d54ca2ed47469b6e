"""`report`: an HTML drift and accuracy report of logged predictions against the training rows.

Made with Evidently (the `[report]` extra): its DataDriftPreset compares each feature of the
logged predictions with the served run's training rows; its ClassificationPreset scores the
predictions that got a true label through feedback. Both go into one self-contained HTML file,
under a header that says what was compared.

Beside Evidently's verdicts, the summary has each feature's PSI against the baseline the run
logged with its model, computed as the API's recording rules compute it (model_serving.baseline):
on the same rows, the report and Prometheus' `feature_drift_psi` agree to float precision, and
the live accuracy likewise.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from evidently import DataDefinition, Dataset, MulticlassClassification, Report
from evidently.core.report import Snapshot
from evidently.legacy.renderers.html_widgets import CounterData, counter, text_widget
from evidently.presets import ClassificationPreset, DataDriftPreset

from model_serving import baseline
from trainer.errors import TrainerError
from trainer.predictions import LABEL, PREDICTION, Logged
from trainer.tracking import TrainingRows

DRIFT_COUNT = "evidently:metric_v2:DriftedColumnsCount"


@dataclass(frozen=True)
class Summary:
    """What the report found, as `report` prints it."""

    output: str
    run_id: str
    model: str
    predictions: int
    first: str
    last: str
    other_runs: int
    features: list[str]
    drifted_features: int
    feedback_rows: int
    live_accuracy: float | None
    psi: dict[str, float] | None
    """Each feature's PSI against the model's drift baseline (None: the run logged none)."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def line(self) -> str:
        accuracy = (
            f"live accuracy {self.live_accuracy:.3f} on {self.feedback_rows} rows with feedback"
            if self.live_accuracy is not None
            else "no feedback yet"
        )
        return (
            f"wrote {self.output}: {self.predictions} predictions of run {self.run_id}"
            f" ({self.first} to {self.last}); drift in {self.drifted_features} of"
            f" {len(self.features)} features; {accuracy}"
        )


def current_features(logged: Logged, training: TrainingRows) -> pd.DataFrame:
    """The logged features in the training rows' column order, as floats."""
    features = training.features
    absent = [f for f in features if f not in logged.features.columns]
    if absent:
        raise TrainerError(
            f"the predictions logged for run {logged.run_id} have no feature {', '.join(absent)}"
            " of its training data"
        )
    try:
        return logged.features[features].astype("float64")
    except (TypeError, ValueError):
        raise TrainerError(
            f"the predictions logged for run {logged.run_id} have non-numeric feature values"
        ) from None


def drift(current: pd.DataFrame, reference: pd.DataFrame) -> Snapshot:
    """Evidently's DataDriftPreset of every feature: logged rows against training rows."""
    columns = list(current.columns)
    definition = DataDefinition(numerical_columns=columns)
    return Report([DataDriftPreset(columns=columns)]).run(
        Dataset.from_pandas(current, data_definition=definition),
        Dataset.from_pandas(reference[columns], data_definition=definition),
    )


def classification(feedback: pd.DataFrame) -> Snapshot:
    """Evidently's ClassificationPreset of the predictions that have a true label."""
    definition = DataDefinition(
        categorical_columns=[LABEL, PREDICTION],
        classification=[MulticlassClassification(target=LABEL, prediction_labels=PREDICTION)],
    )
    return Report([ClassificationPreset()]).run(
        Dataset.from_pandas(feedback.reset_index(drop=True), data_definition=definition), None
    )


def drifted_count(snapshot: Snapshot) -> int:
    for metric in snapshot.dict()["metrics"]:
        if metric.get("config", {}).get("type") == DRIFT_COUNT:
            return int(metric["value"]["count"])
    raise TrainerError("Evidently's drift report has no drifted-columns count")  # pragma: no cover


def psi(current: pd.DataFrame, drift_baseline: dict[str, Any] | None) -> dict[str, float] | None:
    """Each feature's PSI against the baseline's training shares, as the API's rules compute
    it: values that are not finite are in no bin."""
    if drift_baseline is None:
        return None
    found = {}
    for feature, spec in drift_baseline["features"].items():
        if feature in current.columns:
            values = [v for v in current[feature].tolist() if np.isfinite(v)]
            found[feature] = baseline.psi(spec["shares"], baseline.shares(spec["edges"], values))
    return found


def build(
    logged: Logged,
    training: TrainingRows,
    output: Path,
    drift_baseline: dict[str, Any] | None = None,
) -> Summary:
    """Write the report to `output` and say what it found."""
    current = current_features(logged, training)
    drift_snapshot = drift(current, training.frame)
    feedback = logged.feedback
    accuracy = float((feedback[PREDICTION] == feedback[LABEL]).mean()) if len(feedback) else None
    summary = Summary(
        output=str(output),
        run_id=logged.run_id,
        model=logged.model,
        predictions=len(current),
        first=logged.first.isoformat(timespec="seconds"),
        last=logged.last.isoformat(timespec="seconds"),
        other_runs=logged.other_runs,
        features=list(current.columns),
        drifted_features=drifted_count(drift_snapshot),
        feedback_rows=len(feedback),
        live_accuracy=accuracy,
        psi=psi(current, drift_baseline),
    )
    combined = drift_snapshot.to_snapshot_model()
    combined.widgets = [header(summary, len(training.frame)), *combined.widgets]
    if len(feedback):
        quality = classification(feedback).to_snapshot_model()
        combined.widgets += quality.widgets
        combined.metric_results.update(quality.metric_results)
        combined.top_level_metrics += quality.top_level_metrics
    else:
        combined.widgets.append(
            text_widget(
                title="Live accuracy",
                text="No logged prediction of this run has a true label yet: send them to the"
                " API's `POST /feedback` for live accuracy.",
            )
        )
    try:
        Snapshot.load_model(combined).save_html(str(output))
    except OSError as exc:
        raise TrainerError(f"cannot write {output}: {exc.strerror or exc}") from None
    return summary


def header(summary: Summary, training_rows: int) -> Any:
    """The report's first panel: which model, which period, how many rows, live accuracy."""
    accuracy = (
        CounterData.string("live accuracy", f"{summary.live_accuracy:.3f}")
        if summary.live_accuracy is not None
        else CounterData.string("live accuracy", "no feedback")
    )
    others = f"; {summary.other_runs} rows of other runs left out" if summary.other_runs else ""
    return counter(
        title=(
            f"{summary.model} (run {summary.run_id}): predictions logged from {summary.first}"
            f" to {summary.last} against its {training_rows} training rows{others}"
        ),
        counters=[
            CounterData.int("predictions", summary.predictions),
            CounterData.int("drifted features", summary.drifted_features),
            CounterData.int("with feedback", summary.feedback_rows),
            accuracy,
        ],
    )
