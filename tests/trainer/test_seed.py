"""seed-db: the course's iris_data table, filled once; --follow keeps feeding it."""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

import psycopg2
import pytest

from tests.iris import FEATURES
from tests.servers import python_env, running
from tests.trainer.conftest import SECRET, trainer, with_password
from trainer import seed

pytestmark = pytest.mark.postgres

EXPECTED_COLUMNS = [
    ("id", "integer"),
    ("timestamp", "timestamp without time zone"),
    *((name, "double precision") for name in FEATURES),
    ("target", "integer"),
]


def count(url: str, table: str = "iris_data") -> int:
    conn = psycopg2.connect(url)
    try:
        return seed.count(conn, table)
    finally:
        conn.close()


def test_seed_db_creates_the_table_with_the_exact_columns_and_150_rows(
    database: str, tmp_path: Path
) -> None:
    url = with_password(database)
    result = trainer("seed-db", url, cwd=tmp_path, env=python_env())
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("inserted 150 rows into table iris_data")
    assert SECRET not in result.stdout + result.stderr
    conn = psycopg2.connect(database)
    with conn, conn.cursor() as cur:
        cur.execute(
            "SELECT column_name, data_type FROM information_schema.columns"
            " WHERE table_name = 'iris_data' ORDER BY ordinal_position"
        )
        assert cur.fetchall() == EXPECTED_COLUMNS
        cur.execute("SELECT count(*), count(DISTINCT target), min(id), max(id) FROM iris_data")
        assert cur.fetchone() == (150, 3, 1, 150)
        cur.execute("SELECT count(*) FROM iris_data WHERE timestamp IS NULL")
        assert cur.fetchone() == (0,)
    conn.close()


def test_seeding_again_adds_nothing(database: str) -> None:
    assert seed.seed(database, "iris_data") == 150
    assert seed.seed(database, "iris_data") == 0
    assert count(database) == 150


def test_the_latest_100_rows_the_trainer_reads_hold_every_class(database: str) -> None:
    seed.seed(database, "iris_data")
    conn = psycopg2.connect(database)
    with conn.cursor() as cur:
        cur.execute(
            "SELECT target, count(*) FROM (SELECT target FROM iris_data ORDER BY id DESC LIMIT 100)"
            " AS latest GROUP BY target ORDER BY target"
        )
        per_class = dict(cur.fetchall())
    conn.close()
    assert set(per_class) == {0, 1, 2}
    assert min(per_class.values()) >= 20, per_class


def test_seed_into_another_table(database: str) -> None:
    assert seed.seed(database, "Flowers 2") == 150
    assert count(database, "Flowers 2") == 150


def test_follow_inserts_rows_until_sigterm_then_exits_0(database: str, tmp_path: Path) -> None:
    args = [sys.executable, "-m", "trainer", "seed-db", "--follow", "--interval", "0.2"]
    env = python_env({"TRAINER_DATA": database})
    with running(args, env, tmp_path / "follow.log", cwd=tmp_path) as server:
        deadline = time.monotonic() + 20
        while count_or_zero(database) < 160 and time.monotonic() < deadline:
            assert server.proc.poll() is None, server.output()
            time.sleep(0.2)
        assert count_or_zero(database) >= 160, server.output()
        code = server.stop()
    output = server.log_path.read_text()  # output() needs the log file open
    assert code == 0, output
    assert "Traceback" not in output
    assert "more rows until stopped" in output
    # What it said it inserted is in the table, all committed; and nothing more came after.
    followed = re.search(r"inserted (\d+) more rows until stopped", output)
    assert followed, output
    assert count(database) == 150 + int(followed.group(1))


def count_or_zero(url: str) -> int:
    try:
        return count(url)
    except psycopg2.Error:
        return 0  # table not created yet
