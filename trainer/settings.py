"""Typed settings of the trainer, read from TRAINER_* environment variables.

They are the defaults of the command-line options; an option given on the command line wins.
MLflow and boto3 read their own MLFLOW_* and AWS_* variables: they are not repeated here.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


class TrainerSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="TRAINER_", use_attribute_docstrings=True, extra="ignore"
    )

    data: str = "iris"
    """Data source: `iris` (built in), a CSV path, or a postgresql:// URL (may hold a password,
    which is why it can come from the environment rather than the command line)."""
    table: str = "iris_data"
    """Table read from (and created by seed-db in) a Postgres data source."""
    label: str = "target"
    """Name of the label column; every other column but id and timestamp is a feature."""
    limit: int = 100
    """How many of the latest rows (by id) are read from a Postgres data source."""
    train_size: float = 0.8
    """Fraction of the rows used for training; the rest is the validation set."""
    random_state: int = 2022
    """Seed of the train/validation split."""
    experiment: str = "new-exp"
    """MLflow experiment the training runs are logged to."""
    model_name: str = "sk_model"
    """Name under which the model is logged in the run (runs:/<run_id>/<model_name>)."""
    alias: str = "champion"
    """Alias pointed at a registered model version when registering."""
    data_out: Path = Path("data.csv")
    """CSV written by train (features + label of the loaded data) and read by evaluate."""
    seed_interval: float = 1.0
    """Seconds between two rows inserted by `seed-db --follow`."""
    bucket_timeout: float = 60.0
    """Seconds create-bucket keeps retrying while the S3 endpoint is unreachable."""
    log_url: str = ""
    """postgresql:// URL of the API's prediction log, read by `report`, `promote` and `train --data
    log` (may hold a password)."""
    log_level: str = "WARNING"
    """Log level of the trainer; MLflow's and the HTTP libraries' own logs show from INFO."""


@lru_cache
def get_settings() -> TrainerSettings:
    """The process's settings, built on first use (tests clear the cache to override)."""
    return TrainerSettings()
