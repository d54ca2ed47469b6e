"""The whole champion/challenger loop on real processes: the API (uvicorn, `python -m app`) with
a shadow, the prediction log in PostgreSQL, the trainer's CLI, an MLflow store.

The world has changed since v1 was trained: virginica flowers (class 2) are now labelled 1.
v1 serves (@champion); v2, trained on wrong labels, shadows (@challenger); the feedback comes
in; `promote` refuses v2 with both accuracies. v3 is trained from the log (the new labels) and
registered @challenger: the API starts shadowing it without a restart; the feedback comes in;
`promote` moves @champion to v3; the API follows the alias with no failed request; the log and
the versions' tags tell the story.
"""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path
from typing import Any

import httpx
import mlflow
import pandas as pd
import psycopg2
import pytest

from tests.iris import FEATURES, iris_data
from tests.servers import free_port, python_env, run_cli, running, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.postgres]


def world(label: int) -> int:
    """Today's label of an iris flower of class `label`."""
    return 1 if label == 2 else label


def trainer(store: Path, *args: str) -> tuple[int, dict[str, Any], str]:
    env = python_env({"MLFLOW_TRACKING_URI": f"sqlite:///{store}/mlflow.db"})
    result = run_cli("trainer", *args, "--json", env=env, cwd=store, timeout=180)
    out = json.loads(result.stdout) if result.stdout.strip() else {}
    return result.returncode, out, result.stderr


