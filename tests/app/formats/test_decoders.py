"""The compiled decoders change how fast /predict answers, never what it answers.

Bodies are built in every accepted format, valid and then mutated (values of every JSON type,
ints past int64 and past any float, -0, NaN/Infinity, keys missing, extra, duplicated, escaped
or reordered, rows ragged, empty or over the limit, params, bytes that are not UTF-8 or not
JSON), and each is read both ways: by the model's compiled decoder and by the general path.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import msgspec
import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from app.dataplane import DataPlane, parse_json
from app.errors import InvalidInput
from app.formats.decoders import PackedRows
from app.formats.payload import Batch, normalize
from app.model.schema import InputSchema
from app.protocols.predict.lane import PATH
from tests.app.conftest import AppFactory
from tests.iris import FEATURES

MAX_ROWS = 300
BODIES = 2500

# Values far out of range overflow inside the model; numpy warns each time.
pytestmark = pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")


@dataclass(frozen=True)
class Raw:
    """JSON text written as is (NaN, Infinity, 1e999, a number's exact digits)."""

    text: str


@dataclass(frozen=True)
class Obj:
    """A JSON object as pairs, so keys can repeat."""

    pairs: tuple[tuple[str, Any], ...]


def dumps(value: Any) -> str:
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, Obj):
        return "{" + ",".join(f"{json.dumps(k)}:{dumps(v)}" for k, v in value.pairs) + "}"
    if isinstance(value, list):
        return "[" + ",".join(dumps(v) for v in value) + "]"
    return json.dumps(value)


DEEP = Raw("[" * 3000 + "]" * 3000)  # past any parser's depth
ODD_VALUES: list[Any] = [
    True, False, None, "1.5", [], Obj(()), 0, -0, Raw("-0"), Raw("-0.0"), 7, 2**53 + 1,
    2**63, -(2**63) - 1, 2**64 + 3, 10**30, Raw("1" + "0" * 400), Raw("NaN"), Raw("Infinity"),
    Raw("-Infinity"), Raw("1e999"), Raw("1e-400"), Raw("1.7976931348623157e308"),
    Raw("1.7976931348623159e308"), Raw("01"), Raw("1."), Raw("2E+2"), 5e-324, 1e300,
    DEEP,
]  # fmt: skip


def _value(rng: random.Random) -> Any:
    return round(rng.uniform(-1, 9), rng.choice([0, 1, 2, 17]))


def _record(rng: random.Random, names: tuple[str, ...]) -> Obj:
    pairs = [(n, _value(rng)) for n in names]
    rng.shuffle(pairs)  # key order must not matter
    return Obj(tuple(pairs))


KINDS = ("records", "dataframe_records", "split", "split-positional", "instances", "inputs",
         "instances-rows", "inputs-rows", "single")  # fmt: skip


def valid_body(rng: random.Random, names: tuple[str, ...]) -> Any:
    n = rng.choice([1, 2, 5, 40, 250, MAX_ROWS + 1])
    records = [_record(rng, names) for _ in range(n)]
    rows = [[_value(rng) for _ in names] for _ in range(n)]
    columns = list(names)
    rng.shuffle(columns)
    kind = rng.choice(KINDS)
    if kind == "single":
        return records[0]
    if kind == "split":
        by_name = [dict(zip(names, r, strict=True)) for r in rows]
        data = [[r[c] for c in columns] for r in by_name]
        return Obj((("dataframe_split", Obj((("columns", columns), ("data", data)))),))
    if kind == "split-positional":
        return Obj((("dataframe_split", Obj((("data", rows),))),))
    key = kind.removesuffix("-rows")
    return Obj(((key, rows if kind.endswith("-rows") else records),))


