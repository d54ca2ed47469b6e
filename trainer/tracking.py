"""The thin MLflow shell: tracking store, experiment, run, logging, registry, loading."""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from importlib.metadata import version as installed_version
from pathlib import Path
from typing import Any

import mlflow
import mlflow.sklearn
import pandas as pd
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST, ErrorCode
from mlflow.pyfunc import PyFuncModel

from model_serving import baseline
from model_serving.stores import embedded_artifact_uri, embedded_dir, embedded_tracking_uri
from trainer import model, reference
from trainer.data import Dataset
from trainer.errors import TrainerError, first_line, redact
from trainer.hyper import HyperParams

logger = logging.getLogger(__name__)

# MLflow retries an unreachable server for minutes by default; fail fast unless told otherwise.
# Its download progress bars would be the only output of `report` on stderr: off by default.
ENV_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
}
# What loading the logged pipeline needs, pinned to the versions it was trained with. Listed
# rather than inferred: MLflow's inference re-imports the model in a subprocess (~3 s) and picks
# up whatever else happens to be loaded (pytest, rich).
MODEL_REQUIREMENTS = ("scikit-learn", "skops", "scipy", "numpy", "pandas")


def model_requirements() -> list[str]:
    """pip requirements of the logged model (MLflow adds its own pin)."""
    return [f"{name}=={installed_version(name)}" for name in MODEL_REQUIREMENTS]


@dataclass(frozen=True)
class Target:
    """The tracking store in use; `embedded` when it is the default SQLite file."""

    uri: str
    embedded: bool


def configure() -> Target:
    """Point MLflow at MLFLOW_TRACKING_URI, or at the embedded store (creating its folder)."""
    for name, value in ENV_DEFAULTS.items():
        os.environ.setdefault(name, value)
    uri = os.environ.get("MLFLOW_TRACKING_URI", "").strip()
    if uri:
        mlflow.set_tracking_uri(uri)
        return Target(uri, embedded=False)
    embedded_dir().mkdir(parents=True, exist_ok=True)
    uri = embedded_tracking_uri()
    mlflow.set_tracking_uri(uri)
    return Target(uri, embedded=True)


@contextlib.contextmanager
def translated_errors(target: Target) -> Iterator[None]:
    """Turn MLflow's (and its stores') exceptions into one-line TrainerErrors."""
    try:
        yield
    except MlflowException as exc:
        text = str(exc.message).strip()
        if text.startswith("API request to") and "failed with exception" in text:
            raise TrainerError(
                f"cannot reach the MLflow tracking server at {redact(target.uri)}"
            ) from None
        raise TrainerError(f"MLflow: {first_line(text)}") from None
    except OSError as exc:
        raise TrainerError(f"MLflow storage: {first_line(str(exc))}") from None


@dataclass
class TrainingJob:
    """Everything train needs besides the data loader."""

    experiment: str
    model_name: str
    hyper: HyperParams
    train_size: float
    random_state: int
    data_params: Mapping[str, str | int]
    data_out: Path
    registered_name: str | None = None
    alias: str | None = None


@dataclass
class TrainResult:
    run_id: str | None
    experiment_id: str | None
    model_name: str
    model_uri: str | None
    registered_name: str | None
    version: str | None
    alias: str | None
    registered_model_uri: str | None
    metrics: dict[str, float] = field(default_factory=dict)
    skipped: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def find_alias(name: str, alias: str) -> ModelVersion | None:
    """The version `name@alias` points at, or None if the model or the alias does not exist."""
    client = mlflow.MlflowClient()
    try:
        registered = client.get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code == ErrorCode.Name(RESOURCE_DOES_NOT_EXIST):
            return None
        raise
    version = registered.aliases.get(alias)
    return None if version is None else client.get_model_version(name, str(version))


def existing(job: TrainingJob) -> TrainResult | None:
    """What `models:/<name>@<alias>` already resolves to, as a skipped result, if anything."""
    assert job.registered_name and job.alias
    version = find_alias(job.registered_name, job.alias)
    if version is None:
        return None
    metrics: dict[str, float] = {}
    experiment_id = None
    if version.run_id:
        run = mlflow.MlflowClient().get_run(version.run_id)
        metrics = {k: v for k, v in run.data.metrics.items() if k in ("train_acc", "valid_acc")}
        experiment_id = run.info.experiment_id
    return TrainResult(
        run_id=version.run_id,
        experiment_id=experiment_id,
        model_name=job.model_name,
        model_uri=f"runs:/{version.run_id}/{job.model_name}" if version.run_id else None,
        registered_name=job.registered_name,
        version=str(version.version),
        alias=job.alias,
        registered_model_uri=f"models:/{job.registered_name}@{job.alias}",
        metrics=metrics,
        skipped=True,
    )


def ensure_experiment(name: str, target: Target) -> str:
    """The experiment's id, created if missing (under .mlflow/artifacts on the embedded store)."""
    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        if experiment.lifecycle_stage == "deleted":
            raise TrainerError(f"experiment {name!r} is deleted: restore it or use another name")
        return str(experiment.experiment_id)
    location = embedded_artifact_uri() if target.embedded else None
    return str(client.create_experiment(name, artifact_location=location))


