"""Data sources: built-in iris, CSV files, the seed's Postgres table."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import psycopg2
import pytest
from psycopg2 import sql

from tests.servers import free_port
from trainer import data, seed
from trainer.errors import TrainerError


def load(spec: str, *, label: str = "target", table: str = "iris_data", limit: int = 100):
    return data.load(data.parse_source(spec), label=label, table=table, limit=limit)


def test_builtin_iris_has_the_seed_table_columns_as_float64() -> None:
    ds = load("iris")
    assert list(ds.features.columns) == list(data.IRIS_FEATURES)
    assert all(dtype == "float64" for dtype in ds.features.dtypes)
    assert len(ds.features) == len(ds.labels) == 150
    assert ds.labels.name == "target"
    assert sorted(ds.labels.unique()) == [0, 1, 2]


def test_builtin_iris_with_an_unknown_label_is_refused() -> None:
    with pytest.raises(TrainerError, match="no label column 'species'"):
        load("iris", label="species")


@pytest.mark.parametrize(
    ("spec", "kind"),
    [
        ("iris", "builtin"),
        ("data.csv", "csv"),
        ("/tmp/x.csv", "csv"),
        ("postgresql://u:p@host:5432/db", "postgres"),
        ("postgresql+psycopg2://u:p@host/db", "postgres"),
    ],
)
def test_parse_source_classifies_without_touching_the_source(spec: str, kind: str) -> None:
    assert data.parse_source(spec).kind == kind


def test_an_unsupported_scheme_is_refused_without_its_password() -> None:
    with pytest.raises(TrainerError) as caught:
        data.parse_source("mysql://user:hunter2@db/iris")
    assert "mysql" in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_public_location_hides_the_password() -> None:
    source = data.parse_source("postgresql+psycopg2://user:hunter2@db:5432/iris")
    assert source.public == "postgresql+psycopg2://user:***@db:5432/iris"


def test_csv_features_exclude_id_timestamp_and_label_and_become_float64(tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    path.write_text(
        "id,timestamp,a,b,species\n1,2024-01-01 00:00:00,1,2.5,x\n2,2024-01-01 00:00:01,3,4.5,y\n"
    )
    ds = load(str(path), label="species")
    assert list(ds.features.columns) == ["a", "b"]
    assert list(ds.features.dtypes) == ["float64", "float64"]
    assert list(ds.labels) == ["x", "y"]
    assert list(ds.rows.columns) == ["id", "timestamp", "a", "b", "species"]  # data.csv


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "CSV file not found"),
        ("", "is empty"),
        ("a,b,target\n", "has no rows"),
        ("a,b\n1,2\n", "no label column 'target'"),
        ("a,name,target\n1,bob,0\n", "non-numeric feature columns: \\['name'\\]"),
        ("target\n0\n", "no feature columns"),
    ],
)
def test_unusable_csv_files_are_refused(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "rows.csv"
    if content is not None:
        path.write_text(content)
    with pytest.raises(TrainerError, match=message):
        load(str(path))


@pytest.mark.postgres
def test_postgres_reads_the_latest_rows_by_id_newest_first(database: str) -> None:
    seed.seed(database, "iris_data")
    ds = load(database)
    assert len(ds.features) == 100
    assert list(ds.features.columns) == list(data.IRIS_FEATURES)
    assert all(dtype == "float64" for dtype in ds.features.dtypes)
    inserted = data.iris_frame().sample(frac=1.0, random_state=seed.SHUFFLE_SEED)
    expected = inserted.iloc[::-1].head(100).reset_index(drop=True)  # ids 150..51
    pd.testing.assert_frame_equal(ds.features.assign(target=ds.labels), expected, check_dtype=False)
    assert list(ds.rows.columns) == ["id", "timestamp", *data.IRIS_FEATURES, "target"]
    assert list(ds.rows["id"]) == list(range(150, 50, -1))


@pytest.mark.postgres
def test_postgres_table_label_and_limit_options(database: str) -> None:
    conn = psycopg2.connect(database)
    with conn, conn.cursor() as cur:
        cur.execute(
            'CREATE TABLE "Odd Table" (id serial primary key, x int, y int, "the label" int)'
        )
        cur.executemany(
            'INSERT INTO "Odd Table" (x, y, "the label") VALUES (%s, %s, %s)',
            [(i, 10 * i, i % 2) for i in range(10)],
        )
    conn.close()
    ds = load(
        "postgresql+psycopg2" + database.removeprefix("postgresql"),
        table="Odd Table",
        label="the label",
        limit=3,
    )
    assert list(ds.features.columns) == ["x", "y"]
    assert list(ds.features["x"]) == [9.0, 8.0, 7.0]
    assert ds.features["x"].dtype == "float64"
    assert list(ds.labels) == [1, 0, 1]


@pytest.mark.postgres
def test_postgres_missing_table_is_a_clear_error(database: str) -> None:
    with pytest.raises(TrainerError, match="table 'iris_data' does not exist"):
        load(database)


@pytest.mark.postgres
def test_postgres_empty_table_is_refused(database: str) -> None:
    conn = psycopg2.connect(database)
    seed.create_table(conn, "iris_data")
    conn.close()
    with pytest.raises(TrainerError, match="has no rows"):
        load(database)


def test_unreachable_postgres_is_a_clear_error_without_the_password() -> None:
    url = f"postgresql://user:hunter2@127.0.0.1:{free_port()}/db"
    with pytest.raises(TrainerError) as caught:
        load(url)
    assert "cannot connect to database" in str(caught.value)
    assert "hunter2" not in str(caught.value)


@pytest.mark.postgres
def test_identifiers_are_quoted_not_formatted(database: str) -> None:
    seed.seed(database, "iris_data")
    evil = "iris_data; DROP TABLE iris_data; --"
    with pytest.raises(TrainerError, match="does not exist"):
        load(database, table=evil)
    conn = psycopg2.connect(database)
    with conn, conn.cursor() as cur:
        cur.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier("iris_data")))
        assert cur.fetchone() == (150,)
    conn.close()
