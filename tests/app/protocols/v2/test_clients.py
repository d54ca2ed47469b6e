"""Real Open Inference Protocol (V2) clients against the running service (`python -m app`):
Triton's `tritonclient[http]` and the KServe SDK's `InferenceRESTClient`. Their predictions
must equal `mlflow.pyfunc` on the same rows."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig
from tritonclient.utils import InferenceServerException

from tests.app.conftest import TrainedModel
from tests.iris import FEATURES
from tests.servers import free_port, python_env, running

API_KEY = "v2-clients-test-key-0123456789"


def auth() -> dict[str, str]:
    """The key, in a dict of its own: tritonclient writes its own headers into the one given."""
    return {"Authorization": f"Bearer {API_KEY}"}


@pytest.fixture(scope="module")
def service(trained: TrainedModel, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`python -m app` on models:/sk_model@champion with an API key; yields host:port."""
    port = free_port()
    env = python_env(
        {"MLFLOW_TRACKING_URI": trained.tracking_uri, "MODEL_URI": trained.alias_uri,
         "API_KEY": API_KEY},
        drop=("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"),
    )  # fmt: skip
    log = tmp_path_factory.mktemp("v2-clients") / "app.log"
    with running([sys.executable, "-m", "app", "--port", str(port)], env, log) as server:
        server.wait_http(f"http://127.0.0.1:{port}/readyz", timeout=90)
        yield f"127.0.0.1:{port}"


@pytest.fixture(scope="module")
def rows(iris_records: list[dict[str, float]]) -> np.ndarray:
    """Rows of all three classes, in an order that is not the data set's."""
    records = iris_records[::-1][::3]
    return np.array([[r[n] for n in FEATURES] for r in records], dtype=np.float64)


def _expected(reference: Any, rows: np.ndarray) -> list[Any]:
    expected = reference([dict(zip(FEATURES, map(float, r), strict=True)) for r in rows])
    assert len(set(expected)) == 3  # every class: the order of the answers is checked
    return list(expected)


@pytest.fixture
def client(service: str) -> Iterator[triton.InferenceServerClient]:
    c = triton.InferenceServerClient(url=service)
    yield c
    c.close()


def test_tritonclient_sees_the_server_and_the_model_ready(
    client: triton.InferenceServerClient,
) -> None:
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("sk_model", headers=auth())
    assert client.is_model_ready("sk_model", "1", headers=auth())
    assert not client.is_model_ready("sk_model", "2", headers=auth())
    assert not client.is_model_ready("another_model", headers=auth())
    assert not client.is_model_ready("sk_model")  # no key: refused


def test_tritonclient_reads_the_model_metadata(client: triton.InferenceServerClient) -> None:
    metadata = client.get_model_metadata("sk_model", headers=auth())
    assert metadata["name"] == "sk_model"
    assert metadata["versions"] == ["1"]
    assert metadata["inputs"] == [{"name": n, "datatype": "FP64", "shape": [-1]} for n in FEATURES]
    assert metadata["outputs"] == [{"name": "predict", "datatype": "INT64", "shape": [-1]}]
    server = client.get_server_metadata()
    assert server["name"] == "model-serving"


@pytest.mark.parametrize("datatype", ["FP64", "FP32"])
def test_tritonclient_infers_one_tensor_per_input(
    client: triton.InferenceServerClient, rows: np.ndarray, reference: Any, datatype: str
) -> None:
    dtype = np.float64 if datatype == "FP64" else np.float32
    inputs = []
    for i, name in enumerate(FEATURES):
        tensor = triton.InferInput(name, [len(rows)], datatype)
        tensor.set_data_from_numpy(rows[:, i].astype(dtype), binary_data=False)
        inputs.append(tensor)
    outputs = [triton.InferRequestedOutput("predict", binary_data=False)]
    result = client.infer(
        "sk_model", inputs, outputs=outputs, request_id="triton-1", headers=auth()
    )
    sent = rows.astype(dtype).astype(np.float64)  # the values the client really sent
    assert result.as_numpy("predict").tolist() == _expected(reference, sent)
    assert result.as_numpy("predict").dtype == np.int64
    response = result.get_response()
    assert response["id"] == "triton-1"
    assert (response["model_name"], response["model_version"]) == ("sk_model", "1")


