"""InputSchema.parse: the fast and the careful path agree on every input."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from app.errors import InvalidInput
from app.formats.payload import normalize
from app.model.schema import Column, InputSchema

NAMES = ["a", "b", "c"]
SCHEMA = InputSchema([Column(n, "double") for n in NAMES])

GOOD: list[Any] = [
    {"a": 1, "b": 2.5, "c": -3},
    {"records": [{"a": 1, "b": 2, "c": 3}, {"c": 0.5, "a": 1e300, "b": -0.0}]},
    {"dataframe_split": {"columns": ["c", "a", "b"], "data": [[3, 1, 2], [6.5, 4, 5]]}},
    {"instances": [[1, 2, 3], [4, 5, 6]]},
    {"inputs": {"a": [1, 2], "b": [3, 4], "c": [5, 6]}},
]
BAD: list[Any] = [
    {"a": True, "b": 2, "c": 3},
    {"a": "1", "b": 2, "c": 3},
    {"a": None, "b": 2, "c": 3},
    {"a": [1], "b": 2, "c": 3},
    {"a": {"x": 1}, "b": 2, "c": 3},
    {"instances": [[1, 2, 3], [4, 5]]},
    {"instances": [[1, 2, 3], [4, 5, 6, 7]]},
    {"instances": [[1, 2, 3], "abc"]},
    {"instances": [[1, 2, 3], {"a": 1, "b": 2, "c": 3}]},
    {"instances": [[1, 2, [3]]]},
    {"instances": [[1, 2, 3], [4, False, 6]]},
    {"dataframe_split": {"columns": ["c", "a", "b"], "data": [[3, 1]]}},
    {"dataframe_split": {"columns": ["c", "a", "b"], "data": [[3, 1, "2"]]}},
    {"records": [{"a": 1, "b": 2, "c": 10**400}]},
]


def _may_hold_booleans(payload: Any) -> bool:
    """What the service tells parse(): whether the raw body has a JSON true/false token."""
    body = json.dumps(payload).encode()
    return b"true" in body or b"false" in body


@pytest.mark.parametrize("payload", GOOD)
def test_valid_input_gives_the_same_matrix_either_way(payload: Any) -> None:
    careful = SCHEMA.parse(normalize(payload, 100), booleans=True)
    fast = SCHEMA.parse(normalize(payload, 100), booleans=_may_hold_booleans(payload))
    assert isinstance(fast, np.ndarray) and fast.dtype == np.float64
    assert np.array_equal(careful, fast)


@pytest.mark.parametrize("payload", BAD)
def test_invalid_input_is_refused_the_same_way_either_way(payload: Any) -> None:
    errors = []
    for booleans in (True, _may_hold_booleans(payload)):
        with pytest.raises(InvalidInput) as caught:
            SCHEMA.parse(normalize(payload, 100), booleans=booleans)
        errors.append(caught.value.details)
    assert errors[0] == errors[1]
    assert errors[0]


@pytest.mark.parametrize(
    ("kind", "value", "ok"),
    [
        ("integer", 2**31 - 1, True),
        ("integer", 2**31, False),
        ("integer", -(2**31) - 1, False),
        ("long", 2**63 - 1, True),
        ("long", 2**63, False),
        ("float", 3.4e38, True),
        ("float", 3.5e38, False),
        ("double", 1.7e308, True),
    ],
)
def test_numbers_must_fit_the_columns_type(kind: str, value: int | float, ok: bool) -> None:
    schema = InputSchema([Column("n", kind), Column("x", "double")])
    batch = normalize({"n": value, "x": 1.0}, 10)
    if ok:
        data = schema.parse(batch)
        first = data[0, 0] if isinstance(data, np.ndarray) else data["n"].iloc[0]
        assert first == pytest.approx(value, rel=1e-6)
    else:
        with pytest.raises(InvalidInput, match="out of range"):
            schema.parse(batch)