def _mutate_value(rng: random.Random, value: Any, names: tuple[str, ...]) -> Any:
    """A copy of `value` with one thing changed somewhere inside it."""
    if isinstance(value, list) and value and rng.random() < 0.7:
        i = rng.randrange(len(value))
        items = list(value)
        op = rng.random()
        if op < 0.6:
            items[i] = _mutate_value(rng, items[i], names)
        elif op < 0.75:
            del items[i]
        elif op < 0.9:
            items.insert(i, items[i])
        else:
            items = []
        return items
    if isinstance(value, Obj) and value.pairs and rng.random() < 0.7:
        pairs = list(value.pairs)
        i = rng.randrange(len(pairs))
        key, child = pairs[i]
        op = rng.random()
        if op < 0.55:
            pairs[i] = (key, _mutate_value(rng, child, names))
        elif op < 0.65:
            del pairs[i]
        elif op < 0.75:
            pairs.append((key, _mutate_value(rng, child, names)))  # duplicate key, last wins
        elif op < 0.85:
            pairs.append((rng.choice(["params", "index", "extra", names[0].upper()]),
                          rng.choice([None, Obj(()), Obj((("a", 1),)), [0], 1, DEEP])))  # fmt: skip
        else:
            pairs[i] = (rng.choice([key.upper(), key + " ", "columns", "data", *names]), child)
        return Obj(tuple(pairs))
    return rng.choice(ODD_VALUES)


def body_bytes(rng: random.Random, names: tuple[str, ...]) -> bytes:
    body = valid_body(rng, names)
    for _ in range(rng.choice([0, 0, 1, 1, 2, 3])):
        body = _mutate_value(rng, body, names)
    text = dumps(body).encode()
    op = rng.random()
    if op < 0.03:
        return text + b" x"
    if op < 0.06:
        return text[: rng.randrange(len(text))]
    if op < 0.08:
        return text.replace(b'"', b'"\xff', 1)
    if op < 0.10:
        return dumps(body).encode("utf-16")
    if op < 0.12:
        return b"\t\n " + text + b"\r\n"
    if op < 0.14 and len(names) > 1:
        escaped = "".join(f"\\u{ord(c):04x}" for c in names[1])
        return text.replace(json.dumps(names[1]).encode(), f'"{escaped}"'.encode())
    if op < 0.16:
        return text + text
    return text


def general(schema: InputSchema, body: bytes) -> tuple[Any, Batch]:
    """Today's path: orjson (or json for NaN), the FORMATS table, the schema's checks."""
    batch = normalize(parse_json(body), MAX_ROWS)
    return schema.parse(batch, booleans=b"true" in body or b"false" in body), batch


SCHEMAS: dict[str, tuple[tuple[str, ...], list[str] | None]] = {
    "iris": (FEATURES, None),
    "fitted-in-another-order": (FEATURES, list(reversed(FEATURES))),
    "one-column": (("x",), None),
    "odd-names": (("a b", "é", "records"), None),
}


@pytest.mark.parametrize("name", SCHEMAS)
def test_the_decoder_takes_only_bodies_the_general_path_reads_the_same(name: str) -> None:
    names, order = SCHEMAS[name]
    schema = InputSchema.from_signature([{"name": n, "type": "double"} for n in names], order)
    assert schema.decoder is not None
    rng = random.Random(f"decoders-{name}")
    taken = refused = 0
    for _ in range(BODIES):
        body = body_bytes(rng, names)
        fast = schema.decoder.decode(body, MAX_ROWS)
        try:
            matrix, batch = general(schema, body)
        except InvalidInput:
            assert fast is None, body[:200]
            refused += 1
            continue
        if fast is None:
            continue
        taken += 1
        fast_matrix, fast_batch = fast
        if isinstance(matrix, pd.DataFrame):  # ints past int64: the same floats, typed
            matrix = matrix[list(schema.array_order)].to_numpy(dtype=np.float64)
        assert fast_matrix.dtype == np.float64 and fast_matrix.flags.c_contiguous
        # Bit for bit, -0.0 included.
        assert fast_matrix.tobytes() == matrix.tobytes(), body[:200]
        assert fast_batch.loc == batch.loc
        assert getattr(fast_batch, "single", False) == getattr(batch, "single", False)
    # Both outcomes are exercised, often.
    assert taken > BODIES // 5 and refused > BODIES // 5, (taken, refused)


def test_a_schema_with_other_than_double_columns_has_no_decoder() -> None:
    spec = [{"name": "a", "type": "double"}, {"name": "b", "type": "long"}]
    assert InputSchema.from_signature(spec).decoder is None
    optional = [{"name": "a", "type": "double", "required": False}]
    assert InputSchema.from_signature(optional).decoder is None
    quoted = [{"name": 'say "a"', "type": "double"}]
    assert InputSchema.from_signature(quoted).decoder is None


