"""The prediction log's cost, for `bench/run.py --log`.

With `--log`, bench/run.py starts a second API, "api+log", the same as "api" but with
PREDICTION_LOG_URL pointing at a fresh database on the machine's PostgreSQL (made here,
dropped at the end), and drives it in case (b) beside the API without the log. Around that
measure this module
- waits until the rows of the warm-up are written (the baseline count),
- after the measure, waits until the writer has caught up (the API's /metrics
  `prediction_log_queue_rows` is 0 and the table holds every row the writer says it wrote),
  then stops the API with SIGTERM (it flushes on shutdown) and counts the rows again,
- compares the rows logged during the measure with the rows wrk counted (requests x rows per
  request) and with the rows the API says it predicted (`predicted_rows_total`): wrk does not
  count the requests still in flight when it stops, which the API answers and logs, so the log
  may hold up to one request per connection more than wrk counted, never fewer;
- counts the CPU the PostgreSQL processes used during the measure (the COPY is part of the
  log's cost) apart from "others".

Self-contained (bench/run.py imports it; it imports nothing from bench/run.py).
"""

from __future__ import annotations

import contextlib
import os
import re
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import psycopg2
from psycopg2 import sql

SERVER = "api+log"
CASE = "b"
TARGET = 0.9  # api+log req/s >= 0.9 x api req/s
ADMIN_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
SETTLE_TIMEOUT = 120.0
TICK = os.sysconf("SC_CLK_TCK")


class _Server(Protocol):
    def stop(self, timeout: float = 15.0) -> int | None: ...


class LogDatabase:
    """A fresh database on the machine's PostgreSQL for the API's prediction log."""

    def __init__(self, admin_url: str = ADMIN_URL) -> None:
        self.admin_url = admin_url
        self.name = f"bench_predlog_{uuid.uuid4().hex[:12]}"
        self._admin(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.name)))
        self.url = urlunsplit(urlsplit(admin_url)._replace(path=f"/{self.name}"))

    def _admin(self, statement: sql.Composable) -> None:
        conn = psycopg2.connect(self.admin_url, connect_timeout=5)
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(statement)
        finally:
            conn.close()

    def count(self) -> int:
        """Rows in prediction_log (0 before the API created the table)."""
        conn = psycopg2.connect(self.url, connect_timeout=5)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT to_regclass('prediction_log') IS NOT NULL")
                row = cur.fetchone()
                if not row or not row[0]:
                    return 0
                cur.execute("SELECT count(*) FROM prediction_log")
                found = cur.fetchone()
                return int(found[0]) if found else 0
        finally:
            conn.close()

    def drop(self) -> None:
        self._admin(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(self.name))
        )


@contextlib.contextmanager
def log_database() -> Iterator[LogDatabase]:
    db = LogDatabase()
    try:
        yield db
    finally:
        db.drop()


# -- what the API says ------------------------------------------------------------------------

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{[^}]*\})? (\S+)$")
WATCHED = (
    "prediction_log_queue_rows",
    "prediction_log_rows_written_total",
    "prediction_log_rows_dropped_total",
    "prediction_log_write_failures_total",
    "predicted_rows_total",
)


def scrape(predict_url: str) -> dict[str, float]:
    """The log's metrics from the API's /metrics, each summed over its labels."""
    url = predict_url.rsplit("/", 1)[0] + "/metrics"
    with urllib.request.urlopen(url, timeout=10) as resp:
        text = resp.read().decode()
    out = dict.fromkeys(WATCHED, 0.0)
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match and match.group(1) in out:
            out[match.group(1)] += float(match.group(2))
    return out


def postgres_cpu() -> float:
    """CPU seconds used so far by the machine's live PostgreSQL processes."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            head, rest = stat.read_text().rsplit(")", 1)
            if head.split("(", 1)[1] == "postgres":
                fields = rest.split()
                total += int(fields[11]) + int(fields[12])  # utime + stime
    return total / TICK


@dataclass
class Snapshot:
    rows: int
    metrics: dict[str, float]
    settled: bool
    waited: float
    db_cpu: float
    at: float


def settle(predict_url: str, db: LogDatabase, timeout: float = SETTLE_TIMEOUT) -> Snapshot:
    """Wait until the API's writer has caught up: nothing queued, the table holds every row
    the writer says it wrote, and neither moved between two looks a quarter second apart."""
    start = time.monotonic()
    last: tuple[int, dict[str, float]] | None = None
    while True:
        metrics = scrape(predict_url)
        rows = db.count()
        caught_up = (
            metrics["prediction_log_queue_rows"] == 0
            and rows == metrics["prediction_log_rows_written_total"]
        )
        if caught_up and last == (rows, metrics):
            settled = True
            break
        if time.monotonic() - start > timeout:
            settled = False
            break
        last = (rows, metrics)
        time.sleep(0.25)
    return Snapshot(rows, metrics, settled, time.monotonic() - start, postgres_cpu(), 0.0)


def baseline(predict_url: str, db: LogDatabase) -> Snapshot:
    """Before the measure: the warm-up's rows written; the DB CPU clock starts."""
    snap = settle(predict_url, db)
    snap.db_cpu, snap.at = postgres_cpu(), time.monotonic()
    return snap


