"""seed-db: create the course's iris_data table in Postgres, fill it, optionally keep feeding it."""

from __future__ import annotations

import logging
import threading
from datetime import datetime

import pandas as pd
import psycopg2
from psycopg2 import sql
from psycopg2.extensions import connection as Connection

from trainer.data import connect, iris_frame
from trainer.errors import TrainerError, first_line

logger = logging.getLogger(__name__)

CREATE_TABLE = sql.SQL(
    """CREATE TABLE IF NOT EXISTS {} (
    id SERIAL PRIMARY KEY,
    timestamp timestamp,
    sepal_length float8,
    sepal_width float8,
    petal_length float8,
    petal_width float8,
    target int
)"""
)
COLUMNS = ("timestamp", "sepal_length", "sepal_width", "petal_length", "petal_width", "target")


SHUFFLE_SEED = 2022


def create_table(conn: Connection, table: str) -> None:
    """Create the table unless it exists (an existing table is left as it is)."""
    with conn, conn.cursor() as cur:
        cur.execute(CREATE_TABLE.format(sql.Identifier(table)))


def insert(conn: Connection, table: str, rows: pd.DataFrame) -> int:
    """Insert rows (the iris columns) stamped with the current time; returns how many."""
    statement = sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
        sql.Identifier(table),
        sql.SQL(", ").join(sql.Identifier(c) for c in COLUMNS),
        sql.SQL(", ").join(sql.Placeholder() for _ in COLUMNS),
    )
    now = datetime.now()
    values = [
        (now, *(float(r[c]) for c in COLUMNS[1:5]), int(r["target"]))
        for r in rows.to_dict("records")
    ]
    with conn, conn.cursor() as cur:
        cur.executemany(statement, values)
    return len(values)


def count(conn: Connection, table: str) -> int:
    with conn, conn.cursor() as cur:
        cur.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table)))
        row = cur.fetchone()
    return int(row[0]) if row else 0


def seed(url: str, table: str) -> int:
    """Create the table and, only if it is empty, fill it with the 150 iris rows.

    The rows go in a fixed shuffled order, as a data generator would have sent them: the
    trainer reads the latest 100 by id, and in the data set's own order (sorted by class)
    those would hold no setosa at all. Returns the number of rows inserted (0 when the table
    already had rows).
    """
    conn = connect(url)
    try:
        create_table(conn, table)
        if count(conn, table) > 0:
            return 0
        return insert(conn, table, iris_frame().sample(frac=1.0, random_state=SHUFFLE_SEED))
    except psycopg2.Error as exc:
        raise TrainerError(f"cannot seed table {table!r}: {first_line(exc)}") from None
    finally:
        conn.close()


def follow(url: str, table: str, interval: float, stop: threading.Event) -> int:
    """Insert one randomly sampled iris row every `interval` seconds until `stop` is set.

    Like the course's data generator. Returns how many rows were inserted.
    """
    source = iris_frame()
    conn = connect(url)
    inserted = 0
    try:
        while not stop.wait(interval):
            inserted += insert(conn, table, source.sample(1))
            logger.info("inserted row %d into %s", inserted, table)
    except psycopg2.Error as exc:
        raise TrainerError(f"cannot insert into table {table!r}: {first_line(exc)}") from None
    finally:
        conn.close()
    return inserted
