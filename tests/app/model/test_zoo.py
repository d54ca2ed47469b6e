"""Each model of the zoo served and held against `mlflow.pyfunc.load_model(uri).predict`
through /predict, /invocations (JSON and CSV) and V2 where its signature fits."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from tests.app.model.zoo import Doubler, Zoo, zoo

__all__ = ["zoo"]  # the session fixture, trained once

SIGNED = ["forest", "onehot", "proba", "custom", "columns"]


def _mlflow_answer(predictions: Any) -> Any:
    """What MLflow's scoring server puts under "predictions" for a model's output."""
    from mlflow.utils.proto_json_utils import NumpyEncoder, _get_jsonable_obj

    jsonable = _get_jsonable_obj(predictions, pandas_orient="records")
    return json.loads(json.dumps(jsonable, cls=NumpyEncoder))


def _values(predictions: Any) -> list[Any]:
    """A model's output as /predict lists it: one value (or row) per input row."""
    if isinstance(predictions, dict):  # a dict of columns: its records
        frame = pd.DataFrame(predictions)
        return [dict(zip(frame.columns, row, strict=True)) for row in frame.to_numpy().tolist()]
    if isinstance(predictions, pd.DataFrame):
        return list(predictions.iloc[:, 0]) if predictions.shape[1] == 1 else []
    return list(np.asarray(predictions).tolist())


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return json.loads(frame.to_json(orient="records"))


@pytest.fixture(scope="module")
def served(zoo: Zoo) -> Any:
    clients: dict[str, TestClient] = {}
    stack: list[Any] = []
    for name in SIGNED:
        context = zoo.serve(name)
        clients[name] = context.__enter__()
        stack.append(context)
    yield clients
    for context in reversed(stack):
        context.__exit__(None, None, None)


@pytest.mark.parametrize("name", SIGNED)
def test_predict_equals_pyfunc(zoo: Zoo, served: dict[str, TestClient], name: str) -> None:
    frame = zoo.models[name].frame
    expected = _values(zoo.pyfunc(name).predict(frame))
    response = served[name].post("/predict", json={"records": _records(frame)})
    assert response.status_code == 200, response.text
    assert response.json()["predictions"] == expected


@pytest.mark.parametrize("name", SIGNED)
@pytest.mark.parametrize("body", ["json", "csv", "parquet"])
def test_invocations_answer_as_mlflow_scoring_server(
    zoo: Zoo, served: dict[str, TestClient], name: str, body: str
) -> None:
    frame = zoo.models[name].frame
    expected = _mlflow_answer(zoo.pyfunc(name).predict(frame))
    content: str | bytes
    if body == "json":
        content = json.dumps({"dataframe_split": json.loads(frame.to_json(orient="split"))})
        kind = "application/json"
    elif body == "csv":
        content, kind = frame.to_csv(index=False), "text/csv"
    else:
        content, kind = frame.to_parquet(), "application/vnd.apache.parquet"
    response = served[name].post("/invocations", content=content, headers={"content-type": kind})
    assert response.status_code == 200, response.text
    assert response.json() == {"predictions": expected}


@pytest.mark.parametrize("name", ["forest", "proba", "custom"])  # numeric in, one output
def test_v2_infer_equals_pyfunc(zoo: Zoo, served: dict[str, TestClient], name: str) -> None:
    frame = zoo.models[name].frame
    expected = np.asarray(_values(zoo.pyfunc(name).predict(frame)))
    inputs = [
        {"name": column, "shape": [len(frame)], "datatype": "FP64", "data": frame[column].tolist()}
        for column in frame.columns
    ]
    model = served[name].get("/model-info").json()["name"]
    response = served[name].post(f"/v2/models/{model}/infer", json={"inputs": inputs})
    assert response.status_code == 200, response.text
    output = response.json()["outputs"][0]
    assert np.asarray(output["data"]).reshape(output["shape"]).tolist() == expected.tolist()


