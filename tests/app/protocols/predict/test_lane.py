"""POST /predict through the real app and lifespan, on a model the trainer logged to MLflow."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.app.conftest import IRIS_EXAMPLE, AppFactory, TrainedModel
from tests.iris import FEATURES

NAMES = list(FEATURES)
SECRET = "leak-me-7731"  # a client value that must never come back in an error


def post_json(client: TestClient, body: Any) -> Any:
    return client.post(
        "/predict", content=json.dumps(body), headers={"content-type": "application/json"}
    )


def test_one_record_answers_the_seed_example_with_model_identity(
    client: TestClient, trained: TrainedModel, reference: Any
) -> None:
    response = post_json(client, IRIS_EXAMPLE)
    assert response.status_code == 200
    body = response.json()
    assert body["predictions"] == reference([IRIS_EXAMPLE])
    assert body["predictions"][0] in (0, 1, 2)
    assert body["model"] == {
        "name": "sk_model",
        "version": "1",
        "alias": "champion",
        "run_id": trained.run_id,
        "uri": trained.alias_uri,
    }


def test_batch_predictions_equal_mlflow_pyfunc_in_order(
    client: TestClient, iris_records: list[dict[str, float]], reference: Any
) -> None:
    records = iris_records[::-1][:150]
    response = post_json(client, {"records": records})
    assert response.status_code == 200
    predictions = response.json()["predictions"]
    assert predictions == reference(records)
    assert len(set(predictions)) == 3  # all three classes, so order really is checked


def _formats(records: list[dict[str, float]]) -> dict[str, Any]:
    rows = [[r[n] for n in NAMES] for r in records]
    reordered = NAMES[::-1]
    return {
        "dataframe_split": {"dataframe_split": {"columns": NAMES, "data": rows}},
        "dataframe_split_reordered": {
            "dataframe_split": {
                "columns": reordered,
                "data": [[r[n] for n in reordered] for r in records],
            }
        },
        "dataframe_split_with_index": {
            "dataframe_split": {"index": list(range(len(rows))), "columns": NAMES, "data": rows}
        },
        "dataframe_records": {"dataframe_records": records},
        "instances_records": {"instances": records},
        "instances_rows": {"instances": rows},
        "inputs_records": {"inputs": records},
        "inputs_columns": {"inputs": {n: [r[n] for r in records] for n in NAMES}},
    }


@pytest.mark.parametrize("fmt", list(_formats([IRIS_EXAMPLE])))
def test_mlflow_scoring_formats_give_the_same_predictions(
    client: TestClient, iris_records: list[dict[str, float]], reference: Any, fmt: str
) -> None:
    records = iris_records[40:110]
    response = post_json(client, _formats(records)[fmt])
    assert response.status_code == 200, response.text
    assert response.json()["predictions"] == reference(records)


@pytest.mark.parametrize("which", ["runs_uri", "alias_uri", "version_uri"])
def test_every_uri_form_serves_the_same_model(
    serve: AppFactory,
    trained: TrainedModel,
    iris_records: list[dict[str, float]],
    reference: Any,
    which: str,
) -> None:
    uri = getattr(trained, which)
    with serve(uri) as c:
        body = post_json(c, {"records": iris_records}).json()
    assert body["predictions"] == reference(iris_records)
    assert body["model"]["run_id"] == trained.run_id
    assert body["model"]["uri"] == uri
    assert body["model"]["version"] == (None if which == "runs_uri" else "1")


def _record(**changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = dict(IRIS_EXAMPLE)
    for key, value in changes.items():
        if value is _DROP:
            record.pop(key)
        else:
            record[key] = value
    return record


_DROP = object()

BAD_BODIES: dict[str, tuple[str, int, list[Any]]] = {
    # name: (raw JSON body, status, loc of the first error)
    "missing field": (json.dumps(_record(petal_width=_DROP)), 422, ["petal_width"]),
    "unknown field": (json.dumps(_record(colour=SECRET)), 422, ["colour"]),
    "string for number": (json.dumps(_record(sepal_width=SECRET)), 422, ["sepal_width"]),
    "numeric string": (json.dumps(_record(sepal_width="3.3")), 422, ["sepal_width"]),
    "boolean for number": (json.dumps(_record(sepal_width=True)), 422, ["sepal_width"]),
    "null": (json.dumps(_record(petal_length=None)), 422, ["petal_length"]),
    "NaN": (json.dumps(_record(petal_length=float("nan"))), 422, ["petal_length"]),
    "Infinity": (json.dumps(_record(petal_length=float("inf"))), 422, ["petal_length"]),
    "-Infinity": (json.dumps(_record(sepal_length=float("-inf"))), 422, ["sepal_length"]),
    "overflowing number": (  # valid JSON that Python's json cannot write: spliced in
        json.dumps(_record(sepal_length=0.5)).replace("0.5", "1e999"),
        422,
        ["sepal_length"],
    ),
    "finite, but overflows in the model": (json.dumps(_record(sepal_length=1.7e308)), 422, []),
    "object for number": (json.dumps(_record(sepal_width={"v": SECRET})), 422, ["sepal_width"]),
    "bad record in batch": (
        json.dumps({"records": [IRIS_EXAMPLE, IRIS_EXAMPLE, _record(petal_width=SECRET)]}),
        422,
        ["records", 2, "petal_width"],
    ),
    "record not an object": (json.dumps({"records": [IRIS_EXAMPLE, SECRET]}), 422, ["records", 1]),
    "empty batch": (json.dumps({"records": []}), 422, ["records"]),
    "empty object": ("{}", 422, []),
    "records not an array": (json.dumps({"records": SECRET}), 422, ["records"]),
    "batch over the limit": (json.dumps({"records": [IRIS_EXAMPLE] * 201}), 422, ["records"]),
    "not JSON": ("{sepal_length: 6.7, " + SECRET, 422, []),
    "top-level array": (json.dumps([IRIS_EXAMPLE]), 422, []),
    "two formats": (json.dumps({"records": [IRIS_EXAMPLE], "instances": [IRIS_EXAMPLE]}), 422, []),
    "split row too short": (
        json.dumps({"dataframe_split": {"columns": NAMES, "data": [[1.0, 2.0, 3.0]]}}),
        422,
        ["dataframe_split", "data", 0],
    ),
    "split unknown column": (
        json.dumps(
            {"dataframe_split": {"columns": [*NAMES[:3], "colour"], "data": [[1, 2, 3, 4]]}}
        ),
        422,
        ["dataframe_split", "columns", "petal_width"],
    ),
    "split reordered row too long": (
        json.dumps({"dataframe_split": {"columns": NAMES[::-1], "data": [[1, 2, 3, 4, 999]]}}),
        422,
        ["dataframe_split", "data", 0],
    ),
    "unpaired surrogate in a field name": (
        json.dumps(IRIS_EXAMPLE)[:-1] + ', "\\ud800": 1}',
        422,
        ["\\ud800"],
    ),
    "instances row of strings": (
        json.dumps({"instances": [[1.0, 2.0, 3.0, SECRET]]}),
        422,
        ["instances", 0, "petal_width"],
    ),
    "unknown inference params": (
        json.dumps({"instances": [IRIS_EXAMPLE], "params": {"k": SECRET}}),
        422,
        ["params"],
    ),
}


@pytest.mark.parametrize("case", list(BAD_BODIES))
def test_bad_input_answers_422_naming_the_field_without_echoing_it(
    client: TestClient, case: str
) -> None:
    raw, status, loc = BAD_BODIES[case]
    response = client.post("/predict", content=raw, headers={"content-type": "application/json"})
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert set(error) == {"status", "code", "message", "details"}
    assert error["status"] == status and error["code"] == "invalid_input"
    assert error["details"], "every 422 says what is wrong"
    assert error["details"][0]["loc"] == loc
    if loc:
        assert str(loc[-1]) in error["message"]
    assert SECRET not in response.text
    assert "Traceback" not in response.text


def test_every_problem_in_a_batch_is_listed(client: TestClient) -> None:
    bad = [_record(sepal_width="x"), IRIS_EXAMPLE, _record(petal_width=_DROP), _record(extra=1)]
    error = post_json(client, {"records": bad}).json()["error"]
    locs = [d["loc"] for d in error["details"]]
    assert locs == [
        ["records", 0, "sepal_width"],
        ["records", 2, "petal_width"],
        ["records", 3, "extra"],
    ]
    assert "and 2 more errors" in error["message"]


def test_wrong_content_type_answers_415(client: TestClient) -> None:
    response = client.post(
        "/predict", content=json.dumps(IRIS_EXAMPLE), headers={"content-type": "text/csv"}
    )
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_media_type"


def test_form_encoded_body_answers_415(client: TestClient) -> None:
    response = client.post("/predict", data={"sepal_length": "6.7"})
    assert response.status_code == 415


def test_body_over_the_size_limit_answers_413(client: TestClient) -> None:
    big = json.dumps({"records": [IRIS_EXAMPLE] * 1000})  # > 64 KiB, the fixture's limit
    response = client.post("/predict", content=big, headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


def test_json_without_content_type_header_is_accepted(client: TestClient) -> None:
    response = client.post("/predict", content=json.dumps(IRIS_EXAMPLE))
    assert response.status_code == 200


def test_unknown_route_and_method_use_the_error_shape(client: TestClient) -> None:
    missing = client.get("/nope")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    wrong_method = client.get("/predict")
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error"]["code"] == "method_not_allowed"


def test_a_large_body_answers_and_refuses_as_a_small_one_does(
    serve: AppFactory, iris_records: list[dict[str, float]], reference: Any
) -> None:
    """Bodies over 16 KiB are parsed and predicted together on a model thread: the same
    predictions, and a row the model refuses is named by its index, as in a small body."""
    records = (iris_records * 7)[:1000]

    def refusing(rows: list[dict[str, float]], at: int) -> dict[str, Any]:
        return {
            "dataframe_records": [*rows[:at], {**rows[at], "sepal_width": 1.7e308}, *rows[at + 1 :]]
        }

    with serve(max_request_rows=2000, max_body_bytes=1024 * 1024) as client:
        for fmt, body in _formats(records).items():
            assert len(json.dumps(body)) > 16 * 1024
            response = post_json(client, body)
            assert response.status_code == 200, (fmt, response.text)
            assert response.json()["predictions"] == reference(records), fmt
        small = post_json(client, refusing(records[:10], 7))
        large = post_json(client, refusing(records, 637))
    assert small.status_code == large.status_code == 422, (small.text, large.text)
    small_details, large_details = (
        small.json()["error"]["details"],
        large.json()["error"]["details"],
    )
    assert [d["loc"] for d in small_details] == [["dataframe_records", 7]]
    assert [d["loc"] for d in large_details] == [["dataframe_records", 637]]
    assert large_details[0]["msg"] == small_details[0]["msg"]
