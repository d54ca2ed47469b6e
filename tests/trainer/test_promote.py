"""`python -m trainer promote`: the gate's paired statistics, and the alias moved only when the
challenger beats the champion on the same labelled rows by more than sampling explains."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import psycopg2
import pytest
from psycopg2.extras import Json, execute_values

from model_serving.prediction_log import (
    DDL,
    FEEDBACK_TABLE,
    LOG_COLUMNS,
    LOG_TABLE,
    SHADOW_COLUMNS,
    SHADOW_TABLE,
)
from tests.trainer.conftest import client, ok_json, store_env, trainer
from trainer.gate import Gate, compare, mcnemar_p

# -- the statistics ---------------------------------------------------------------------------


def rows(both: int, only_champion: int, only_challenger: int, neither: int) -> tuple[list, list]:
    """Per-row correctness of both models: the paired table's four cells."""
    champion = [True] * both + [True] * only_champion + [False] * only_challenger
    challenger = [True] * both + [False] * only_champion + [True] * only_challenger
    return champion + [False] * neither, challenger + [False] * neither


def test_the_gain_and_its_error_are_those_of_the_per_row_differences() -> None:
    champion, challenger = rows(150, 8, 20, 22)
    result = compare(champion, challenger, Gate(min_rows=100))
    d = np.array(challenger, dtype=float) - np.array(champion, dtype=float)
    assert result.rows == 200
    assert result.champion_accuracy == pytest.approx(158 / 200)
    assert result.challenger_accuracy == pytest.approx(170 / 200)
    assert result.gain == pytest.approx(d.mean())
    assert result.gain_se == pytest.approx(d.std() / math.sqrt(len(d)))
    assert (result.only_champion_right, result.only_challenger_right) == (8, 20)
    assert result.promote, result.reason


def test_a_gain_within_sampling_error_is_refused() -> None:
    # 3 points of accuracy on 200 rows, from 12 discordant rows against 6: not enough.
    result = compare(*rows(170, 6, 12, 12), Gate(min_rows=100))
    assert result.gain == pytest.approx(0.03)
    assert not result.promote
    assert result.reason.startswith("gain within sampling error")
    assert result.lower_bound < 0 < result.gain
    # The same gain on ten times the rows is beyond it.
    assert compare(*rows(1700, 60, 120, 120), Gate(min_rows=100)).promote


def test_too_few_rows_no_gain_and_min_gain_are_refused() -> None:
    few = compare(*rows(40, 0, 20, 0), Gate(min_rows=100))
    assert not few.promote and few.reason.startswith("too few labelled rows: 60 < --min-rows 100")
    worse = compare(*rows(150, 20, 8, 22), Gate(min_rows=100))
    assert not worse.promote and worse.reason.startswith("no gain")
    # A clear gain of 0.06 that does not clear --min-gain 0.05 beyond its error.
    short = compare(*rows(150, 8, 20, 22), Gate(min_rows=100, min_gain=0.05))
    assert not short.promote and "lower bound" in short.reason


def test_both_models_are_judged_on_the_same_rows() -> None:
    with pytest.raises(ValueError, match="same rows"):
        compare([True, False], [True], Gate())


def test_mcnemar_is_the_binomial_tail_of_the_discordant_rows() -> None:
    assert mcnemar_p(0, 0) == 1.0
    assert mcnemar_p(2, 8) == pytest.approx(sum(math.comb(10, k) for k in range(8, 11)) / 2**10)


# -- the command ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, blank_store: Callable[[Path], Path]) -> Path:
    """sk_model v1 (rbf, C=1) @champion and v2 (linear, C=0.001: much worse) @challenger."""
    folder = blank_store(tmp_path_factory.mktemp("promote"))
    env = store_env(folder)
    ok_json(trainer("train", "--json", "--register", "--alias", "champion", cwd=folder, env=env))
    ok_json(
        trainer(
            "train",
            "--json",
            "--register",
            "--alias",
            "challenger",
            "--kernel",
            "linear",
            "--C",
            "0.001",
            cwd=folder,
            env=env,
        )  # fmt: skip
    )
    return folder


def promote(store: Path, *args: str) -> tuple[int, dict[str, Any], str]:
    result = trainer("promote", "sk_model", "--json", *args, cwd=store, env=store_env(store))
    assert result.stdout.count("\n") == 1, (result.stdout, result.stderr)
    return result.returncode, json.loads(result.stdout), result.stderr


def valid_acc(store: Path, version: str) -> float:
    run_id = client(store).get_model_version("sk_model", version).run_id
    assert run_id is not None
    return float(client(store).get_run(run_id).data.metrics["valid_acc"])


