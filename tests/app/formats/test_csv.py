"""CSV bodies: the compiled decoder takes plain ones straight to the matrix the general reader
and the schema make of them; anything else it leaves to them."""

from __future__ import annotations

import numpy as np

from app.formats.csv import decode_csv, read_csv
from app.model.schema import InputSchema
from tests.iris import FEATURES

SCHEMA = InputSchema.from_signature(
    [{"name": n, "type": "double"} for n in FEATURES], array_order=list(FEATURES[::-1])
)
PLAIN = (",".join(FEATURES) + "\n6.7,3.3,5.7,2.1\n5.1,3.5,1.4,0.2\n").encode()


def test_plain_body_decodes_to_the_general_readers_matrix_in_fitted_order() -> None:
    decoded = decode_csv(SCHEMA.array_order, PLAIN, 10)
    assert decoded is not None
    matrix, batch = decoded
    general = SCHEMA.parse(read_csv(PLAIN, 10))
    assert isinstance(general, np.ndarray)
    assert matrix.tobytes() == general.tobytes()
    assert matrix[0].tolist() == [2.1, 5.7, 3.3, 6.7]  # petal_width first: the fitted order
    assert batch.loc == ("csv",)


def test_anything_not_plain_is_left_to_the_general_reader() -> None:
    order = SCHEMA.array_order
    for body in (
        PLAIN.replace(b"2.1", b'"2.1"'), PLAIN.replace(b"2.1", b""), PLAIN.replace(b"2.1", b"inf"),
        PLAIN.replace(b"petal_width", b"petal_wide"), PLAIN + b"1,2,3\n", b"", PLAIN[:-1] + b",\n",
        "é".encode("latin-1"),
    ):  # fmt: skip
        assert decode_csv(order, body, 10) is None, body
    assert decode_csv(order, PLAIN, 1) is None  # over the row limit: the reader says so
