"""The prediction log's tables: written by the API, read by `python -m trainer report`.

One row per predicted record: typed columns for what every row has, JSONB for the model's
features (their names and number vary by model). Feedback (true labels, `POST /feedback`)
lives beside it, keyed by request id and row index, and so do the shadow model's predictions
of the same rows (SHADOW_MODEL_URI), with the shadow's version.
"""

from __future__ import annotations

LOG_TABLE = "prediction_log"
FEEDBACK_TABLE = "prediction_feedback"
SHADOW_TABLE = "prediction_shadow"

LOG_COLUMNS = (
    "ts",
    "request_id",
    "row_index",
    "model_name",
    "model_version",
    "run_id",
    "features",
    "prediction",
    "latency_ms",
)
"""The columns the API writes, in COPY order."""

SHADOW_COLUMNS = (
    "ts",
    "request_id",
    "row_index",
    "model_name",
    "model_version",
    "run_id",
    "prediction",
    "latency_ms",
)
"""The shadow model's columns, in COPY order: its identity, its prediction of the logged row
(request id, row index), and its predict call's milliseconds."""

DDL = f"""
CREATE TABLE IF NOT EXISTS {LOG_TABLE} (
    id            bigserial PRIMARY KEY,
    ts            timestamptz NOT NULL,
    request_id    text NOT NULL,
    row_index     integer NOT NULL,
    model_name    text NOT NULL,
    model_version text,
    run_id        text,
    features      jsonb NOT NULL,
    prediction    jsonb NOT NULL,
    latency_ms    double precision NOT NULL
);
CREATE INDEX IF NOT EXISTS {LOG_TABLE}_ts_idx ON {LOG_TABLE} (ts);
CREATE INDEX IF NOT EXISTS {LOG_TABLE}_request_id_idx ON {LOG_TABLE} (request_id);
CREATE TABLE IF NOT EXISTS {FEEDBACK_TABLE} (
    request_id    text NOT NULL,
    row_index     integer NOT NULL,
    label         jsonb NOT NULL,
    ts            timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (request_id, row_index)
);
CREATE TABLE IF NOT EXISTS {SHADOW_TABLE} (
    id            bigserial PRIMARY KEY,
    ts            timestamptz NOT NULL,
    request_id    text NOT NULL,
    row_index     integer NOT NULL,
    model_name    text NOT NULL,
    model_version text,
    run_id        text,
    prediction    jsonb NOT NULL,
    latency_ms    double precision NOT NULL
);
CREATE INDEX IF NOT EXISTS {SHADOW_TABLE}_request_id_idx ON {SHADOW_TABLE} (request_id);
"""
"""Idempotent: creates what is missing, changes nothing that exists."""
