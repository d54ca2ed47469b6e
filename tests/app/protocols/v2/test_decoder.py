"""The V2 lane's compiled decoder changes how fast it answers, never what it answers.

V2 inference requests are built in both layouts (a tensor per input, one [n, k] tensor with
flat or nested data), with and without an id, valid and then mutated as tests/app/
test_decoders.py mutates /predict bodies, and each is read both ways: by the compiled decoder
and by the reader's general path.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from app.dataplane import parse_json
from app.errors import InvalidInput, UnsupportedMediaType
from app.model.schema import InputSchema
from app.protocols.v2.inputs import ModelInputs, TensorReader
from tests.app.conftest import AppFactory
from tests.app.formats.test_decoders import (
    MAX_ROWS,
    SCHEMAS,
    Obj,
    _mutate_value,
    _value,
    answers_with_decoders_on_and_off,
    dumps,
)
from tests.iris import FEATURES

BODIES = 2500
DATATYPES = ["FP64", "FP64", "FP64", "FP32", "FP16", "INT64", "BOOL"]

pytestmark = pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")


def valid_v2(rng: random.Random, names: tuple[str, ...]) -> Obj:
    n = rng.choice([1, 1, 2, 5, 40, MAX_ROWS + 1])
    rows = [[_value(rng) for _ in names] for _ in range(n)]
    datatype = rng.choice(DATATYPES)
    layout = rng.choice(["columns", "matrix", "nested"])
    if layout == "columns":
        tensors = [
            Obj((("name", name), ("datatype", datatype), ("shape", [n]), ("data", list(column))))
            for name, column in zip(names, zip(*rows, strict=True), strict=True)
        ]
        rng.shuffle(tensors)
    else:
        data: list[Any] = rows if layout == "nested" else [v for r in rows for v in r]
        shape = [n, len(names)]
        tensors = [
            Obj((("name", "input-0"), ("datatype", datatype), ("shape", shape), ("data", data)))
        ]
    pairs: list[tuple[str, Any]] = [("inputs", tensors)]
    if rng.random() < 0.3:
        pairs.append(("id", rng.choice(["req-1", "é", None])))
    return Obj(tuple(pairs))


def v2_body(rng: random.Random, names: tuple[str, ...]) -> bytes:
    body = valid_v2(rng, names)
    for _ in range(rng.choice([0, 0, 0, 1, 1, 2, 3])):
        body = _mutate_value(rng, body, names)
    text = dumps(body).encode()
    if rng.random() < 0.03:
        return text[: rng.randrange(len(text))]
    return text


def general(reader: TensorReader, schema: InputSchema, body: bytes) -> Any:
    batch = reader.read(parse_json(body), MAX_ROWS)
    return schema.parse(batch, booleans=b"true" in body or b"false" in body)


@pytest.mark.parametrize("name", SCHEMAS)
def test_the_decoder_takes_only_requests_the_reader_reads_the_same(name: str) -> None:
    names, order = SCHEMAS[name]
    schema = InputSchema.from_signature([{"name": n, "type": "double"} for n in names], order)
    inputs = ModelInputs.of(schema)
    assert inputs.decoder is not None
    rng = random.Random(f"v2-decoder-{name}")
    taken = refused = 0
    for _ in range(BODIES):
        body = v2_body(rng, names)
        fast_reader, reader = TensorReader(inputs, ("predict",)), TensorReader(inputs, ("predict",))
        fast = fast_reader.decode(schema, body, MAX_ROWS)
        try:
            matrix = general(reader, schema, body)
        except (InvalidInput, UnsupportedMediaType):
            assert fast is None, body[:200]
            refused += 1
            continue
        if fast is None:
            continue
        taken += 1
        if isinstance(matrix, pd.DataFrame):
            matrix = matrix[list(schema.array_order)].to_numpy(dtype=np.float64)
        fast_matrix, batch = fast
        assert fast_matrix.dtype == np.float64 and fast_matrix.flags.c_contiguous
        assert fast_matrix.tobytes() == matrix.tobytes(), body[:200]  # -0.0 included
        assert batch.loc == ("inputs",) and not getattr(batch, "single", False)
        assert (fast_reader.id, fast_reader.requested) == (reader.id, reader.requested)
        assert fast_reader._one_row == reader._one_row
        # The same places for errors the model raises later (a flat [n] layout may be the
        # names in the order sent, or each input's Place: the same positions).
        for row in range(len(matrix)):
            for loc in (["inputs", row], ["inputs", row, names[-1]], []):
                exc = InvalidInput("x", [{"loc": loc, "msg": "refused"}])
                assert fast_reader.relocate(exc).details == reader.relocate(exc).details
    assert taken > BODIES // 5 and refused > BODIES // 5, (taken, refused)


def test_the_reader_does_not_decode_for_another_models_schema() -> None:
    schema = InputSchema.from_signature([{"name": n, "type": "double"} for n in FEATURES])
    other = InputSchema.from_signature([{"name": n, "type": "double"} for n in FEATURES])
    reader = TensorReader(ModelInputs.of(schema), ("predict",))
    body = dumps(valid_v2(random.Random(1), FEATURES)).encode()
    assert reader.decode(other, body, MAX_ROWS) is None


@pytest.fixture(scope="module")
def served(serve: AppFactory) -> Iterator[TestClient]:
    with serve(max_request_rows=MAX_ROWS, max_body_bytes=64 * 1024) as client:
        yield client


def test_every_v2_answer_is_the_same_with_the_decoders_off(served: TestClient) -> None:
    rng = random.Random("v2-decoder-app")
    bodies = (v2_body(rng, FEATURES) for _ in range(800))
    statuses = answers_with_decoders_on_and_off(served, "/v2/models/sk_model/infer", bodies)
    assert statuses.get(200, 0) > 150 and statuses.get(400, 0) > 150, statuses
