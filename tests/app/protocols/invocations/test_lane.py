"""POST /invocations through the real app and lifespan: MLflow's JSON formats, `text/csv` and
its edge cases, the limits and the one error shape; MLflow's /health and /version."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.app.conftest import IRIS_EXAMPLE
from tests.iris import FEATURES

NAMES = list(FEATURES)
SECRET = "leak-me-7731"  # a client value that must never come back in an error


def invoke(client: TestClient, body: bytes | str, content_type: str = "application/json") -> Any:
    data = body.encode() if isinstance(body, str) else body
    return client.post("/invocations", content=data, headers={"content-type": content_type})


def to_csv(records: list[dict[str, float]], names: list[str] = NAMES) -> str:
    lines = [",".join(names)] + [",".join(repr(r[n]) for n in names) for r in records]
    return "\n".join(lines) + "\n"


def assert_error(response: Any, status: int, loc: list[Any] | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["status"] == status and error["message"]
    assert SECRET not in response.text
    if loc is not None:
        assert error["details"][0]["loc"] == loc, error
    return dict(error)


@pytest.mark.parametrize(
    "shape",
    ["dataframe_split", "dataframe_records", "instances", "inputs", "inputs_columns"],
)
def test_mlflow_json_formats_answer_predictions_as_mlflow_does(
    client: TestClient, iris_records: list[dict[str, float]], reference: Any, shape: str
) -> None:
    records = iris_records[::7]
    rows = [[r[n] for n in NAMES] for r in records]
    bodies: dict[str, Any] = {
        "dataframe_split": {"dataframe_split": {"columns": NAMES, "data": rows}},
        "dataframe_records": {"dataframe_records": records},
        "instances": {"instances": rows},
        "inputs": {"inputs": records},
        "inputs_columns": {"inputs": {n: [r[n] for r in records] for n in NAMES}},
    }
    response = invoke(client, json.dumps(bodies[shape]))
    assert response.status_code == 200, response.text
    assert response.json() == {"predictions": reference(records)}


def test_params_are_ignored_as_mlflow_ignores_them_without_a_params_schema(
    client: TestClient, reference: Any
) -> None:
    body = {"dataframe_records": [IRIS_EXAMPLE], "params": {"temperature": 0.5}}
    response = invoke(client, json.dumps(body))
    assert response.status_code == 200, response.text
    assert response.json()["predictions"] == reference([IRIS_EXAMPLE])
    # /predict, the service's own protocol, still refuses params it cannot honour
    assert client.post("/predict", json=body).status_code == 422


@pytest.mark.parametrize(
    "body",
    [{"records": [IRIS_EXAMPLE]}, IRIS_EXAMPLE, [IRIS_EXAMPLE], {}],
    ids=["records", "bare-record", "array", "empty"],
)
def test_bodies_in_no_mlflow_format_are_refused(client: TestClient, body: Any) -> None:
    error = assert_error(invoke(client, json.dumps(body)), 422, [])
    assert "dataframe_split" in error["message"] or "JSON object" in error["message"]


def test_invalid_values_are_named_without_echoing_them(client: TestClient) -> None:
    record = {**IRIS_EXAMPLE, "petal_width": SECRET}
    response = invoke(client, json.dumps({"dataframe_records": [IRIS_EXAMPLE, record]}))
    assert_error(response, 422, ["dataframe_records", 1, "petal_width"])


def test_csv_body_answers_what_json_does(
    client: TestClient, iris_records: list[dict[str, float]], reference: Any
) -> None:
    records = iris_records[::3]
    response = invoke(client, to_csv(records), "text/csv")
    assert response.status_code == 200, response.text
    assert response.json() == {"predictions": reference(records)}
    # columns in another order, CRLF line ends, a charset and the index to_csv() writes
    names = NAMES[::-1]
    lines = ["," + ",".join(names)] + [
        f"{i}," + ",".join(repr(r[n]) for n in names) for i, r in enumerate(records)
    ]
    response = invoke(client, "\r\n".join(lines), "text/csv; charset=utf-8")
    assert response.status_code == 200, response.text
    assert response.json()["predictions"] == reference(records)
    # quoted fields, as a CSV writer may quote every one
    quoted = "\n".join(",".join(f'"{cell}"' for cell in line.split(",")) for line in lines)
    response = invoke(client, quoted, "text/csv")
    assert response.status_code == 200, response.text
    assert response.json()["predictions"] == reference(records)


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ("sepal_length,sepal_width,petal_length,petal_wide\n1,2,3,4\n", ["csv", "petal_width"]),
        ("sepal_length,sepal_width,petal_length\n1,2,3\n", ["csv", "petal_width"]),
        (to_csv([IRIS_EXAMPLE]).replace("2.1", f'"{SECRET}"'), ["csv", 0, "petal_width"]),
        (to_csv([IRIS_EXAMPLE]).replace("2.1", f'"2.1{SECRET}'), ["csv"]),
        ("", ["csv"]),
        ("\n\n", ["csv"]),
        (",".join(NAMES) + "\n", ["csv"]),
        (",".join(NAMES) + "\n1,2,3,x" + SECRET + "\n", ["csv", 0, "petal_width"]),
        (",".join(NAMES) + "\n1,2,3\n", ["csv", 0]),
        (",".join(NAMES) + "\n1,2,3,\n", ["csv", 0, "petal_width"]),
        (",".join(NAMES) + "\n1,2,3,nan\n", ["csv", 0, "petal_width"]),
        ("sepal_length,sepal_length,petal_length,petal_width\n1,2,3,4\n", ["csv", "header"]),
    ],
    ids=[
        "wrong-header", "missing-column", "quoted-text", "unterminated-quote", "empty-body",
        "blank-lines", "header-only", "not-a-number", "short-row", "empty-cell", "nan",
        "duplicate-column",
    ],
)  # fmt: skip
def test_csv_edge_cases_are_a_clear_4xx_in_the_one_error_shape(
    client: TestClient, body: str, loc: list[Any]
) -> None:
    assert_error(invoke(client, body, "text/csv"), 422, loc)


def test_csv_over_the_limits(client: TestClient) -> None:
    # the module's app: MAX_REQUEST_ROWS=200, MAX_BODY_BYTES=64 KiB
    many = to_csv([IRIS_EXAMPLE] * 201)
    assert_error(invoke(client, many, "text/csv"), 422, ["csv"])
    huge = to_csv([IRIS_EXAMPLE] * 5000)
    assert len(huge) > 64 * 1024
    assert_error(invoke(client, huge, "text/csv"), 413)


def test_csv_that_is_not_utf8_is_refused(client: TestClient) -> None:
    body = (",".join(NAMES) + "\n1,2,3,4\n").encode("utf-16")
    assert_error(invoke(client, body, "text/csv"), 422)


def test_parquet_body_answers_what_json_does(
    client: TestClient, iris_records: list[dict[str, float]], reference: Any
) -> None:
    import pandas as pd

    records = iris_records[::4]
    frame = pd.DataFrame.from_records(records)[NAMES[::-1]]  # any column order
    body = frame.to_parquet()  # with the index, as pandas writes it by default
    response = invoke(client, body, "application/vnd.apache.parquet")
    assert response.status_code == 200, response.text
    assert response.json() == {"predictions": reference(records)}
    wrong = frame.assign(petal_width=[SECRET] * len(frame)).to_parquet(index=False)
    response = invoke(client, wrong, "application/vnd.apache.parquet")
    assert_error(response, 422, ["parquet", 0, "petal_width"])


@pytest.mark.parametrize("body", [b"", b"PAR1 not really", to_csv([IRIS_EXAMPLE]).encode()])
def test_a_body_that_is_not_parquet_is_a_clear_422(client: TestClient, body: bytes) -> None:
    error = assert_error(invoke(client, body, "application/vnd.apache.parquet"), 422, ["parquet"])
    assert "Parquet" in error["message"] or "empty" in error["message"]


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-parquet", "text/csv; charset=latin-1",
     "application/json; format=pandas-split"],
)  # fmt: skip
def test_other_content_types_are_415(client: TestClient, content_type: str) -> None:
    assert_error(invoke(client, to_csv([IRIS_EXAMPLE]), content_type), 415)


def test_only_post(client: TestClient) -> None:
    response = client.get("/invocations")
    assert_error(response, 405)
    assert response.headers["allow"] == "POST"


def test_request_id_and_metrics_count_invocations(client: TestClient) -> None:
    response = client.post(
        "/invocations",
        content=to_csv([IRIS_EXAMPLE]),
        headers={"content-type": "text/csv", "x-request-id": "inv-1"},
    )
    assert response.status_code == 200
    assert response.headers["x-request-id"] == "inv-1"
    metrics = client.get("/metrics").text
    assert 'route="/invocations"' in metrics


def test_api_key_guards_invocations(serve: Any) -> None:
    key = "k" * 24
    with serve(api_key=key) as client:
        body = json.dumps({"inputs": [IRIS_EXAMPLE]})
        assert_error(invoke(client, body), 401)
        response = client.post(
            "/invocations",
            content=body,
            headers={"content-type": "application/json", "authorization": f"Bearer {key}"},
        )
        assert response.status_code == 200


def test_mlflow_probes_and_version(client: TestClient) -> None:
    from importlib import metadata

    assert client.get("/ping").status_code == 200
    assert client.get("/health").status_code == 200
    version = client.get("/version")
    assert version.status_code == 200
    assert version.text == metadata.version("mlflow-skinny")


def test_openapi_documents_invocations_with_json_csv_and_parquet(client: TestClient) -> None:
    operation = client.get("/openapi.json").json()["paths"]["/invocations"]["post"]
    content = operation["requestBody"]["content"]
    assert set(content) == {"application/json", "text/csv", "application/vnd.apache.parquet"}
    assert "422" in operation["responses"] and "415" in operation["responses"]


def _csv_bodies(records: list[dict[str, float]]) -> list[bytes]:
    """Plain CSV bodies (the compiled decoder's) and near misses (the general reader's)."""
    plain = to_csv(records)
    header, *lines = plain.splitlines()
    swapped = (
        ",".join(NAMES[::-1]) + "\n" + "\n".join(",".join(line.split(",")[::-1]) for line in lines)
    )
    variants = [
        plain, swapped, plain.replace("\n", "\r\n"), plain + "\n\n", plain.replace(",", ", "),
        "\ufeff" + plain, plain.replace("2.1", "2_1"), plain.replace("2.1", "nan"),
        plain.replace("2.1", ""), plain.replace("2.1", "1e400"), plain.replace("6.7", "x"),
        plain.replace(header, header.replace("petal_width", "petal_wide")),
        header + "\n" + lines[0] + ",9\n", header + "\n",
    ]  # fmt: skip
    return [v.encode() for v in variants]


def test_csv_answers_the_same_with_the_compiled_decoder_on_and_off(
    client: TestClient, iris_records: list[dict[str, float]]
) -> None:
    from app.dataplane import DataPlane
    from app.protocols.invocations.lane import PATH

    plane: DataPlane = client.app.lanes[PATH].plane  # type: ignore[attr-defined]
    statuses = []
    try:
        for body in _csv_bodies(iris_records[::10]):
            answers = []
            for fast in (True, False):
                plane.fast_decoders = fast
                response = invoke(client, body, "text/csv")
                answers.append((response.status_code, response.content))
            assert answers[0] == answers[1], body[:120]
            statuses.append(answers[0][0])
    finally:
        plane.fast_decoders = True
    assert statuses.count(200) >= 6 and 422 in statuses
