"""The data plane: a request body in, the answer's bytes out, on the serving model.

Every protocol door hands its body here: it is parsed (orjson; the format read through
`app.payload.FORMATS`), checked against the model's compiled signature, predicted (batched
with other requests' when it is a float matrix) and encoded. Large bodies are parsed on a
thread, never on the event loop. The serving model is read once, so a request is answered
wholly by one model even if another is swapped in meanwhile.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import anyio.to_thread
import numpy as np
import orjson
import pandas as pd

from app.errors import InvalidInput
from app.payload import Batch, normalize
from app.schema import InputSchema
from app.slot import ModelSlot, ServedModel

# Bodies larger than this are parsed and validated on a thread, not on the event loop
# (a 16 MiB body is ~0.1-0.2 s of work that no other request should wait behind).
INLINE_BYTES = 16 * 1024


def parse_json(body: bytes) -> Any:
    """The parsed body; NaN and Infinity parse (to be refused by name later), anything else 422."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(body)  # accepts NaN / Infinity, which orjson rejects
    except (ValueError, RecursionError):
        raise InvalidInput(
            "body is not valid JSON", [{"loc": [], "msg": "body is not valid JSON"}]
        ) from None


Reader = Callable[[Any, int], Batch]
"""Reads a parsed body into a Batch (at most `max_rows` rows), or raises InvalidInput."""


class DataPlane:
    """Answers prediction requests with the slot's serving model."""

    def __init__(self, slot: ModelSlot) -> None:
        self.slot = slot
        self.max_rows = slot.settings.max_batch_rows

    def parse(self, schema: InputSchema, body: bytes, read: Reader) -> np.ndarray | pd.DataFrame:
        """JSON body -> model input (InvalidInput says what is wrong)."""
        batch = read(parse_json(body), self.max_rows)
        return schema.parse(batch, booleans=b"true" in body or b"false" in body)

    async def infer(self, body: bytes, read: Reader) -> tuple[ServedModel, list[Any]]:
        """The serving model and its predictions for a body in the format `read` reads (the
        caller bounds the time). Every protocol's door comes through here."""
        served = self.slot.serving()
        served.in_flight += 1
        try:
            schema = served.predictor.schema
            if len(body) <= INLINE_BYTES:
                data = self.parse(schema, body, read)
            else:
                data = await anyio.to_thread.run_sync(self.parse, schema, body, read)
            predictions = await served.predict(data)
        finally:
            served.in_flight -= 1
        return served, predictions

    async def predict(self, body: bytes) -> bytes:
        """JSON answer bytes for a /predict body."""
        served, predictions = await self.infer(body, normalize)
        return b'{"predictions":%s,"model":%s}' % (
            orjson.dumps(predictions, option=orjson.OPT_SERIALIZE_NUMPY),
            served.identity_json,
        )
