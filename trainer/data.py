"""Data sources of the trainer: the built-in iris set, a CSV file, or a Postgres table."""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pandas as pd
import psycopg2
from psycopg2 import sql
from psycopg2.extensions import connection as Connection
from sklearn.datasets import load_iris

from trainer.errors import TrainerError, first_line, redact

BUILTIN = "iris"
LOG = "log"
"""The API's prediction log (its labelled rows): `train --data log --log-url ...`."""
POSTGRES_SCHEMES = ("postgresql", "postgresql+psycopg2", "postgres")
# Bookkeeping columns of the seed's table: never features.
NON_FEATURES = ("id", "timestamp")
IRIS_FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")
CONNECT_TIMEOUT_S = 10


@dataclass(frozen=True)
class Source:
    """Where the data comes from: kind is "builtin", "csv", "postgres" or "log"."""

    kind: str
    location: str

    @property
    def public(self) -> str:
        """The location without credentials, fit to log or print."""
        return redact(self.location)


@dataclass(frozen=True)
class Dataset:
    """Float64 feature columns and the label, row for row, and the rows as they were read."""

    features: pd.DataFrame
    labels: pd.Series
    rows: pd.DataFrame
    """Every column as read, in the order read (from Postgres: id and timestamp too): data.csv,
    which the seed's load_model_from_registry.py reads and drops id, timestamp and target of."""


def parse_source(spec: str) -> Source:
    """Classify a --data value without touching it (no file or network access)."""
    spec = spec.strip()
    if not spec:
        raise TrainerError("the data source is empty: give iris, a CSV path or a Postgres URL")
    if spec == BUILTIN:
        return Source("builtin", spec)
    if spec == LOG:
        return Source("log", spec)
    scheme = urlsplit(spec).scheme if "://" in spec else ""
    if scheme in POSTGRES_SCHEMES:
        return Source("postgres", spec)
    if scheme:
        raise TrainerError(
            f"unsupported data source scheme {scheme!r} in {redact(spec)}: "
            "use iris, a CSV path or a postgresql:// URL"
        )
    return Source("csv", spec)


def load(source: Source, *, label: str, table: str, limit: int) -> Dataset:
    """Load a data source; `table` and `limit` apply to Postgres only."""
    if source.kind == "log":
        raise TrainerError("--data log is read by train only (with --log-url)")
    if source.kind == "builtin":
        return to_dataset(iris_frame(), label=label, origin="the built-in iris data")
    if source.kind == "csv":
        return read_csv(Path(source.location), label=label)
    return read_postgres(source.location, table=table, label=label, limit=limit)


def iris_frame() -> pd.DataFrame:
    """scikit-learn's 150 iris rows with the seed table's column names (features + target)."""
    bunch = load_iris(as_frame=True)
    frame = bunch.data.set_axis(list(IRIS_FEATURES), axis="columns").astype("float64")
    return frame.assign(target=bunch.target.astype("int64"))


def read_csv(path: Path, *, label: str) -> Dataset:
    """A CSV file with a header row; features are every column but id, timestamp and label."""
    try:
        frame = pd.read_csv(path)
    except FileNotFoundError:
        raise TrainerError(f"CSV file not found: {path}") from None
    except pd.errors.EmptyDataError:
        raise TrainerError(f"CSV file {path} is empty") from None
    except (OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise TrainerError(f"cannot read CSV file {path}: {first_line(exc)}") from None
    return to_dataset(frame, label=label, origin=f"CSV file {path}")


def postgres_dsn(url: str) -> str:
    """A libpq URL for psycopg2: SQLAlchemy's driver suffix (+psycopg2) removed."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(scheme="postgresql"))


def connect(url: str) -> Connection:
    """A connection to the database at `url`, or one TrainerError line saying why not."""
    try:
        return psycopg2.connect(postgres_dsn(url), connect_timeout=CONNECT_TIMEOUT_S)
    except psycopg2.Error as exc:
        raise TrainerError(f"cannot connect to database {redact(url)}: {first_line(exc)}") from None


def read_postgres(url: str, *, table: str, label: str, limit: int) -> Dataset:
    """The latest `limit` rows of `table` by id (newest first, as the seed read them)."""
    query = sql.SQL("SELECT * FROM {} ORDER BY id DESC LIMIT %s").format(sql.Identifier(table))
    conn = connect(url)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(query, (limit,))
            columns = [col.name for col in cur.description or ()]
            rows = cur.fetchall()
    except psycopg2.errors.UndefinedTable:
        raise TrainerError(f"table {table!r} does not exist in {redact(url)}") from None
    except psycopg2.errors.UndefinedColumn:
        raise TrainerError(f"table {table!r} has no id column to order the rows by") from None
    except psycopg2.Error as exc:
        raise TrainerError(f"cannot read table {table!r}: {first_line(exc)}") from None
    finally:
        conn.close()
    frame = pd.DataFrame.from_records(rows, columns=columns)
    return to_dataset(frame, label=label, origin=f"table {table!r}")


def to_dataset(frame: pd.DataFrame, *, label: str, origin: str) -> Dataset:
    """Split a frame into float64 features and the label; reject what cannot be trained on."""
    if label not in frame.columns:
        raise TrainerError(f"{origin} has no label column {label!r}")
    if frame.empty:
        raise TrainerError(f"{origin} has no rows")
    drop: list[Hashable] = [c for c in frame.columns if c in NON_FEATURES or c == label]
    features = frame.drop(columns=drop)
    if features.columns.empty:
        raise TrainerError(f"{origin} has no feature columns besides {label!r}")
    try:
        features = features.astype("float64")
    except (TypeError, ValueError):
        bad = [c for c in features.columns if not pd.api.types.is_numeric_dtype(features[c])]
        raise TrainerError(f"{origin} has non-numeric feature columns: {bad}") from None
    if features.isna().any().any():
        raise TrainerError(f"{origin} has missing feature values")
    labels = frame[label]
    if labels.isna().any():
        raise TrainerError(f"{origin} has rows without a label")
    return Dataset(
        features.reset_index(drop=True),
        labels.reset_index(drop=True),
        frame.reset_index(drop=True),
    )
