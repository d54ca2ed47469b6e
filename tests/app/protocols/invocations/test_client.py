"""MLflow's own `ScoringServerClient`, unchanged, against `python -m app` as a real process:
what it posts to /invocations is answered as `mlflow.pyfunc.load_model(uri).predict` answers."""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tests.app.conftest import TrainedModel
from tests.app.model.zoo import Zoo, zoo
from tests.iris import FEATURES
from tests.servers import free_port, python_env, running

MLFLOW_VARS = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
__all__ = ["zoo"]  # the zoo's session fixture


@contextmanager
def scoring_client(tracking_uri: str, uri: str, log: Path) -> Iterator[Any]:
    """MLflow's client on `python -m app -m URI` as a real process, stopped cleanly after."""
    from mlflow.pyfunc.scoring_server.client import ScoringServerClient

    port = free_port()
    env = python_env({"MLFLOW_TRACKING_URI": tracking_uri}, drop=(*MLFLOW_VARS, "MODEL_URI"))
    command = [sys.executable, "-m", "app", "-m", uri, "-p", str(port)]
    with running(command, env, log) as server:
        client = ScoringServerClient("127.0.0.1", port)
        client.wait_server_ready(timeout=60, scoring_server_proc=server.proc)
        yield client
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(20) == 0, server.output()


@pytest.fixture(scope="module")
def scoring(trained: TrainedModel, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The client on a running service serving models:/sk_model@champion."""
    log = tmp_path_factory.mktemp("invocations") / "app.log"
    with scoring_client(trained.tracking_uri, trained.alias_uri, log) as client:
        yield client


def test_invoke_with_params_a_model_takes(
    zoo: Zoo, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A custom model whose signature declares params, answering a DataFrame: the client's
    params reach it, and its answer comes back as MLflow's server shapes a DataFrame."""
    model = zoo.models["custom"]
    log = tmp_path_factory.mktemp("invocations-params") / "app.log"
    pyfunc = zoo.pyfunc("custom")
    with scoring_client(zoo.tracking_uri, model.uri, log) as client:
        for params in (None, {"scale": 0.5, "offset": 4}):
            answer = client.invoke(model.frame, params=params)
            expected = pyfunc.predict(model.frame, params=params)
            got = answer.get_predictions(predictions_format="dataframe")
            assert got["score"].tolist() == expected["score"].tolist()
        with pytest.raises(Exception, match="error code 422"):
            client.invoke(model.frame, params={"scale": "big"})


@pytest.fixture(scope="module")
def pyfunc(trained: TrainedModel) -> Any:
    import mlflow

    mlflow.set_tracking_uri(trained.tracking_uri)
    return mlflow.pyfunc.load_model(trained.alias_uri)


@pytest.fixture(scope="module")
def frame(iris_records: list[dict[str, float]]) -> pd.DataFrame:
    return pd.DataFrame.from_records(iris_records[::5], columns=list(FEATURES))


@pytest.mark.parametrize("params", [None, {"max_rows": 3}], ids=["no-params", "params"])
def test_invoke_with_a_dataframe(
    scoring: Any, pyfunc: Any, frame: pd.DataFrame, params: Any
) -> None:
    answer = scoring.invoke(frame, params=params)
    expected = pyfunc.predict(frame, params=params)
    assert answer.get_predictions(predictions_format="ndarray").tolist() == expected.tolist()
    assert len(set(expected.tolist())) == 3


@pytest.mark.parametrize("params", [None, {"max_rows": 3}], ids=["no-params", "params"])
def test_invoke_with_a_numpy_array(
    scoring: Any, pyfunc: Any, frame: pd.DataFrame, params: Any
) -> None:
    matrix = frame.to_numpy()
    answer = scoring.invoke(matrix, params=params)
    expected = pyfunc.predict(frame, params=params)
    assert answer["predictions"] == expected.tolist()


def test_invoke_with_a_dict_of_columns(scoring: Any, pyfunc: Any, frame: pd.DataFrame) -> None:
    import requests

    columns = {name: frame[name].to_numpy() for name in FEATURES}
    # MLflow 3's dump_input_data iterates the dict itself (`for k, v in data`), so its client
    # cannot send a dict of columns; when it can, this fails and the client is used instead.
    with pytest.raises(ValueError):
        scoring.invoke(columns)
    body = {"inputs": {name: values.tolist() for name, values in columns.items()}}
    url = scoring.url_prefix + "/invocations"
    response = requests.post(url, json=body, timeout=10)  # what it means to send
    assert response.status_code == 200, response.text
    assert response.json()["predictions"] == pyfunc.predict(frame).tolist()


def test_ping_and_version(scoring: Any) -> None:
    from importlib import metadata

    scoring.ping()
    assert scoring.get_version() == metadata.version("mlflow-skinny")


def test_an_invalid_frame_fails_as_the_client_reports_failures(
    scoring: Any, frame: pd.DataFrame
) -> None:
    with pytest.raises(Exception, match="error code 422"):
        scoring.invoke(frame.drop(columns=["petal_width"]))


def test_lists_and_arrays_as_mlflow_serializes_them(scoring: Any, pyfunc: Any) -> None:
    rows = np.array([[6.7, 3.3, 5.7, 2.1], [5.1, 3.5, 1.4, 0.2]])
    answer = scoring.invoke(rows.tolist())
    assert answer["predictions"] == pyfunc.predict(pd.DataFrame(rows, columns=FEATURES)).tolist()
