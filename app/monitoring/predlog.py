"""The prediction log: every predicted row, written to PostgreSQL in batches, off the request path.

Rows come as COPY text lines from the recorder and wait in memory; one background task writes
them with `COPY prediction_log FROM STDIN`, a batch at a time (the queue lives on the event
loop; only the COPY itself runs on a thread). A slow or down
database costs no request anything: the writer retries with backoff while the rows wait, and
the recorder drops rows (counting them) only when PREDICTION_LOG_QUEUE_ROWS are waiting. On
shutdown, what is queued is written within PREDICTION_LOG_FLUSH_SECONDS.
"""

from __future__ import annotations

import asyncio
import io
import logging
import threading
import time
from dataclasses import dataclass, replace
from typing import Any

import anyio.to_thread

from app.model.failures import one_line
from app.monitoring.metrics import Metrics
from model_serving.prediction_log import (
    DDL,
    FEEDBACK_TABLE,
    LOG_COLUMNS,
    LOG_TABLE,
    SHADOW_COLUMNS,
    SHADOW_TABLE,
)

logger = logging.getLogger(__name__)

BATCH_ROWS = 20_000
_COPY = f"COPY {LOG_TABLE} ({', '.join(LOG_COLUMNS)}) FROM STDIN"
_COPY_SHADOW = f"COPY {SHADOW_TABLE} ({', '.join(SHADOW_COLUMNS)}) FROM STDIN"


def copy_field(text: str) -> str:
    """`text` escaped for COPY's text format."""
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


class PredictionLog:
    """Buffers COPY lines and writes them to the database in the background."""

    def __init__(self, url: str, metrics: Metrics) -> None:
        self._url = url
        self.metrics = metrics
        self._lines: list[str] = []
        self._shadow: list[str] = []  # the shadow model's rows (its own table)
        # The queue is only touched on the event loop (the recorder adds, the writer task takes
        # and gives back); only _write runs on a worker thread, and it reads just its batch.
        self._db = threading.Lock()  # one connection, used by one thread at a time
        self._wake = asyncio.Event()
        self._conn: Any = None
        self._table_ready = False
        self._task: asyncio.Task[None] | None = None

    @property
    def waiting(self) -> int:
        return len(self._lines)

    @property
    def shadow_waiting(self) -> int:
        return len(self._shadow)

    def add(self, lines: list[str]) -> None:
        """Queue rows (called on the event loop, by the recorder's drain)."""
        self._lines.extend(lines)

    def add_shadow(self, lines: list[str]) -> None:
        """Queue the shadow model's rows (on the event loop, by the recorder's drain)."""
        self._shadow.extend(lines)

    def wake(self) -> None:
        self._wake.set()

    def _take(self) -> tuple[list[str], list[str]]:
        batch, self._lines = self._lines[:BATCH_ROWS], self._lines[BATCH_ROWS:]
        shadow, self._shadow = self._shadow[:BATCH_ROWS], self._shadow[BATCH_ROWS:]
        return batch, shadow

    def _giveback(self, batch: tuple[list[str], list[str]]) -> None:
        self._lines[:0] = batch[0]
        self._shadow[:0] = batch[1]

    def _connect(self) -> Any:
        import psycopg2

        if self._conn is None or self._conn.closed:
            self._conn = psycopg2.connect(self._url, connect_timeout=5)
        if not self._table_ready:
            with self._conn, self._conn.cursor() as cur:
                cur.execute(DDL)
            self._table_ready = True
        return self._conn

    def _write(self, batch: tuple[list[str], list[str]]) -> None:
        lines, shadow = batch
        with self._db:
            conn = self._connect()
            try:
                with conn, conn.cursor() as cur:
                    if lines:
                        cur.copy_expert(_COPY, io.StringIO("".join(lines)))
                    if shadow:
                        cur.copy_expert(_COPY_SHADOW, io.StringIO("".join(shadow)))
            except Exception:
                conn.close()
                raise

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="prediction-log")

    async def _run(self) -> None:
        """Write what is queued, forever; failures are retried with backoff."""
        delay = 0.5
        while True:
            if not self._lines and not self._shadow:
                self._wake.clear()
                await self._wake.wait()
            batch = self._take()
            if not batch[0] and not batch[1]:
                continue
            try:
                await anyio.to_thread.run_sync(self._write, batch)
            except Exception as exc:
                self._giveback(batch)
                self.metrics.log_failures.inc()
                logger.warning(
                    "prediction log: write of %d rows failed (%s); retrying in %.1fs",
                    len(batch[0]) + len(batch[1]), _reason(exc), delay,
                )  # fmt: skip
                await asyncio.sleep(delay)
                delay = min(30.0, delay * 2)
                continue
            delay = 0.5
            self.metrics.log_written.inc(len(batch[0]))

    async def flush(self, timeout: float) -> None:
        """Stop the background writer; write what is queued, for at most `timeout` seconds."""
        deadline = time.monotonic() + timeout
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        while (self._lines or self._shadow) and time.monotonic() < deadline:
            batch = self._take()
            try:
                await asyncio.wait_for(
                    anyio.to_thread.run_sync(self._write, batch),
                    max(0.1, deadline - time.monotonic()),
                )
            except Exception as exc:
                self._giveback(batch)
                logger.error("prediction log: could not flush on shutdown: %s", _reason(exc))
                break
            self.metrics.log_written.inc(len(batch[0]))
        if self._lines:
            logger.error("prediction log: %d rows not written at shutdown", len(self._lines))

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()

    # -- feedback ------------------------------------------------------------------------

    def _claim(self, request_id: str, labels: list[Any], fetch: bool) -> Claim:
        """Store the labels unless some are stored for the request id already. With `fetch`,
        first read the request's logged rows, and store nothing if there are none or their
        number is not the labels'."""
        import psycopg2.extras

        with self._db:
            conn = self._connect()
            try:
                with conn, conn.cursor() as cur:
                    return _claim(cur, psycopg2.extras, request_id, labels, fetch)
            except Exception:
                conn.close()
                raise

    async def claim(self, request_id: str, labels: list[Any], *, fetch: bool) -> Claim:
        return await anyio.to_thread.run_sync(self._claim, request_id, labels, fetch)


