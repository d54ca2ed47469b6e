"""Typed settings of the serving process, read from the environment once at start.

Names carry no prefix because the model's identity variables (`MODEL_URI`, `RUN_ID`,
`MODEL_NAME`) are the ones the seed and MLflow users already use. MLflow and boto3 read their
own `MLFLOW_*` and `AWS_*` variables; they are passed through untouched, never renamed here.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from app.former import RENAMED, FormerNames, former
from app.process.cores import available as available_cores

logger = logging.getLogger(__name__)

LogLevel = Literal["CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG"]


class Settings(BaseSettings):
    """Settings of `python -m app` and of `create_app()`."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True, use_attribute_docstrings=True)

    model_uri: str | None = None
    """The model to serve: any URI MLflow loads a model from: runs:/<run_id>/<name>,
    models:/<name>@<alias>, models:/<name>/<version>, models:/<model_id>, a local folder,
    file://, s3://, mlflow-artifacts:/ ... One MLflow cannot load stops the start with its
    reason."""

    run_id: str | None = None
    """Alternative to MODEL_URI, as in the seed: serve runs:/<RUN_ID>/<MODEL_NAME>."""

    model_name: str = "sk_model"
    """With RUN_ID: the name the model was logged under."""

    model_load_timeout: float = Field(default=120.0, ge=0)
    """Seconds to keep retrying (with backoff) while the model cannot be loaded; then exit 1."""

    max_request_rows: int = Field(default=10_000, ge=1)
    """Most rows (records, instances) one prediction request may carry; more answers 422."""

    max_body_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    """Largest /predict request body accepted; larger answers 413."""

    request_timeout: float = Field(default=30.0, gt=0)
    """Seconds a /predict request may take once its body is in; then 504."""

    body_timeout: float = Field(default=10.0, gt=0)
    """Seconds a client has to send its whole request body; then 408 (slow clients)."""

    api_key: SecretStr | None = None
    """When set, clients send `Authorization: Bearer <API_KEY>`: always for /admin/*, for
    /predict unless PREDICT_PUBLIC, for /metrics unless METRICS_PUBLIC, for /docs, /redoc and
    /openapi.json unless DOCS_PUBLIC; the probes (/healthz, /readyz, /ping, /health, /version)
    stay open. Unset: no auth, and /admin/* does not exist (404)."""

    predict_public: bool = False
    """With API_KEY set, keep /predict (and /model-info) open to clients without the key."""

    metrics_public: bool = False
    """With API_KEY set, keep GET /metrics open to scrapers without the key (model names,
    versions, feature names, class shares and traffic volumes are readable there)."""

    docs_public: bool = False
    """With API_KEY set, keep the documentation (/docs, /redoc, /openapi.json) open to
    clients without the key."""

    model_reload_interval: float = Field(default=0.0, ge=0)
    """Seconds between checks of what a models:/name@alias URI points to; a new version is
    loaded and swapped in. 0 turns polling off (POST /admin/reload still works)."""

    predict_threads: int = Field(default=2, ge=1, le=64)
    """Model calls that may run at once in a worker (scikit-learn's native code releases the
    GIL, so a second call can use a second core). Set 1 for a model whose predict is not
    thread-safe."""

    model_processes: int | None = Field(default=None, ge=0, le=16)
    """Model processes beside each worker (`app.parallel.model_process`): each serves the same
    model, holds its own copy of it, and takes a share of the worker's large /predict bodies (over
    16 KiB), decoded and predicted under its own GIL, so that one worker's large requests fill a
    second core. Unset: 1 when the service may use more cores than it has WORKERS, else 0. 0:
    everything in the worker. Models served through mlflow.pyfunc stay in the worker."""

    pin_cores: bool | None = None
    """Pin each of the service's processes (workers, model processes) to a core of its own
    (`app.process.cores`). Unset: when they are exactly as many as the cores the service may use
    (Linux). false: never; true: always (cores taken in turn when processes outnumber them)."""

    batching: bool = True
    """Gather concurrent /predict requests into one model call (adaptive micro-batching)."""

    micro_batch_max_rows: int = Field(default=256, ge=1)
    """Most rows one combined model call may take when concurrent requests are batched
    together (BATCHING)."""

    batch_max_wait_ms: float = Field(default=2.0, ge=0)
    """How long a batch may wait for requests already in flight to join it; a lone request
    never waits."""

    model_cache_dir: Path | None = None
    """Folder for a local cache of the last 2 models loaded from the registry, served at start
    when the tracking server or artifact store cannot be reached; needs MODEL_CACHE_KEY. A
    folder that group or others may write is refused at start. Unset: no cache."""

    model_cache_key: SecretStr | None = None
    """The key (at least 16 characters) the cache's entries are signed with (HMAC-SHA256) and
    checked against before anything in them is read; an entry it did not sign is skipped and
    the model loaded from the registry. Unset: the cache is off, even with MODEL_CACHE_DIR."""

    registry_retry_max: float = Field(default=10.0, gt=0)
    """Most seconds between two tries of the registry while serving from the cache."""

    prediction_log_url: SecretStr | None = None
    """PostgreSQL URL the prediction log is written to (table prediction_log, created if
    missing); unset: no log. May hold a password, so it comes from the environment."""

    prediction_log_queue_rows: int = Field(default=100_000, ge=1)
    """Most rows waiting in memory for the log writer; beyond it rows are dropped (counted in
    prediction_log_rows_dropped_total), never a request slowed or failed."""

    prediction_log_flush_seconds: float = Field(default=10.0, ge=0)
    """On shutdown, how long the writer may take to write what is queued."""

    drift_metrics: bool = True
    """Count the rows per feature and training decile bin (drift_bin_rows_total: ten series
    per feature) for the drift recording rules; off, no drift metrics (a model too wide for
    them)."""

    drift_alert_alpha: float = Field(default=0.05, gt=0, lt=1)
    """The chance of a false FeatureDrift alert on a model that has not drifted, over all its
    features at once: the PSI threshold the service exports (drift_psi_chi2_critical) is the
    chi-square quantile at 1 - DRIFT_ALERT_ALPHA / features."""

    feedback_memory_rows: int = Field(default=1_000_000, ge=1)
    """Predictions kept in memory, the newest requests' (at most 100,000 requests), for POST
    /feedback to score; an older request's are read from the prediction log when it is on."""

    shadow_model_uri: str | None = None
    """A second model (typically models:/<name>@challenger) that predicts a share of the served
    rows off the answer's path, for comparison: loaded, cached and reloaded like MODEL_URI (it
    follows its alias on MODEL_RELOAD_INTERVAL and POST /admin/reload). Its answers are never
    sent; they are counted (shadow_*_total), scored by POST /feedback, and logged beside the
    served ones. Unset: no shadow."""

    shadow_sample: float = Field(default=1.0, ge=0, le=1)
    """Share of the requests whose rows the shadow model predicts (0..1), drawn at random."""

    shadow_queue_rows: int = Field(default=10_000, ge=1)
    """Most rows waiting for the shadow model; beyond it a request's rows are not shadowed
    (counted in shadow_rows_dropped_total), so a slow or stuck shadow costs the served answers
    nothing."""

    drain_seconds: float = Field(default=0.0, ge=0)
    """On SIGTERM, seconds to keep answering while /readyz answers 503, before the server
    stops accepting connections and finishes the requests in flight: behind a load balancer,
    longer than its health check interval times the failed checks it needs to take a replica
    out (docker-compose.fleet.yaml: 1 s x 2). 0: stop at once."""

    log_level: LogLevel = "INFO"
    """Log level of the service's own loggers and of uvicorn."""

    host: str = "127.0.0.1"
    """Address `python -m app` binds (use 0.0.0.0 in a container)."""

    port: int = Field(default=8000, ge=0, le=65535)
    """Port `python -m app` listens on."""

    workers: int = Field(default=1, ge=1, le=64)
    """Worker processes `python -m app` runs; each loads the model. /metrics adds them up."""

    def __init__(self, **values: Any) -> None:
        given = former(values)
        super().__init__(**{k: v for k, v in values.items() if k not in RENAMED}, **given)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        renamed = FormerNames(settings_cls)
        return init_settings, env_settings, renamed, dotenv_settings, file_secret_settings

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("prediction_log_url")
    @classmethod
    def _log_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        if not value.get_secret_value().startswith(("postgresql://", "postgres://")):
            raise ValueError("must be a postgresql:// URL")
        return value

    @field_validator("api_key", "model_cache_key")
    @classmethod
    def _key_strength(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or value.get_secret_value() == "":
            return None
        if len(value.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters")
        return value

    @field_validator("model_cache_dir")
    @classmethod
    def _private_cache(cls, value: Path | None) -> Path | None:
        """A cache folder others may write is one they could put code in: refused."""
        if value is None or not value.exists():
            return value  # made by the service, writable by its user only
        if not value.is_dir():
            raise ValueError(f"{value} is not a folder")
        mode = value.stat().st_mode & 0o777
        if mode & 0o022:
            raise ValueError(
                f"{value} is writable by group or others (mode {mode:04o}), who could put code "
                f"in the service through it: chmod go-w {value}"
            )
        return value

    @field_validator("model_uri")
    @classmethod
    def _check_uri(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        return value.strip()

    @field_validator("shadow_model_uri")
    @classmethod
    def _check_shadow_uri(cls, value: str | None) -> str | None:
        return value.strip() if value is not None and value.strip() else None

    @model_validator(mode="after")
    def _one_model(self) -> Settings:
        if self.model_uri is None and not self.run_id:
            raise ValueError(
                "set MODEL_URI (or RUN_ID with MODEL_NAME) to say which model to serve"
            )
        if self.model_uri is not None and self.run_id:
            raise ValueError("set either MODEL_URI or RUN_ID, not both")
        return self

    @property
    def model_process_count(self) -> int:
        """MODEL_PROCESSES, or what it means unset (see there)."""
        if self.model_processes is not None:
            return self.model_processes
        return 1 if len(available_cores()) > self.workers else 0

    @property
    def resolved_model_uri(self) -> str:
        """The model URI to load, whichever way it was given."""
        if self.model_uri is not None:
            return self.model_uri
        return f"runs:/{self.run_id}/{self.model_name}"


@lru_cache
def get_settings() -> Settings:
    """The process's settings, read once from the environment."""
    return Settings()
