"""Training data from the API's prediction log: the logged rows that have a true label (POST
/feedback), over a time range, optionally with the training rows of the runs that served them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd
import psycopg2
from psycopg2 import sql

from model_serving.prediction_log import FEEDBACK_TABLE, LOG_TABLE
from trainer.data import Dataset, connect, to_dataset
from trainer.errors import TrainerError, first_line, redact
from trainer.predictions import class_key

LABELLED = sql.SQL(
    "SELECT l.ts, l.run_id, l.features, f.label FROM {log} l JOIN {feedback} f"
    " ON f.request_id = l.request_id AND f.row_index = l.row_index"
    " WHERE (%(since)s::timestamptz IS NULL OR l.ts >= %(since)s)"
    " AND (%(until)s::timestamptz IS NULL OR l.ts < %(until)s)"
    " ORDER BY l.id"
).format(log=sql.Identifier(LOG_TABLE), feedback=sql.Identifier(FEEDBACK_TABLE))


@dataclass(frozen=True)
class LogRows:
    """What was read from the log: the rows, and what the run records about them."""

    frame: pd.DataFrame
    first: datetime
    last: datetime
    runs: tuple[str, ...]
    """The runs whose models made the logged predictions (run ids, first seen first)."""

    def params(self, url: str, since: datetime | None, until: datetime | None) -> dict[str, Any]:
        return {
            "log_url": redact(url),
            "log_since": since.isoformat() if since else "",
            "log_until": until.isoformat() if until else "",
            "log_first_ts": self.first.isoformat(),
            "log_last_ts": self.last.isoformat(),
            "log_rows": len(self.frame),
            "label_source": f"{FEEDBACK_TABLE} (POST /feedback)",
        }


def _label(value: Any) -> Any:
    """A JSON label as the class it names (2, 2.0 and "2" alike: an int when it is one)."""
    key = class_key(value)
    if key is not None and key.lstrip("-").isdigit():
        return int(key)
    return key


def read(url: str, *, label: str, since: datetime | None, until: datetime | None) -> LogRows:
    """The labelled rows logged in [since, until): features from the log, the label from the
    feedback; TrainerError when there are none."""
    conn = connect(url)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(LABELLED, {"since": since, "until": until})
            records = cur.fetchall()
    except psycopg2.errors.UndefinedTable:
        raise TrainerError(
            f"no prediction log in {redact(url)}: tables {LOG_TABLE} and {FEEDBACK_TABLE}"
            " must exist"
        ) from None
    except psycopg2.Error as exc:
        raise TrainerError(f"cannot read the prediction log: {first_line(exc)}") from None
    finally:
        conn.close()
    if not records:
        window = "".join(
            f" {word} {when.isoformat()}"
            for word, when in (("from", since), ("until", until))
            if when
        )
        raise TrainerError(f"no logged rows with a true label{window} in {redact(url)}")
    frame = pd.DataFrame.from_records([r[2] for r in records])
    if label in frame.columns:
        raise TrainerError(f"the logged features have a column named like the label {label!r}")
    frame[label] = [_label(r[3]) for r in records]
    runs = tuple(dict.fromkeys(r[1] for r in records if r[1]))
    return LogRows(frame, min(r[0] for r in records), max(r[0] for r in records), runs)


def dataset(rows: LogRows, label: str, training: list[pd.DataFrame]) -> Dataset:
    """The log's rows (then each run's training rows, their columns matched by name) as one
    Dataset."""
    frames = [rows.frame]
    for extra in training:
        missing = set(rows.frame.columns) - set(extra.columns)
        if missing:
            raise TrainerError(f"the training rows lack the logged columns {sorted(missing)}")
        frames.append(extra[list(rows.frame.columns)])
    return to_dataset(
        pd.concat(frames, ignore_index=True), label=label, origin="the prediction log"
    )