@dataclass(frozen=True)
class Claim:
    state: str
    """claimed (the labels are stored), scored (some were before), unknown (no such request
    logged) or mismatch (logged with another number of rows)."""
    model: str = ""
    version: str = ""
    predictions: tuple[Any, ...] = ()
    shadow: tuple[str, str, tuple[Any, ...]] | None = None
    """The shadow model's name, version and predictions of the request's rows, if logged."""


def _claim(cur: Any, extras: Any, request_id: str, labels: list[Any], fetch: bool) -> Claim:
    """In one transaction: the first label row decides (a second claim waits on it and finds
    it), then the others."""
    found = Claim("claimed")
    if fetch:
        cur.execute(
            f"SELECT prediction, model_name, model_version FROM {LOG_TABLE}"
            " WHERE request_id = %s ORDER BY row_index",
            (request_id,),
        )
        rows = cur.fetchall()
        if not rows:
            return Claim("unknown")
        found = Claim("claimed", rows[0][1], rows[0][2] or "", tuple(r[0] for r in rows))
        if len(rows) != len(labels):
            return Claim("mismatch", found.model, found.version, found.predictions)
        cur.execute(
            f"SELECT prediction, model_name, model_version FROM {SHADOW_TABLE}"
            " WHERE request_id = %s ORDER BY row_index",
            (request_id,),
        )
        shadow = cur.fetchall()
        if len(shadow) == len(rows):
            predictions = tuple(r[0] for r in shadow)
            found = replace(found, shadow=(shadow[0][1], shadow[0][2] or "", predictions))
    cur.execute(
        f"INSERT INTO {FEEDBACK_TABLE} (request_id, row_index, label) VALUES (%s, 0, %s)"
        " ON CONFLICT (request_id, row_index) DO NOTHING",
        (request_id, extras.Json(labels[0])),
    )
    if cur.rowcount == 0:
        return Claim("scored")
    if len(labels) > 1:
        extras.execute_values(
            cur,
            f"INSERT INTO {FEEDBACK_TABLE} (request_id, row_index, label) VALUES %s",
            [(request_id, i, extras.Json(y)) for i, y in enumerate(labels) if i],
            page_size=1000,
        )
    return found


def _reason(exc: BaseException) -> str:
    return one_line(f"{type(exc).__name__}: {exc}")