def test_tritonclient_infers_one_matrix_on_the_version_with_default_outputs(
    client: triton.InferenceServerClient, rows: np.ndarray, reference: Any
) -> None:
    # No requested outputs: the client asks for binary outputs; JSON data is what it reads.
    tensor = triton.InferInput("input-0", list(rows.shape), "FP64")
    tensor.set_data_from_numpy(rows, binary_data=False)
    result = client.infer("sk_model", [tensor], model_version="1", headers=auth())
    assert result.as_numpy("predict").tolist() == _expected(reference, rows)


def test_tritonclient_hears_why_it_was_refused(
    client: triton.InferenceServerClient, rows: np.ndarray
) -> None:
    tensor = triton.InferInput("input-0", list(rows.shape), "FP64")
    tensor.set_data_from_numpy(rows)  # binary by default: a Triton extension
    with pytest.raises(InferenceServerException, match="binary tensor data is not supported"):
        client.infer("sk_model", [tensor], headers=auth())
    tensor = triton.InferInput("input-0", list(rows.shape), "FP64")
    tensor.set_data_from_numpy(rows, binary_data=False)
    with pytest.raises(InferenceServerException, match="serves version 1"):
        client.infer("sk_model", [tensor], model_version="7", headers=auth())
    with pytest.raises(InferenceServerException, match="Authorization: Bearer"):
        client.infer("sk_model", [tensor])
    flags = triton.InferInput("input-0", [1, 4], "BOOL")
    flags.set_data_from_numpy(np.array([[True, False, True, True]]), binary_data=False)
    with pytest.raises(InferenceServerException, match="BOOL does not fit input"):
        client.infer("sk_model", [flags], headers=auth())


def test_kserve_sdk_rest_client_gets_pyfunc_s_predictions(
    service: str, rows: np.ndarray, reference: Any
) -> None:
    base = f"http://{service}"

    async def run() -> tuple[bool, bool, bool, Any, Any]:
        config = RESTConfig(protocol="v2", retries=0, timeout=30)
        async with InferenceRESTClient(config) as client:
            live = await client.is_server_live(base)
            ready = await client.is_server_ready(base)
            model_ready = await client.is_model_ready(base, "sk_model", headers=auth())
            inputs = []
            for i, name in enumerate(FEATURES):
                tensor = InferInput(name, [len(rows)], "FP32")
                tensor.set_data_from_numpy(rows[:, i].astype(np.float32), binary_data=False)
                inputs.append(tensor)
            request = InferRequest("sk_model", inputs, request_id="kserve-1")
            answer = await client.infer(base, request, model_name="sk_model", headers=auth())
            matrix = InferInput("input-0", list(rows.shape), "FP64")
            matrix.set_data_from_numpy(rows, binary_data=False)
            try:
                await client.infer(
                    base, InferRequest("x", [matrix]), model_name="other", headers=auth()
                )
            except httpx.HTTPStatusError as exc:
                refused: Any = exc
            else:
                refused = None
            return live, ready, model_ready, answer, refused

    live, ready, model_ready, answer, refused = asyncio.run(run())
    assert live and ready and model_ready
    assert answer.id == "kserve-1"
    assert answer.model_name == "sk_model"
    (output,) = answer.outputs
    assert output.name == "predict" and output.datatype == "INT64"
    sent = rows.astype(np.float32).astype(np.float64)
    assert output.as_numpy().tolist() == _expected(reference, sent)
    assert refused is not None and refused.response.status_code == 404
    assert "this service serves model 'sk_model'" in str(refused)