def rows_in(url: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        try:
            cur.execute(sql)
        except psycopg2.errors.UndefinedTable:
            return []
        found = cur.fetchall()
    conn.close()
    return list(found)


def traffic(api: httpx.Client, database: str, phase: str) -> dict[str, float]:
    """Iris twice, 10 rows a request, each request's labels fed back once the shadow has
    predicted it; the served and the shadow's accuracy over all rows, from the answers."""
    records, labels = iris_data()
    records, labels = records * 2, [world(y) for y in labels] * 2
    served_right = shadow_right = 0
    ids = []
    for start in range(0, len(records), 10):
        rid = f"{phase}-{start}"
        answer = api.post(
            "/predict", json={"records": records[start : start + 10]}, headers={"X-Request-ID": rid}
        )
        assert answer.status_code == 200, answer.text
        ids.append((rid, labels[start : start + 10]))
    # The shadow's predictions go to the log off the answers' path: wait for them.
    wait_for(
        lambda: shadowed(database, phase) == len(records),
        what=f"the shadow's {len(records)} rows of {phase} in the log",
    )
    for rid, batch in ids:
        scored = api.post("/feedback", json={"request_id": rid, "labels": batch})
        assert scored.status_code == 200, scored.text
        served_right += scored.json()["correct"]
        shadow_right += scored.json()["shadow"]["correct"]
    return {"served": served_right / len(records), "shadow": shadow_right / len(records)}


def shadowed(database: str, phase: str) -> int:
    sql = f"SELECT count(*) FROM prediction_shadow WHERE request_id LIKE '{phase}-%'"
    found = rows_in(database, sql)
    return int(found[0][0]) if found else 0


def model_info(api: httpx.Client) -> dict[str, Any]:
    return dict(api.get("/model-info").json())


def test_v2_is_refused_v3_retrained_from_the_log_is_promoted_and_served(
    tmp_path: Path, database: str
) -> None:
    store = tmp_path
    records, labels = iris_data()
    wrong = pd.DataFrame.from_records(records).assign(target=[(y + 1) % 3 for y in labels])
    wrong[[*FEATURES, "target"]].to_csv(store / "wrong.csv", index=False)
    code, v1, err = trainer(store, "train", "--register", "sk_model", "--alias", "champion")
    assert code == 0, err
    code, v2, err = trainer(
        store, "train", "--data", str(store / "wrong.csv"),
        "--register", "sk_model", "--alias", "challenger",
    )  # fmt: skip
    assert code == 0, err
    assert (v1["version"], v2["version"]) == ("1", "2")

    port = free_port()
    env = python_env(
        {
            "MLFLOW_TRACKING_URI": f"sqlite:///{store}/mlflow.db",
            "MODEL_URI": "models:/sk_model@champion",
            "SHADOW_MODEL_URI": "models:/sk_model@challenger",
            "MODEL_RELOAD_INTERVAL": "0.5",
            "PREDICTION_LOG_URL": database,
        }
    )
    args = [sys.executable, "-m", "app", "--port", str(port)]
    with (
        running(args, env, store / "api.log") as server,
        httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as api,
    ):
        server.wait_http(f"http://127.0.0.1:{port}/readyz", timeout=90)
        wait_for(lambda: (model_info(api)["shadow"]["model"] or {}).get("version") == "2",
                 60, "v2 shadowing")  # fmt: skip

        # v1 serves, v2 shadows; the feedback comes in; promote refuses v2.
        first = traffic(api, database, "first")
        assert first["served"] == pytest.approx(2 / 3, abs=0.05)  # wrong on every virginica
        code, refused, err = trainer(store, "promote", "sk_model", "--log-url", database)
        assert code == 3 and "not promoted: no gain" in err, err
        assert refused["evidence"] == "shadow" and refused["rows"] == 300
        assert refused["champion"]["accuracy"] == pytest.approx(first["served"])
        assert refused["challenger"]["accuracy"] == pytest.approx(first["shadow"])

        # v3, from the log's labelled rows, becomes the challenger: shadowed without a restart.
        code, v3, err = trainer(
            store, "train", "--data", "log", "--log-url", database,
            "--register", "sk_model", "--alias", "challenger",
        )  # fmt: skip
        assert code == 0, err
        assert v3["version"] == "3"
        wait_for(lambda: model_info(api)["shadow"]["model"]["version"] == "3", 60, "v3 shadowing")
        second = traffic(api, database, "second")
        assert second["shadow"] > second["served"] + 0.25

        # Promote while a client keeps asking: the API follows @champion, no request fails.
        answers: list[tuple[int, str | None]] = []
        stop = threading.Event()

        def keep_asking() -> None:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
                while not stop.is_set():
                    r = client.post("/predict", json=records[100])
                    version = r.json()["model"]["version"] if r.status_code == 200 else None
                    answers.append((r.status_code, version))

        asking = threading.Thread(target=keep_asking)
        asking.start()
        try:
            code, promoted, err = trainer(store, "promote", "sk_model", "--log-url", database)
            assert code == 0, err
            wait_for(lambda: answers and answers[-1][1] == "3", 60, "v3 serving")
        finally:
            stop.set()
            asking.join()
        assert promoted["decision"] == "promoted" and promoted["rows"] == 300
        assert promoted["challenger"]["accuracy"] == pytest.approx(second["shadow"])
        assert [code for code, _ in answers if code != 200] == []
        versions = [v for _, v in answers]
        assert versions[0] == "1" and versions[-1] == "3" and set(versions) == {"1", "3"}
        assert api.post("/predict", json=records[100]).json()["predictions"] == [1]

    # The log tells the story: who served and who shadowed each phase's rows.
    assert rows_in(
        database,
        "SELECT split_part(l.request_id, '-', 1), l.model_version, s.model_version, count(*)"
        " FROM prediction_log l JOIN prediction_shadow s USING (request_id, row_index)"
        " WHERE l.request_id LIKE 'first-%' OR l.request_id LIKE 'second-%'"
        " GROUP BY 1, 2, 3 ORDER BY 1",
    ) == [("first", "1", "2", 300), ("second", "1", "3", 300)]
    # And the tags: v2 refused against v1; v3 promoted against v1, trained on the log's rows.
    client = mlflow.MlflowClient(f"sqlite:///{store}/mlflow.db")
    tags = {v: client.get_model_version("sk_model", v).tags for v in ("1", "2", "3")}
    assert tags["2"]["promotion.decision"] == "refused"
    assert tags["2"]["promotion.against_version"] == "1"
    assert tags["3"]["promotion.decision"] == "promoted"
    assert tags["1"]["promotion.against_version"] == "3"
    assert str(client.get_model_version_by_alias("sk_model", "champion").version) == "3"
    run = client.get_run(str(client.get_model_version("sk_model", "3").run_id))
    assert run.data.params["data"] == "log" and run.data.params["log_rows"] == "300"