@pytest.fixture(scope="module")
def served(serve: AppFactory) -> Iterator[TestClient]:
    # Bodies over 16 KiB are decoded and predicted on a model thread: 250-row bodies go there too.
    with serve(max_request_rows=MAX_ROWS, max_body_bytes=64 * 1024) as client:
        yield client


def answers_with_decoders_on_and_off(
    client: TestClient, url: str, bodies: Iterator[bytes], auth: dict[str, str] | None = None
) -> dict[int, int]:
    """Send every body twice, with the compiled decoders on and off: the answers (status and
    bytes) must be identical. Returns how many answers had each status."""
    plane: DataPlane = client.app.lanes[PATH].plane  # type: ignore[attr-defined]
    statuses: dict[int, int] = {}
    try:
        for body in bodies:
            answers = []
            for fast in (True, False):
                plane.fast_decoders = fast
                response = client.post(
                    url, content=body, headers={"content-type": "application/json", **(auth or {})}
                )
                answers.append((response.status_code, response.content))
            assert answers[0] == answers[1], body[:200]
            statuses[answers[0][0]] = statuses.get(answers[0][0], 0) + 1
    finally:
        plane.fast_decoders = True
    return statuses


def test_every_answer_is_the_same_with_the_decoders_off(served: TestClient) -> None:
    rng = random.Random("decoders-app")
    bodies = (body_bytes(rng, FEATURES) for _ in range(800))
    statuses = answers_with_decoders_on_and_off(served, PATH, bodies)
    assert statuses.get(200, 0) > 150 and statuses.get(422, 0) > 150, statuses


@pytest.mark.parametrize(
    ("rows", "names"),
    [
        (70_000, ("x",)),  # past 65,535 rows: MessagePack's longer array header
        (300, FEATURES),
        (40, tuple(f"feature {i} with a name longer than 31 bytes" for i in range(20))),
    ],
    ids=["70000-rows", "iris", "20-long-names"],
)
def test_large_bodies_decode_to_the_same_floats_bit_for_bit(
    rows: int, names: tuple[str, ...]
) -> None:
    """The decoders read many records' floats out of their MessagePack encoding
    (`PackedRows`), split rows by iterating: either way the matrix is the one the values were
    written from, extremes and -0.0 included, at any row count and width."""
    schema = InputSchema.from_signature([{"name": n, "type": "double"} for n in names])
    assert schema.decoder is not None
    values = np.random.default_rng(rows).normal(0, 1e6, (rows, len(names)))
    extremes = [-0.0, 5e-324, 1.7976931348623157e308, -2.5e-308, 1e16, 0.1, 7.0]
    values.flat[: len(extremes)] = extremes
    records = [dict(zip(names, row, strict=True)) for row in values.tolist()]
    bodies = {
        "records": json.dumps({"dataframe_records": records}),
        "split": json.dumps({"dataframe_split": {"columns": names, "data": values.tolist()}}),
    }
    for shape, body in bodies.items():
        decoded = schema.decoder.decode(body.encode(), rows)
        assert decoded is not None, shape
        assert decoded[0].tobytes() == values.tobytes(), shape


@pytest.mark.parametrize("width", [1, 4, 20])
def test_packed_rows_lay_out_records_of_any_width(width: int) -> None:
    """The MessagePack layout is found for record structs of any width, renamed to long names
    as the decoders make them (else they fall back to iterating, correct but 4x slower)."""
    fields = [f"f{i}" for i in range(width)]
    record = msgspec.defstruct(
        "R",
        [(f, float) for f in fields],
        rename={f: f"a name longer than 31 bytes {f}" for f in fields},
        gc=False,
    )
    packed = PackedRows.layout(lambda values: record(*values), width)
    assert packed is not None
    rows = [record(*(float(r * width + i) for i in range(width))) for r in range(3)]
    matrix = packed.matrix(rows)
    assert matrix is not None
    assert matrix.tolist() == [[float(r * width + i) for i in range(width)] for r in range(3)]
