"""Reading the API's prediction log (model_serving.prediction_log's tables) for `report`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd
import psycopg2
from psycopg2 import sql

from model_serving.prediction_log import FEEDBACK_TABLE, LOG_TABLE
from trainer.data import connect
from trainer.errors import TrainerError, first_line, redact

PREDICTION = "prediction"
LABEL = "label"

_SINCE = sql.SQL("(%(since)s::timestamptz IS NULL OR l.ts >= %(since)s)")
RUNS = sql.SQL(
    "SELECT l.run_id, count(*) FROM {log} l WHERE {since}"
    " GROUP BY l.run_id ORDER BY count(*) DESC, max(l.ts) DESC"
).format(log=sql.Identifier(LOG_TABLE), since=_SINCE)
ROWS = sql.SQL(
    "SELECT l.ts, l.model_name, l.model_version, l.features, l.prediction, f.label"
    " FROM {log} l LEFT JOIN {feedback} f"
    " ON f.request_id = l.request_id AND f.row_index = l.row_index"
    " WHERE l.run_id = %(run_id)s AND {since} ORDER BY l.id"
).format(log=sql.Identifier(LOG_TABLE), feedback=sql.Identifier(FEEDBACK_TABLE), since=_SINCE)


@dataclass(frozen=True)
class Logged:
    """One run's logged predictions, a row per predicted record, in the order logged.

    `features` has a column per logged feature; `outcomes` the columns `prediction` and `label`
    (the feedback's true label, None where there is none), classes as strings as in the drift
    baseline.
    """

    run_id: str
    features: pd.DataFrame
    outcomes: pd.DataFrame
    model: str
    first: datetime
    last: datetime
    other_runs: int
    """Rows of other runs (or without a run id) in the same period, left out."""

    @property
    def feedback(self) -> pd.DataFrame:
        """The outcomes of the rows that have a true label."""
        return self.outcomes[self.outcomes[LABEL].notna()]


def class_key(value: Any) -> str | None:
    """A class as a string, the same for 2, 2.0 and "2" (JSON may carry any of them)."""
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def read(url: str, *, since: datetime | None, run_id: str | None) -> Logged:
    """The logged predictions of `run_id` (default: the run with the most rows) since `since`."""
    conn = connect(url)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(RUNS, {"since": since})
            counts: dict[str | None, int] = dict(cur.fetchall())
            chosen = run_id or next((r for r in counts if r is not None), None)
            when = f" since {since.isoformat()}" if since else ""
            if not counts:
                raise TrainerError(f"no predictions logged{when} in {redact(url)}")
            if chosen is None:
                raise TrainerError(
                    f"the predictions logged{when} carry no run id: their model has no training"
                    " data to compare with"
                )
            if chosen not in counts:
                raise TrainerError(f"no predictions of run {chosen} logged{when}")
            cur.execute(ROWS, {"run_id": chosen, "since": since})
            records = cur.fetchall()
    except psycopg2.errors.UndefinedTable:
        raise TrainerError(
            f"no prediction log in {redact(url)}: table {LOG_TABLE} does not exist"
        ) from None
    except psycopg2.Error as exc:
        raise TrainerError(f"cannot read the prediction log: {first_line(exc)}") from None
    finally:
        conn.close()
    ts, names, versions, features, predictions, labels = zip(*records, strict=True)
    outcomes = pd.DataFrame(
        {
            PREDICTION: [class_key(p) for p in predictions],
            LABEL: [class_key(lb) for lb in labels],
        }
    )
    model = names[-1] if versions[-1] is None else f"{names[-1]} v{versions[-1]}"
    return Logged(
        run_id=chosen,
        features=pd.DataFrame.from_records(list(features)),
        outcomes=outcomes,
        model=model,
        first=min(ts),
        last=max(ts),
        other_runs=sum(counts.values()) - counts[chosen],
    )
