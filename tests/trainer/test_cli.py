"""`python -m trainer` end to end, as subprocesses against real MLflow stores."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import pytest

from model_serving import baseline
from model_serving.stores import EMBEDDED_DIR, embedded_tracking_uri
from tests.iris import FEATURES
from tests.servers import python_env
from tests.trainer.conftest import (
    SECRET,
    client,
    ok_json,
    runs,
    store_env,
    trainer,
    with_password,
)
from trainer import reference, seed
from trainer.cli import build_parser, main
from trainer.data import IRIS_FEATURES

JSON_KEYS = {
    "run_id",
    "experiment_id",
    "model_name",
    "model_uri",
    "registered_name",
    "version",
    "alias",
    "registered_model_uri",
    "metrics",
    "skipped",
}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, blank_store: Callable[[Path], Path]) -> Path:
    return blank_store(tmp_path_factory.mktemp("store"))


@pytest.fixture(scope="module")
def trained(store: Path) -> dict[str, Any]:
    """One registered training run on iris, shared by the tests of this module."""
    result = trainer(
        "train", "--json", "--register", "--alias", "champion", cwd=store, env=store_env(store)
    )
    return ok_json(result)


def test_train_json_reports_the_run_and_its_registration(trained: dict[str, Any]) -> None:
    assert set(trained) == JSON_KEYS
    run_id = trained["run_id"]
    assert trained["model_uri"] == f"runs:/{run_id}/sk_model"
    assert trained["model_name"] == trained["registered_name"] == "sk_model"
    assert trained["version"] == "1"
    assert trained["alias"] == "champion"
    assert trained["registered_model_uri"] == "models:/sk_model@champion"
    assert trained["skipped"] is False
    assert 0.9 <= trained["metrics"]["train_acc"] <= 1.0
    assert 0.85 <= trained["metrics"]["valid_acc"] <= 1.0


def test_the_run_holds_params_metrics_and_finished(store: Path, trained: dict[str, Any]) -> None:
    run = client(store).get_run(trained["run_id"])
    assert run.info.status == "FINISHED"
    assert run.info.experiment_id == trained["experiment_id"]
    assert run.data.metrics == trained["metrics"]
    assert run.data.params == {
        "C": "1.0",
        "kernel": "rbf",
        "gamma": "scale",
        "data": "iris",
        "label": "target",
        "train_size": "0.8",
        "random_state": "2022",
        "n_train": "120",
        "n_valid": "30",
    }
    assert client(store).get_experiment(trained["experiment_id"]).name == "new-exp"


def test_the_logged_model_has_a_double_signature_and_an_input_example(
    store: Path, trained: dict[str, Any]
) -> None:
    mlflow.set_tracking_uri(f"sqlite:///{store}/mlflow.db")
    info = mlflow.models.get_model_info(trained["model_uri"])
    assert info.signature is not None
    inputs = info.signature.inputs.to_dict()
    assert [(i["name"], i["type"]) for i in inputs] == [(name, "double") for name in FEATURES]
    loaded = mlflow.pyfunc.load_model(trained["model_uri"])
    example = loaded.input_example
    assert isinstance(example, pd.DataFrame) and example.shape == (10, 4)
    assert set(loaded.predict(example)) <= {0, 1, 2}


def test_the_model_carries_its_drift_baseline_and_the_run_its_training_rows(
    store: Path, trained: dict[str, Any], tmp_path: Path
) -> None:
    mlflow.set_tracking_uri(f"sqlite:///{store}/mlflow.db")
    info = mlflow.models.get_model_info("models:/sk_model@champion")
    assert info.metadata is not None
    carried = info.metadata[baseline.METADATA_KEY]  # where the API reads it
    assert baseline.is_baseline(carried)
    run_id = trained["run_id"]
    assert mlflow.artifacts.load_dict(f"runs:/{run_id}/{baseline.ARTIFACT_NAME}") == carried
    path = mlflow.artifacts.download_artifacts(
        run_id=run_id, artifact_path=reference.TRAINING_ROWS, dst_path=str(tmp_path)
    )
    rows = pd.read_csv(path)
    assert rows.shape == (120, 5)  # the training part of the 80/20 split
    assert list(rows.columns) == [*IRIS_FEATURES, "target"]
    assert reference.baseline(rows.drop(columns="target"), rows["target"]) == carried


def test_the_alias_resolves_to_the_same_run(store: Path, trained: dict[str, Any]) -> None:
    version = client(store).get_model_version_by_alias("sk_model", "champion")
    assert version.run_id == trained["run_id"]
    mlflow.set_tracking_uri(f"sqlite:///{store}/mlflow.db")
    loaded = mlflow.pyfunc.load_model("models:/sk_model@champion")
    assert loaded.metadata.run_id == trained["run_id"]


def test_train_writes_data_csv_with_features_and_label(
    store: Path, trained: dict[str, Any]
) -> None:
    frame = pd.read_csv(store / "data.csv")
    assert frame.shape == (150, 5)
    assert list(frame.columns)[-1] == "target"


def in_process(
    args: list[str], store: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> dict[str, Any]:
    """main(args) in this process against `store` (saves a subprocess); its JSON output."""
    monkeypatch.chdir(store)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store}/mlflow.db")
    assert main(args) == 0
    out = capsys.readouterr().out
    assert len(out.splitlines()) == 1, out
    payload: dict[str, Any] = json.loads(out)
    return payload


def test_skip_if_exists_does_not_train_again(
    store: Path,
    trained: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = ["train", "--register", "sk_model", "--alias", "champion", "--skip-if-exists"]
    result = in_process([*args, "--json"], store, monkeypatch, capsys)
    assert set(result) == JSON_KEYS
    assert result["skipped"] is True
    assert result["run_id"] == trained["run_id"]
    assert result["version"] == "1"
    assert result["metrics"] == trained["metrics"]
    plain = trainer(*args, cwd=store, env=store_env(store))
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout == trained["run_id"] + "\n"
    assert len(runs(store)) == 1


def test_evaluate_reproduces_the_training_accuracies(store: Path, trained: dict[str, Any]) -> None:
    result = ok_json(
        trainer(
            "evaluate", "--run-id", trained["run_id"], "--json", cwd=store, env=store_env(store)
        )
    )
    assert result["metrics"] == trained["metrics"]
    assert result["model_uri"] == trained["model_uri"]
    assert (result["n_train"], result["n_valid"]) == (120, 30)
    plain = trainer(
        "evaluate", "--model-uri", "models:/sk_model@champion", cwd=store, env=store_env(store)
    )
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout.splitlines() == [
        f"train_acc {trained['metrics']['train_acc']}",
        f"valid_acc {trained['metrics']['valid_acc']}",
    ]


def test_the_embedded_default_store_lives_under_dot_mlflow(tmp_path: Path) -> None:
    env = python_env(drop=["MLFLOW_TRACKING_URI"])
    result = ok_json(trainer("train", "--json", "--register", cwd=tmp_path, env=env))
    assert sorted(p.name for p in tmp_path.iterdir()) == [".mlflow", "data.csv"]
    assert (tmp_path / ".mlflow" / "mlflow.db").is_file()
    artifacts = tmp_path / ".mlflow" / "artifacts"
    assert any(artifacts.rglob("MLmodel"))
    embedded = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/.mlflow/mlflow.db")
    experiment = embedded.get_experiment(result["experiment_id"])
    assert experiment.artifact_location == artifacts.as_uri()
    version = embedded.get_model_version_by_alias("sk_model", "champion")
    assert version.run_id == result["run_id"]


def test_default_tracking_uri_is_the_cwd_sqlite_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert EMBEDDED_DIR == Path(".mlflow")
    assert embedded_tracking_uri() == f"sqlite:///{tmp_path}/.mlflow/mlflow.db"


@pytest.mark.postgres
def test_seed_then_train_from_postgres_without_leaking_the_password(
    database: str, tmp_path: Path, blank_store: Callable[[Path], Path]
) -> None:
    url = with_password(database)
    env = store_env(blank_store(tmp_path), {"TRAINER_DATA": url})
    assert seed.seed(url, "iris_data") == 150  # the seed-db command is tested in test_seed.py
    result = trainer("train", "--json", cwd=tmp_path, env=env)
    payload = ok_json(result)
    assert SECRET not in result.stdout + result.stderr
    run = client(tmp_path).get_run(payload["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.params["data"] == url.replace(SECRET, "***")
    assert (run.data.params["table"], run.data.params["limit"]) == ("iris_data", "100")
    assert (run.data.params["n_train"], run.data.params["n_valid"]) == ("80", "20")
    assert SECRET not in json.dumps(run.data.params)
    frame = pd.read_csv(tmp_path / "data.csv")
    assert len(frame) == 100
    assert list(frame.columns) == ["id", "timestamp", *IRIS_FEATURES, "target"]


def test_the_parser_knows_every_command() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert set(sub.choices) == {  # type: ignore[arg-type]
        "train", "evaluate", "promote", "seed-db", "create-bucket", "report",
    }  # fmt: skip
    args = parser.parse_args(["train", "--register", "--alias", "prod", "--skip-if-exists"])
    assert (args.register, args.alias, args.skip_if_exists) == ("", "prod", True)
    assert parser.parse_args(["train"]).data == "iris"


def test_trainer_data_env_sets_the_default_source(
    monkeypatch: pytest.MonkeyPatch, clean_settings: Any
) -> None:
    monkeypatch.setenv("TRAINER_DATA", "postgresql://u:p@db/iris")
    monkeypatch.setenv("TRAINER_EXPERIMENT", "other")
    args = build_parser().parse_args(["train"])
    assert (args.data, args.experiment) == ("postgresql://u:p@db/iris", "other")