def test_a_worse_challenger_is_refused_with_both_figures_and_tagged(store: Path) -> None:
    code, decision, stderr = promote(store, "--evidence", "holdout", "--min-rows", "30")
    assert code == 3
    assert stderr.startswith("error: not promoted: no gain")
    assert decision["decision"] == "refused" and decision["evidence"] == "holdout"
    assert decision["rows"] == 30  # iris' held-out fifth, the same rows for both
    # Each accuracy is the one the trainer measured on those rows when it logged the version.
    assert decision["champion"]["accuracy"] == pytest.approx(valid_acc(store, "1"))
    assert decision["challenger"]["accuracy"] == pytest.approx(valid_acc(store, "2"))
    mlflow = client(store)
    assert str(mlflow.get_model_version_by_alias("sk_model", "champion").version) == "1"
    for version, role in (("1", "champion"), ("2", "challenger")):
        tags = mlflow.get_model_version("sk_model", version).tags
        assert tags["promotion.decision"] == "refused"
        assert tags["promotion.role"] == role
        assert tags["promotion.rows"] == "30"
        assert float(tags["promotion.gain"]) == pytest.approx(decision["gain"], abs=1e-6)
        assert tags["promotion.gate"] == "min_rows=30 min_gain=0 alpha=0.05"


def test_the_alias_moves_when_the_gate_holds(store: Path) -> None:
    mlflow = client(store)
    mlflow.set_registered_model_alias("sk_model", "champion", "2")
    mlflow.set_registered_model_alias("sk_model", "challenger", "1")
    try:
        code, decision, stderr = promote(store, "--evidence", "holdout", "--min-rows", "30")
        assert code == 0, stderr
        assert decision["decision"] == "promoted"
        assert decision["gain"] == pytest.approx(valid_acc(store, "1") - valid_acc(store, "2"))
        assert decision["lower_bound"] > 0
        assert str(mlflow.get_model_version_by_alias("sk_model", "champion").version) == "1"
        assert mlflow.get_model_version("sk_model", "1").tags["promotion.decision"] == "promoted"
    finally:
        mlflow.set_registered_model_alias("sk_model", "champion", "1")
        mlflow.set_registered_model_alias("sk_model", "challenger", "2")


def test_too_few_held_out_rows_are_refused(store: Path) -> None:
    code, decision, stderr = promote(store, "--evidence", "holdout")
    assert code == 3 and "too few labelled rows: 30 < --min-rows 100" in stderr
    assert decision["rows"] == 30


@pytest.mark.postgres
def test_live_evidence_is_the_labelled_rows_both_versions_predicted(
    store: Path, database: str
) -> None:
    """The log holds 120 labelled rows both v1 (served) and v2 (shadow) predicted, v1 right on
    100 and v2 on 102; beside them rows without a label, without a shadow prediction, and of
    another version pair, which must not count."""
    log, shadow, labels = [], [], []
    for i in range(140):
        rid = f"req-{i}"
        label = i % 3
        served = label if i < 100 else (label + 1) % 3
        challenger = label if (i < 98 or 100 <= i < 104) else (label + 1) % 3
        version = "1" if i < 130 else "7"
        log.append(("2026-12-01T00:00:00+00", rid, 0, "sk_model", version, None, Json({}),
                    Json(served), 1.0))  # fmt: skip
        if i < 120 or i >= 130:
            shadow.append(("2026-12-01T00:00:00+00", rid, 0, "sk_model", "2", None,
                           Json(challenger), 1.0))  # fmt: skip
        if i < 125 or i >= 130:
            labels.append((rid, 0, Json(label)))
    with psycopg2.connect(database) as conn, conn.cursor() as cur:
        cur.execute(DDL)
        execute_values(cur, f"INSERT INTO {LOG_TABLE} ({', '.join(LOG_COLUMNS)}) VALUES %s", log)
        execute_values(
            cur, f"INSERT INTO {SHADOW_TABLE} ({', '.join(SHADOW_COLUMNS)}) VALUES %s", shadow
        )
        execute_values(
            cur, f"INSERT INTO {FEEDBACK_TABLE} (request_id, row_index, label) VALUES %s", labels
        )
    conn.close()
    code, decision, stderr = promote(store, "--log-url", database)
    assert decision["evidence"] == "shadow"
    assert decision["rows"] == 120
    assert decision["champion"]["accuracy"] == pytest.approx(100 / 120)
    assert decision["challenger"]["accuracy"] == pytest.approx(102 / 120)
    assert (decision["only_champion_right"], decision["only_challenger_right"]) == (2, 4)
    assert code == 3 and "gain within sampling error" in stderr