def train(job: TrainingJob, load: Callable[[], Dataset], target: Target) -> TrainResult:
    """Log one training run; the data is loaded inside it so that any failure marks it FAILED.

    The model is registered (and aliased) only after the run finished successfully.
    """
    experiment_id = ensure_experiment(job.experiment, target)
    with mlflow.start_run(experiment_id=experiment_id) as run:
        run_id = run.info.run_id
        logger.info("run %s started in experiment %s", run_id, experiment_id)
        mlflow.log_params(
            {
                **job.hyper.as_params(),
                **job.data_params,
                "train_size": job.train_size,
                "random_state": job.random_state,
            }
        )
        data = load()
        try:
            data.rows.to_csv(job.data_out, index=False)
        except OSError as exc:
            raise TrainerError(f"cannot write {job.data_out}: {exc.strerror or exc}") from None
        pipeline, parts, scores = model.train(
            data, job.hyper, train_size=job.train_size, random_state=job.random_state
        )
        mlflow.log_params({"n_train": len(parts.y_train), "n_valid": len(parts.y_valid)})
        mlflow.log_metrics(scores.as_metrics())
        signature = infer_signature(parts.x_train, pipeline.predict(parts.x_train))
        drift_baseline = reference.baseline(parts.x_train, parts.y_train)
        info = mlflow.sklearn.log_model(
            pipeline,
            name=job.model_name,
            signature=signature,
            input_example=parts.x_train.head(10),
            pip_requirements=model_requirements(),
            metadata={baseline.METADATA_KEY: drift_baseline},
        )
        mlflow.log_dict(drift_baseline, baseline.ARTIFACT_NAME)
        rows = reference.training_rows(parts.x_train, parts.y_train)
        mlflow.log_text(rows.to_csv(index=False), reference.TRAINING_ROWS)
    result = TrainResult(
        run_id=run_id,
        experiment_id=experiment_id,
        model_name=job.model_name,
        model_uri=f"runs:/{run_id}/{job.model_name}",
        registered_name=None,
        version=None,
        alias=None,
        registered_model_uri=None,
        metrics=scores.as_metrics(),
    )
    if job.registered_name:
        register(info.model_uri, job, result)
    return result


def record_data(params: dict[str, Any], tags: dict[str, str]) -> None:
    """What the active run was trained on, beyond the data params logged at its start."""
    mlflow.log_params(params)
    mlflow.set_tags(tags)


def register(model_uri: str, job: TrainingJob, result: TrainResult) -> None:
    """Register the model as a new version of `job.registered_name`, aliased `job.alias` if set.

    The name, the version and, with an alias, the alias and its models:/ URI go into `result`.
    """
    assert job.registered_name
    version = mlflow.register_model(model_uri, job.registered_name)
    result.registered_name = job.registered_name
    result.version = str(version.version)
    if job.alias:
        mlflow.MlflowClient().set_registered_model_alias(
            job.registered_name, job.alias, str(version.version)
        )
        result.alias = job.alias
        result.registered_model_uri = f"models:/{job.registered_name}@{job.alias}"


def load_model(uri: str) -> PyFuncModel:
    """A logged or registered model by URI (runs:/..., models:/...)."""
    return mlflow.pyfunc.load_model(uri)


@dataclass(frozen=True)
class TrainingRows:
    """The rows a run's model was fitted on, and which of their columns is the label."""

    frame: pd.DataFrame
    label: str

    @property
    def features(self) -> list[str]:
        return [str(c) for c in self.frame.columns if c != self.label]


def run_baseline(run_id: str) -> dict[str, Any] | None:
    """The drift baseline the run logged beside its model (baseline.json), if it did."""
    client = mlflow.MlflowClient()
    if baseline.ARTIFACT_NAME not in {a.path for a in client.list_artifacts(run_id)}:
        return None
    found = mlflow.artifacts.load_dict(f"runs:/{run_id}/{baseline.ARTIFACT_NAME}")
    return found if baseline.is_baseline(found) else None


def training_rows(run_id: str) -> TrainingRows:
    """The run's reference/training.csv artifact; its label column is the run's `label` param."""
    client = mlflow.MlflowClient()
    run = client.get_run(run_id)
    folder = reference.TRAINING_ROWS.rsplit("/", 1)[0]
    if reference.TRAINING_ROWS not in {a.path for a in client.list_artifacts(run_id, folder)}:
        raise TrainerError(
            f"run {run_id} has no training data ({reference.TRAINING_ROWS}): it was trained"
            " before the trainer logged it; train and serve a new model to report on"
        )
    with tempfile.TemporaryDirectory() as tmp:
        path = mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path=reference.TRAINING_ROWS, dst_path=tmp
        )
        frame = pd.read_csv(path)
    label = run.data.params.get("label", str(frame.columns[-1]))
    return TrainingRows(frame, label)
