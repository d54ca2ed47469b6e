"""Fuzzing the service against its own OpenAPI document with schemathesis.

The app serves the real model (so /predict's body schema is the model's signature), in
process, lifespan and all. Every operation of /openapi.json gets a bounded, derandomized set
of generated requests, valid (positive) and invalid (negative) ones, and every answer must be
documented: no 5xx, a documented status code and content type, a body matching the
documented schema, and invalid requests refused with a 4xx.

schemathesis's own pytest integration (`schemathesis.pytest.from_fixture`) does not run under
pytest 9.2 (it reads `request.node._nodeid`, which pytest no longer has), and the schema can
only be read once the model is loaded; so the cases are drawn from each operation's
`as_strategy()` with Hypothesis directly and sent through the app's TestClient.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from tests.app.conftest import AppFactory

logger = logging.getLogger(__name__)

# With an API key configured, /admin/* exists and every request carries the key.
API_KEY = "fuzz-test-key-0123456789abcdef"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
# Generated requests per operation and mode: /predict, whose body is the one rich input, gets
# most of them; the GET probes take no input and need only a few.
V2_INFER = "/v2/models/{name}/infer"
EXAMPLES = {("POST", "/predict"): 100, ("POST", V2_INFER): 50, ("POST", "/invocations"): 50}
DEFAULT_EXAMPLES = 12
OPERATIONS = {
    ("POST", "/predict"),
    # MLflow's scoring server: its lane, and its probes beside the service's.
    ("POST", "/invocations"),
    ("GET", "/health"),
    ("GET", "/version"),
    ("GET", "/model-info"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/ping"),
    ("GET", "/metrics"),
    # The Open Inference Protocol (V2) lane, served outside FastAPI's routes.
    ("GET", "/v2"),
    ("GET", "/v2/health/live"),
    ("GET", "/v2/health/ready"),
    ("GET", "/v2/models/{name}"),
    ("GET", "/v2/models/{name}/ready"),
    ("POST", V2_INFER),
    ("GET", "/v2/models/{name}/versions/{version}"),
    ("GET", "/v2/models/{name}/versions/{version}/ready"),
    ("POST", "/v2/models/{name}/versions/{version}/infer"),
}


@pytest.fixture(scope="module")
def fuzz_client(serve: AppFactory) -> Iterator[TestClient]:
    """A ready app on models:/sk_model@champion, with an API key (so /admin/* exists)."""
    with serve(api_key=API_KEY) as client:
        yield client


@pytest.fixture(scope="module")
def api_schema(fuzz_client: TestClient) -> Any:
    """The app's OpenAPI document, as it describes the loaded model."""
    document = fuzz_client.get("/openapi.json", headers={"Authorization": f"Bearer {API_KEY}"})
    assert document.status_code == 200, document.text
    return schemathesis.openapi.from_dict(document.json())


def _httpx_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """A requests-style call (what schemathesis serializes a case to) for an httpx client."""
    plain = ("method", "url", "headers", "params", "cookies")
    out = {k: kwargs[k] for k in plain if kwargs.get(k)}
    if "json" in kwargs:
        out["json"] = kwargs["json"]
    if "data" in kwargs:
        data = kwargs["data"]
        out["content" if isinstance(data, bytes | str) else "data"] = data
    unknown = set(kwargs) - {*plain, "json", "data"}
    assert not unknown, f"cannot send {unknown} through the test client"
    return out


def _fuzz(
    operation: Any, mode: GenerationMode, client: TestClient, headers: dict[str, str] | None
) -> int:
    """Send the operation's generated cases; the first failing check raises. Returns the count.

    `headers` are sent as given on every case (the valid credentials); other headers the
    operation declares, the security scheme's `Authorization` included, are generated."""
    sent = 0
    key = (operation.method.upper(), operation.path)

    @given(case=operation.as_strategy(generation_mode=mode, headers=headers))
    @settings(
        max_examples=EXAMPLES.get(key, DEFAULT_EXAMPLES),
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )
    def run(case: schemathesis.Case) -> None:
        nonlocal sent
        kwargs = case.as_transport_kwargs(base_url=str(client.base_url))
        response = client.request(**_httpx_kwargs(kwargs))
        sent += 1
        case.validate_response(response, checks=CHECKS, headers=kwargs.get("headers"))

    run()
    return sent


def _operations(schema: Any) -> list[Any]:
    return [result.ok() for result in schema.get_all_operations()]


def test_the_schema_documents_every_operation(api_schema: Any) -> None:
    operations = {(op.method.upper(), op.path) for op in _operations(api_schema)}
    assert OPERATIONS | {("POST", "/admin/reload")} <= operations


SCENARIOS = {
    # Valid requests, with the key: every answer documented, none 5xx.
    "positive": (GenerationMode.POSITIVE, True),
    # Invalid bodies and parameters, with the key: refused with a documented 4xx.
    "negative": (GenerationMode.NEGATIVE, True),
    # Missing or made-up credentials (and invalid input): 401/403, documented.
    "no-key": (GenerationMode.NEGATIVE, False),
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_every_answer_is_documented(
    scenario: str, api_schema: Any, fuzz_client: TestClient
) -> None:
    mode, with_key = SCENARIOS[scenario]
    headers = {"Authorization": f"Bearer {API_KEY}"} if with_key else None
    failures: dict[str, str] = {}
    sent: dict[str, int] = {}
    for operation in _operations(api_schema):
        label = f"{operation.method.upper()} {operation.path}"
        try:
            sent[label] = _fuzz(operation, mode, fuzz_client, headers)
        except Unsatisfiable:
            # Negative mode, and the operation takes no input that could be made invalid.
            assert mode is GenerationMode.NEGATIVE, label
            sent[label] = 0
        except Exception as exc:  # every operation runs; all failures are reported together
            failures[label] = f"{type(exc).__name__}: {exc}"
    logger.info("%s: requests sent per operation: %s", scenario, sent)
    assert not failures, "\n\n".join(f"{label}:\n{text}" for label, text in failures.items())
    # The operations that take input really were fuzzed.
    assert sent["POST /predict"] >= EXAMPLES[("POST", "/predict")] // 2, sent
    assert sent[f"POST {V2_INFER}"] >= EXAMPLES[("POST", V2_INFER)] // 2, sent
    assert sent["POST /invocations"] >= EXAMPLES[("POST", "/invocations")] // 2, sent
    assert sent["POST /admin/reload"] > 0, sent