def test_params_reach_the_model_checked_against_its_params_schema(
    zoo: Zoo, served: dict[str, TestClient]
) -> None:
    frame, client = zoo.models["custom"].frame, served["custom"]
    split = json.loads(frame.to_json(orient="split"))
    pyfunc = zoo.pyfunc("custom")
    for params in ({"scale": 3.5}, {"scale": 3, "offset": 1}, {}):
        expected = pyfunc.predict(frame, params=params)
        body = {"dataframe_split": split, "params": params}
        response = client.post("/invocations", json=body)
        assert response.status_code == 200, response.text
        assert response.json() == {"predictions": _mlflow_answer(expected)}, params
        response = client.post("/predict", json={"records": _records(frame), "params": params})
        assert response.status_code == 200, response.text
        assert response.json()["predictions"] == _values(expected), params
    assert (
        pyfunc.predict(frame, params={"scale": 3.5}).iloc[0, 0]
        != (pyfunc.predict(frame).iloc[0, 0])
    )  # the param changes the answer: the checks above see it pass through
    wrong: list[tuple[dict[str, Any], list[Any]]] = [
        ({"scale": "big-secret-9"}, ["params", "scale"]),
        ({"offset": 1.5}, ["params", "offset"]),
        ({"scale": True}, ["params", "scale"]),
        ({"scael": 3.0}, ["params"]),
    ]
    for bad, loc in wrong:
        for path, data in (("/invocations", "dataframe_split"), ("/predict", "dataframe_split")):
            response = client.post(path, json={data: split, "params": bad})
            assert response.status_code == 422, (path, bad, response.text)
            assert response.json()["error"]["details"][0]["loc"] == loc, (path, bad)
            assert "secret" not in response.text and "scael" not in response.text
    described = client.get("/model-info").json()["signature"]["params"]
    assert {p["name"]: p["default"] for p in described} == Doubler.PARAMS


def test_the_onehot_pipeline_names_a_wrong_type_in_csv(served: dict[str, TestClient]) -> None:
    body = "color,count,size\nred,three,0.5\n"
    response = served["onehot"].post(
        "/invocations", content=body, headers={"content-type": "text/csv"}
    )
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["loc"] == ["csv", 0, "count"]


def test_a_model_without_a_signature_is_served_passing_its_input_through(zoo: Zoo) -> None:
    frame = zoo.models["unsigned"].frame
    expected = zoo.pyfunc("unsigned").predict(frame).tolist()
    rows = frame.to_numpy().tolist()
    with zoo.serve("unsigned") as client:
        info = client.get("/model-info").json()
        assert info["signature"] is None
        bodies = [
            ("/predict", {"records": _records(frame)}),
            ("/invocations", {"dataframe_split": json.loads(frame.to_json(orient="split"))}),
            ("/invocations", {"inputs": rows}),  # positional: the array MLflow hands the model
            ("/invocations", {"instances": _records(frame)}),
        ]
        for path, body in bodies:
            response = client.post(path, json=body)
            assert response.status_code == 200, (path, response.text)
            assert response.json()["predictions"] == expected, (path, body.keys())
        csv = client.post(
            "/invocations", content=frame.to_csv(index=False), headers={"content-type": "text/csv"}
        )
        assert csv.status_code == 200, csv.text
        assert csv.json() == {"predictions": expected}
        ragged = client.post("/invocations", json={"inputs": [[1.0, 2.0, 3.0], [1.0]]})
        assert ragged.status_code == 422
        assert ragged.json()["error"]["details"][0]["loc"] == ["inputs", 1]
        wrong = client.post("/invocations", json={"inputs": [[1.0, 2.0]]})
        assert wrong.status_code == 422, wrong.text  # the model refuses two features
        assert client.get("/openapi.json").status_code == 200
        v2 = client.get(f"/v2/models/{info['name']}")
        assert v2.status_code == 200, v2.text
        assert v2.json()["inputs"] == []  # no signature: nothing for V2's tensors to name
        tensor = {"name": "a", "shape": [1], "datatype": "FP64", "data": [1.0]}
        infer = client.post(f"/v2/models/{info['name']}/infer", json={"inputs": [tensor]})
        assert infer.status_code == 400, infer.text