def tally(
    server: _Server,
    predict_url: str,
    db: LogDatabase,
    before: Snapshot,
    result: dict[str, Any],
    rows_per_request: int,
    connections: int,
) -> dict[str, Any]:
    """After the measure (call it at once): DB CPU, then wait for the writer, SIGTERM the API,
    count. Adds `db_cores` to `result` and takes them out of its `other_cores`."""
    db_cores = (postgres_cpu() - before.db_cpu) / max(1e-9, time.monotonic() - before.at)
    result["db_cores"] = db_cores
    result["other_cores"] = max(0.0, result["other_cores"] - db_cores)
    after = settle(predict_url, db)
    started = time.monotonic()
    exit_code = server.stop()
    stopped_in = time.monotonic() - started
    final = db.count()
    m0, m1 = before.metrics, after.metrics
    logged = final - before.rows
    wrk_rows = int(result["requests"]) * rows_per_request
    predicted = int(m1["predicted_rows_total"] - m0["predicted_rows_total"])
    dropped = int(m1["prediction_log_rows_dropped_total"] - m0["prediction_log_rows_dropped_total"])
    return {
        "database": db.name,
        "rows_before": before.rows,
        "rows_after_settle": after.rows,
        "rows_after_sigterm": final,
        "rows_logged": logged,
        "rows_wrk": wrk_rows,
        "rows_predicted": predicted,
        "in_flight_allowance": connections * rows_per_request,
        "rows_dropped": dropped,
        "write_failures": int(
            m1["prediction_log_write_failures_total"] - m0["prediction_log_write_failures_total"]
        ),
        "settled": after.settled,
        "settle_seconds": round(after.waited, 2),
        "baseline_settle_seconds": round(before.waited, 2),
        "stop_seconds": round(stopped_in, 2),
        "exit_code": exit_code,
    }


# -- verdicts ---------------------------------------------------------------------------------


def targets(cases: dict[str, dict[str, Any]]) -> list[tuple[str, bool | None, str]]:
    """Issue 11's targets: (target, passed or None when not measured, the figures)."""
    servers = cases.get(CASE, {}).get("servers", {})
    off, on = servers.get("api"), servers.get(SERVER)
    if off is None or on is None:
        return [(f"({CASE}) api+log req/s >= {TARGET:g} x api", None, "not measured")]
    ratio = on["rps"] / off["rps"] if off["rps"] else 0.0
    out: list[tuple[str, bool | None, str]] = [
        (
            f"({CASE}) api+log req/s >= {TARGET:g} x api",
            ratio >= TARGET,
            f"{on['rps']:,.0f} vs {off['rps']:,.0f} ({ratio:.3f}x)",
        )
    ]
    log = on["log"]
    lost = log["rows_predicted"] - log["rows_logged"]
    in_range = log["rows_wrk"] <= log["rows_logged"] <= log["rows_wrk"] + log["in_flight_allowance"]
    out.append(
        (
            f"({CASE}) api+log: no row lost",
            lost == 0 and in_range and log["rows_dropped"] == 0,
            f"{log['rows_logged']:,} logged, {log['rows_predicted']:,} predicted (API),"
            f" {log['rows_wrk']:,} counted by wrk (+ up to {log['in_flight_allowance']} in"
            f" flight), {log['rows_dropped']} dropped",
        )
    )
    out.append(
        (
            f"({CASE}) api+log: no failed request",
            on["errors"] == 0,
            f"{on['non_2xx']} non-2xx + {on['socket_errors']} socket",
        )
    )
    return out


def report_lines(cases: dict[str, dict[str, Any]]) -> list[str]:
    """The log's side of case (b), for bench/run.py's report."""
    on = cases.get(CASE, {}).get("servers", {}).get(SERVER)
    if on is None:
        return []
    log = on["log"]
    lines = [
        f"prediction log ({CASE}): PostgreSQL used {on['db_cores']:.2f} core during api+log's"
        f" measure; rows in prediction_log: {log['rows_before']:,} before (warm-up + checks),"
        f" {log['rows_after_settle']:,} once the writer caught up ({log['settle_seconds']:g}s"
        f" after wrk stopped), {log['rows_after_sigterm']:,} after SIGTERM (exit"
        f" {log['exit_code']}, {log['stop_seconds']:g}s)",
        f"  rows logged during the measure {log['rows_logged']:,}; predicted (API's"
        f" predicted_rows_total) {log['rows_predicted']:,}; wrk's requests x rows"
        f" {log['rows_wrk']:,}; dropped {log['rows_dropped']}; write failures"
        f" {log['write_failures']}",
    ]
    if not log["settled"]:
        lines.append(f"  warning: the writer had not caught up after {SETTLE_TIMEOUT:g}s")
    lines.append("")
    lines.append("targets:")
    for label, passed, detail in targets(cases):
        verdict = "n/a " if passed is None else ("PASS" if passed else "FAIL")
        lines.append(f"  {verdict}  {label:<36} {detail}")
    return lines
