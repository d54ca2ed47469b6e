"""The Open Inference Protocol (V2) lane through the real app and lifespan, on the trainer's
model: endpoints, the tensor layouts a request may use, errors in the protocol's shape (with
/predict's validation and no-echo rules), auth, limits and metrics."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.api.application import create_app
from app.http.auth import SCHEME
from app.model.predictor import ModelIdentity
from app.model.schema import Column, InputSchema
from app.settings import Settings
from tests.app.conftest import IRIS_EXAMPLE, AppFactory, wait_ready
from tests.app.fakes import FakeModel
from tests.app.serving.test_lifecycle import GatedModel

NAMES = list(IRIS_EXAMPLE)
INFER = "/v2/models/sk_model/infer"
SECRET = 7731.4242  # a client value that must never come back in an error
JSON = {"content-type": "application/json"}


def columns(rows: list[list[Any]], datatype: str = "FP64", nested: bool = False) -> list[Any]:
    """One tensor per model input, [n] (or [n, 1] nested)."""
    return [
        {
            "name": name,
            "datatype": datatype,
            "shape": [len(rows), 1] if nested else [len(rows)],
            "data": [[r[i]] if nested else r[i] for r in rows],
        }
        for i, name in enumerate(NAMES)
    ]


def matrix(rows: list[list[Any]], datatype: str = "FP64", flat: bool = False) -> list[Any]:
    """One [n, 4] tensor, the inputs in signature order."""
    data = [v for r in rows for v in r] if flat else rows
    return [{"name": "input-0", "datatype": datatype, "shape": [len(rows), 4], "data": data}]


def infer(client: TestClient, body: Any, path: str = INFER, **headers: str) -> Any:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.post(path, content=raw, headers={**JSON, **headers})


@pytest.fixture(scope="module")
def rows(iris_records: list[dict[str, float]]) -> list[list[float]]:
    return [[r[n] for n in NAMES] for r in iris_records[::-1][::2]]


# -- endpoints ---------------------------------------------------------------------------------


def test_server_probes_and_metadata(client: TestClient) -> None:
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").json() == {"ready": True}
    server = client.get("/v2")
    assert server.status_code == 200
    assert server.json() == {"name": "model-serving", "version": "0.1.0", "extensions": []}


def test_model_metadata_describes_the_signature_as_tensors(client: TestClient) -> None:
    expected = {
        "name": "sk_model",
        "versions": ["1"],
        "platform": "mlflow_sklearn",
        "inputs": [{"name": n, "datatype": "FP64", "shape": [-1]} for n in NAMES],
        "outputs": [{"name": "predict", "datatype": "INT64", "shape": [-1]}],
    }
    assert client.get("/v2/models/sk_model").json() == expected
    assert client.get("/v2/models/sk_model/versions/1").json() == expected
    assert client.get("/v2/models/sk_model/ready").json() == {"name": "sk_model", "ready": True}
    assert client.get("/v2/models/sk_model/versions/1/ready").status_code == 200


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/v2/models/leak-me-model", "unknown model: this service serves model 'sk_model'"),
        ("/v2/models/leak-me-model/ready", "unknown model: this service serves model 'sk_model'"),
        ("/v2/models/sk_model/versions/99/infer", "serves version 1"),
        ("/v2/models/sk_model/versions/leak-me/ready", "serves version 1"),
        ("/v2/models/sk%2Fmodel", "unknown model"),  # an encoded '/' stays in the name
    ],
)
def test_another_model_or_version_is_404_naming_the_served_one(
    client: TestClient, path: str, message: str
) -> None:
    method = "POST" if path.endswith("/infer") else "GET"
    answer = client.request(method, path, content=json.dumps({"inputs": matrix([[1, 2, 3, 4]])}))
    assert answer.status_code == 404
    assert message in answer.json()["error"]
    assert set(answer.json()) == {"error"}
    assert "leak-me" not in answer.text and "99" not in answer.text


def test_unknown_v2_paths_and_methods_answer_in_the_protocol_shape(client: TestClient) -> None:
    for path in ("/v2/", "/v2/models", "/v2/models/sk_model/explain", "/v2/health/dead"):
        answer = client.get(path)
        assert answer.status_code == 404, path
        assert answer.json()["error"].startswith("not found")
    wrong = client.get(INFER)
    assert (wrong.status_code, wrong.headers["allow"]) == (405, "POST")
    assert wrong.json() == {"error": "method not allowed: use POST"}
    assert client.post("/v2/health/live").headers["allow"] == "GET"
    # Only /v2 and the paths beneath it are the lane's.
    assert client.get("/v2x").json()["error"]["code"] == "not_found"


# -- inference ---------------------------------------------------------------------------------


def _layouts(rows: list[list[float]]) -> dict[str, list[Any]]:
    reordered = columns(rows)[::-1]
    return {
        "columns": columns(rows),
        "columns_n_1_flat": [{**t, "shape": [len(rows), 1]} for t in columns(rows)],
        "columns_n_1_nested": columns(rows, nested=True),
        "columns_reordered": reordered,
        "columns_fp32": columns(rows, "FP32"),
        "matrix_nested": matrix(rows),
        "matrix_flat": matrix(rows, flat=True),
    }


@pytest.mark.parametrize("layout", list(_layouts([[1.0] * 4])))
def test_every_tensor_layout_answers_pyfunc_s_predictions(
    client: TestClient, rows: list[list[float]], reference: Any, layout: str
) -> None:
    answer = infer(client, {"inputs": _layouts(rows)[layout]})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    expected = reference([dict(zip(NAMES, r, strict=True)) for r in rows])
    assert len(set(expected)) == 3
    assert body == {
        "model_name": "sk_model",
        "model_version": "1",
        "outputs": [
            {"name": "predict", "datatype": "INT64", "shape": [len(rows)], "data": expected}
        ],
    }
    predict = client.post("/predict", json={"dataframe_split": {"columns": NAMES, "data": rows}})
    assert predict.json()["predictions"] == expected


def test_integer_data_and_a_large_body_are_served(
    client: TestClient, rows: list[list[float]], reference: Any
) -> None:
    ints = [[7, 3, 6, 2], [5, 3, 1, 0]]
    answer = infer(client, {"inputs": matrix(ints, "INT64")})
    assert answer.json()["outputs"][0]["data"] == reference(
        [dict(zip(NAMES, map(float, r), strict=True)) for r in ints]
    )
    many = (rows * 3)[:200]
    body = {"inputs": matrix(many, flat=True), "id": "i" * 16 * 1024}  # > 16 KiB: on a thread
    answer = infer(client, body)
    assert answer.json()["id"] == body["id"]
    assert answer.json()["outputs"][0]["data"] == reference(
        [dict(zip(NAMES, r, strict=True)) for r in many]
    )


def test_id_outputs_and_parameters_are_honoured(client: TestClient) -> None:
    row = [[6.7, 3.3, 5.7, 2.1]]
    plain = infer(client, {"inputs": matrix(row)}).json()
    assert "id" not in plain
    body = {
        "id": "req-42",
        "parameters": {"binary_data_output": True, "priority": 1, "custom": "x"},
        "inputs": [{**matrix(row)[0], "parameters": {"content_type": "np"}}],
        "outputs": [{"name": "predict", "parameters": {"binary_data": True}}],
        "model_name": "sk_model",  # the KServe SDK sends it
    }
    answer = infer(client, body)
    assert answer.status_code == 200, answer.text
    assert answer.json()["id"] == "req-42"
    assert answer.json()["outputs"] == plain["outputs"]  # JSON data, which every client reads
    assert infer(client, {**body, "outputs": []}).json()["outputs"] == plain["outputs"]


# -- errors --------------------------------------------------------------------------------------

ROW = [6.7, 3.3, 5.7, 2.1]


def _with(tensor: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {"inputs": [{**tensor, **changes}]}


M = matrix([ROW, ROW])[0]
BAD: dict[str, tuple[Any, str]] = {
    "not_json": (b'{"inputs": [', "body is not valid JSON"),
    "not_an_object": ([M], "expected an inference request (an object), got array"),
    "unknown_key": ({"inputs": [M], "extra": "leak-me"}, "unknown key(s): extra"),
    "no_inputs": ({"id": "x"}, "inputs: field required"),
    "inputs_not_array": ({"inputs": {"a": 1}}, "inputs: expected an array of input tensors"),
    "no_tensors": ({"inputs": []}, "inputs: empty: send at least one input tensor"),
    "tensor_not_object": ({"inputs": [1]}, "inputs[0]: expected an input tensor (an object)"),
    "tensor_unknown_key": (_with(M, raw=1), "inputs[0]: unknown key(s): raw"),
    "no_datatype": (_with(M, datatype=None), "inputs[0].datatype: field required"),
    "no_data": ({"inputs": [{k: v for k, v in M.items() if k != "data"}]}, ".data: field required"),
    "bad_datatype": (_with(M, datatype="FP128"), "inputs[0].datatype: unsupported datatype"),
    "datatype_array": (_with(M, datatype=["FP64"]), "inputs[0].datatype: unsupported datatype"),
    "model_refuses_the_row": (
        {"inputs": matrix([[6.7, 1.7e308, 5.7, 2.1]])},
        "inputs[0].data[0]: the model cannot predict on these values",
    ),
    "negative_shape": (_with(M, shape=[-2, 4]), "shape: expected an array of non-negative"),
    "bool_shape": (_with(M, shape=[True, 4]), "shape: expected an array of non-negative"),
    "data_not_array": (_with(M, data={"x": SECRET}), "inputs[0].data: expected an array, got"),
    "matrix_width": (_with(M, shape=[2, 3]), "inputs[0].shape: expected [n, 4]"),
    "matrix_count": (_with(M, data=[*ROW, *ROW, SECRET]), "expected 8 values (the shape), got 9"),
    "matrix_ragged": (_with(M, data=[ROW, [*ROW, SECRET]]), "expected 2 rows of 4 values"),
    "matrix_too_deep": (_with(M, data=[[[v] for v in ROW]] * 2), "data[0][0]: expected numbers"),
    "empty_batch": (_with(M, shape=[0, 4], data=[]), "inputs[0].shape: empty batch"),
    "over_max_rows": (_with(M, shape=[201, 4]), "batch of 201 records is over the limit of 200"),
    "string": (_with(M, data=[ROW, [1, "leak-me", 2, 3]]), "data[1][1]: expected numbers for FP64"),
    "null": (
        _with(M, data=[ROW, [1, None, 2, 3]]),
        "data[1][1]: expected numbers for FP64, got null",
    ),
    "bool_values": (_with(M, data=[ROW, [1, True, 2, 3]]), "got boolean"),
    "bool_datatype": (
        _with(M, datatype="BOOL", data=[[True] * 4] * 2),
        "inputs[0].datatype: BOOL does not fit input 'sepal_length' (type double)",
    ),
    "bytes_datatype": (_with(M, datatype="BYTES"), "BYTES does not fit input"),
    "float_for_int": (
        _with(M, datatype="INT64"),
        "inputs[0].data[0][0]: expected integers for INT64",
    ),
    "nan_nested": (
        b'{"inputs":[{"name":"m","datatype":"FP64","shape":[2,4],"data":[[1,2,3,4],[1,2,NaN,4]]}]}',
        "inputs[0].data[1][2]: must be a finite number",
    ),
    "nan_flat": (
        b'{"inputs":[{"name":"m","datatype":"FP64","shape":[2,4],"data":[1,2,3,4,1,2,NaN,4]}]}',
        "inputs[0].data[6]: must be a finite number",
    ),
    "id_not_string": ({"id": 7, "inputs": [M]}, "id: expected a string, got number"),
    "parameters_nested": (
        {"parameters": {"p": ["leak-me", SECRET]}, "inputs": [M]},
        "parameters.p: expected a string, number or boolean, got array",
    ),
    "classification": (
        {"inputs": [M], "outputs": [{"name": "predict", "parameters": {"classification": 2}}]},
        "outputs[0].parameters.classification: the classification extension is not supported",
    ),
    "unknown_output": (
        {"inputs": [M], "outputs": [{"name": "leak-me"}]},
        "outputs[0].name: unknown output; this model's outputs: predict",
    ),
}
C = columns([ROW, ROW])
BAD_COLUMNS: dict[str, tuple[Any, str]] = {
    "unknown_input": (
        {"inputs": [*C[:3], {**C[3], "name": "leak-me"}]},
        "inputs[3].name: unknown input; the model's inputs: sepal_length, sepal_width",
    ),
    "missing_input": ({"inputs": C[:3]}, "inputs: input 'petal_width' required"),
    "duplicate_input": ({"inputs": [*C, C[0]]}, "inputs[4].name: duplicate input name"),
    "rank_3": ({"inputs": [*C[:3], {**C[3], "shape": [2, 1, 1]}]}, "expected [n] or [n, 1]"),
    "rows_differ": (
        {"inputs": [*C[:3], {**C[3], "shape": [1], "data": [1.0]}]},
        "inputs[3].shape: 1 rows, but inputs[0] has 2",
    ),
    "count": ({"inputs": [*C[:3], {**C[3], "data": [1.0]}]}, "inputs[3].data: expected 2 values"),
    "nested_rank_1": ({"inputs": [{**C[0], "data": [[1.0], [2.0]]}, *C[1:]]}, "got array"),
    "nested_wide": (
        {"inputs": [{**C[0], "shape": [2, 1], "data": [[1.0, SECRET], [2.0]]}, *C[1:]]},
        "inputs[0].data: expected 2 rows of 1 value",
    ),
    "string_flat": ({"inputs": [*C[:2], {**C[2], "data": [1.0, "leak-me"]}, C[3]]}, "data[1]"),
    "nan_nested": (
        json.dumps({"inputs": columns([ROW, ROW], nested=True)})
        .replace("5.7]", "NaN]", 1)
        .encode(),
        "inputs[2].data[0][0]: must be a finite number",
    ),
    "binary_size": (
        {"inputs": [{**C[0], "parameters": {"binary_data_size": 16}}, *C[1:]]},
        "binary tensor data is not supported",
    ),
}


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # 1.7e308, scaled
@pytest.mark.parametrize("case", [*BAD, *(f"columns_{k}" for k in BAD_COLUMNS)])
def test_bad_requests_answer_400_saying_what_is_wrong_without_echoing_it(
    client: TestClient, case: str
) -> None:
    body, message = BAD[case] if case in BAD else BAD_COLUMNS[case.removeprefix("columns_")]
    answer = infer(client, body)
    expected_status = 415 if "binary" in message else 400
    assert answer.status_code == expected_status, answer.text
    assert answer.headers["content-type"] == "application/json"
    error = answer.json()
    assert set(error) == {"error"} and isinstance(error["error"], str)
    assert message in error["error"]
    assert "leak-me" not in answer.text
    assert str(SECRET) not in answer.text
    assert "Traceback" not in answer.text


def test_every_problem_is_counted_and_the_first_named(client: TestClient) -> None:
    data: list[list[Any]] = [[1, "a", 2, 3], [1, 2, "b", 3], ROW]
    answer = infer(client, {"inputs": matrix(data)})
    assert answer.json()["error"] == (
        "inputs[0].data[0][1]: expected numbers for FP64, got string (and 1 more error)"
    )


def test_limits_content_type_and_binary_header(client: TestClient) -> None:
    big = {"inputs": matrix([ROW] * 200), "id": "x" * 70_000}  # > 64 KiB, the fixture's limit
    too_big = infer(client, big)
    assert too_big.status_code == 413
    assert too_big.json() == {"error": "request body over the limit of 65536 bytes"}
    csv = client.post(INFER, content=b"1,2,3,4", headers={"content-type": "text/csv"})
    assert csv.status_code == 415
    assert "Content-Type: application/json" in csv.json()["error"]
    binary = client.post(
        INFER,
        content=b'{"inputs":[]}' + bytes(32),
        headers={
            "content-type": "application/octet-stream",
            "Inference-Header-Content-Length": "13",
        },
    )
    assert binary.status_code == 415
    assert binary.json()["error"].startswith("binary tensor data is not supported")


# -- auth, readiness, metrics -----------------------------------------------------------------

KEY = "v2-test-key-0123456789abcdef"


def test_the_model_routes_need_the_key_the_probes_do_not(serve: AppFactory) -> None:
    with serve(api_key=KEY) as keyed:
        for path in ("/v2", "/v2/health/live", "/v2/health/ready"):
            assert keyed.get(path).status_code == 200, path
        for method, path in (
            ("GET", "/v2/models/sk_model"),
            ("GET", "/v2/models/sk_model/ready"),
            ("POST", INFER),
        ):
            body = json.dumps({"inputs": matrix([ROW])})
            missing = keyed.request(method, path, content=body)
            assert missing.status_code == 401, path
            assert missing.headers["www-authenticate"] == "Bearer"
            assert missing.json() == {
                "error": "this endpoint needs Authorization: Bearer <API_KEY>"
            }
            wrong = keyed.request(method, path, content=body, headers={"Authorization": "Bearer x"})
            assert wrong.status_code == 403
            right = keyed.request(
                method, path, content=body, headers={"Authorization": f"Bearer {KEY}"}
            )
            assert right.status_code == 200, path
    with serve(api_key=KEY, predict_public=True) as public:
        assert infer(public, {"inputs": matrix([ROW])}).status_code == 200


def test_the_openapi_document_shows_the_door_with_a_request_that_works(
    client: TestClient, serve: AppFactory
) -> None:
    doc = client.get("/openapi.json").json()
    paths = doc["paths"]
    v2 = {(m.upper(), p) for p, ops in paths.items() if p.startswith("/v2") for m in ops}
    model, versioned = "/v2/models/{name}", "/v2/models/{name}/versions/{version}"
    assert v2 == {
        ("GET", "/v2"),
        ("GET", "/v2/health/live"),
        ("GET", "/v2/health/ready"),
        *((m, base + tail) for base in (model, versioned)
          for m, tail in (("GET", ""), ("GET", "/ready"), ("POST", "/infer"))),
    }  # fmt: skip
    operation = paths[INFER.replace("sk_model", "{name}")]["post"]
    assert operation["parameters"][0]["schema"]["example"] == "sk_model"
    assert set(operation["responses"]) == {"200", "400", "401", "403", "404", "408", "413",
                                           "415", "503", "504"}  # fmt: skip
    # The documented example, sent as /docs' "Try it out" sends it, answers as /predict does.
    example = operation["requestBody"]["content"]["application/json"]["example"]
    assert [t["name"] for t in example["inputs"]] == NAMES
    answer = infer(client, example)
    assert answer.status_code == 200, answer.text
    record = {t["name"]: t["data"][0] for t in example["inputs"]}
    predicted = client.post("/predict", json=record).json()["predictions"]
    assert answer.json()["outputs"][0]["data"] == predicted
    # With a key: the model's operations say they need it, the probes do not; the example
    # (a training row) is shown only where the model's info is open.
    with serve(api_key=KEY) as keyed:
        auth = {"Authorization": f"Bearer {KEY}"}
        keyed_paths = keyed.get("/openapi.json", headers=auth).json()["paths"]
    assert keyed_paths[model + "/infer"]["post"]["security"] == [{SCHEME: []}]
    assert keyed_paths[model]["get"]["security"] == [{SCHEME: []}]
    assert "security" not in keyed_paths["/v2/health/ready"]["get"]
    keyed_body = keyed_paths[model + "/infer"]["post"]["requestBody"]["content"]
    assert "example" not in keyed_body["application/json"]


def test_unready_until_loaded_then_served_with_the_values_datatype() -> None:
    gate = threading.Event()
    GatedModel.attempts_left = 0
    app = create_app(
        Settings(model_uri="models:/fake@live"), predictor_factory=lambda: GatedModel(gate)
    )
    with TestClient(app) as client:
        assert client.get("/v2/health/live").status_code == 200
        for path in ("/v2/health/ready", "/v2/models/fake", "/v2/models/fake/ready"):
            answer = client.get(path)
            assert answer.status_code == 503, path
            assert answer.json() == {"error": "the model is not loaded yet"}
        assert infer(client, {"inputs": matrix([ROW])}, "/v2/models/fake/infer").status_code == 503
        gate.set()
        wait_ready(client, timeout=5)
        assert client.get("/v2/health/ready").status_code == 200
        # The fake's signature names no outputs: the values decide the datatype.
        assert client.get("/v2/models/fake/versions/7").json()["outputs"] == []
        answer = infer(client, {"inputs": matrix([[1.5, 2, 3, 4]])}, "/v2/models/fake/infer")
        assert answer.json()["outputs"] == [
            {"name": "predict", "datatype": "FP64", "shape": [1], "data": [10.5]}
        ]


def test_metrics_count_the_v2_routes_by_template(client: TestClient) -> None:
    infer(client, {"inputs": matrix([ROW])})
    infer(client, {"inputs": []})
    client.get("/v2/models/sk_model/versions/1")
    client.get("/v2/nowhere")
    text = client.get("/metrics").text
    for line in (
        'http_requests_total{method="POST",route="/v2/models/{name}/infer",status="200"}',
        'http_requests_total{method="POST",route="/v2/models/{name}/infer",status="400"}',
        'http_requests_total{method="GET",route="/v2/models/{name}/versions/{version}",status="200"}',
        'http_requests_total{method="GET",route="<unmatched>",status="404"}',
    ):
        assert line in text, line


# -- other column types ------------------------------------------------------------------------


class TypedModel(FakeModel):
    """A fake model with boolean, string, integer and float inputs that answers strings."""

    identity = ModelIdentity(uri="models:/typed/3", name="typed", version="3")
    schema = InputSchema(
        [Column("flag", "boolean"), Column("label", "string"), Column("n", "long"),
         Column("x", "double")]
    )  # fmt: skip

    def predict(self, data: Any, params: Any = None) -> list[Any]:
        return [f"{r.flag}-{r.label}-{r.n}-{r.x}" for r in data.itertuples()]

    def describe(self) -> dict[str, Any]:
        return {
            **self.identity.as_dict(),
            "signature": {"outputs": [{"type": "string", "required": True}]},
        }

    def close(self) -> None: ...


def test_booleans_strings_and_integers_go_to_columns_of_their_type() -> None:
    app = create_app(Settings(model_uri="models:/typed/3"), predictor_factory=TypedModel)
    with TestClient(app) as client:
        wait_ready(client)
        metadata = client.get("/v2/models/typed").json()
        assert [(t["name"], t["datatype"]) for t in metadata["inputs"]] == [
            ("flag", "BOOL"), ("label", "BYTES"), ("n", "INT64"), ("x", "FP64"),
        ]  # fmt: skip
        tensors = [
            {"name": "flag", "datatype": "BOOL", "shape": [2], "data": [True, False]},
            {"name": "label", "datatype": "BYTES", "shape": [2], "data": ["a", "b"]},
            {"name": "n", "datatype": "INT32", "shape": [2, 1], "data": [[1], [2]]},
            {"name": "x", "datatype": "FP32", "shape": [2], "data": [0.5, 2]},
        ]
        answer = infer(client, {"inputs": tensors}, "/v2/models/typed/infer")
        assert answer.json()["outputs"] == [
            {
                "name": "predict",
                "datatype": "BYTES",
                "shape": [2],
                "data": ["True-a-1-0.5", "False-b-2-2.0"],
            }
        ]
        wrong = [*tensors[:2], {**tensors[2], "datatype": "FP64"}, tensors[3]]
        refused = infer(client, {"inputs": wrong}, "/v2/models/typed/infer")
        assert refused.json() == {
            "error": "inputs[2].datatype: FP64 does not fit input 'n' (type long)"
        }
        big = [*tensors[:2], {**tensors[2], "data": [[1], [2**63]]}, tensors[3]]
        refused = infer(client, {"inputs": big}, "/v2/models/typed/infer")
        assert refused.json() == {"error": "inputs[2].data[1][0]: integer out of range"}
        assert infer(client, {"inputs": matrix([ROW])}, "/v2/models/typed/infer").json() == {
            "error": "inputs[0].datatype: FP64 does not fit input 'flag' (type boolean)"
        }
