"""The data plane: a request body in, the answer's bytes out, on the serving model.

Every protocol lane hands its body here: a /predict body is first offered to the model's compiled
decoder (`app.formats.decoders`), else parsed (orjson; the format read through
`app.formats.payload.FORMATS`) and checked against the model's compiled signature, predicted
(batched with other requests' when it is a float matrix) and encoded. Large bodies are parsed and
predicted on a model thread in one go, never on the event loop. The serving model is read once, so a
request is answered wholly by one model even if another is swapped in meanwhile."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable
from functools import partial
from operator import attrgetter
from typing import Any

import numpy as np
import orjson
import pandas as pd

from app.batching.batcher import timed
from app.errors import InvalidInput, summarize
from app.formats.csv import decode_csv, read_csv
from app.formats.decoders import Decoded
from app.formats.jsonbody import parse_json
from app.formats.parquet import read_parquet
from app.formats.payload import MLFLOW_KEYS, Batch, Records, normalize, normalize_mlflow
from app.model.failures import one_line
from app.model.output import as_mlflow
from app.model.schema import MAX_ERRORS, InputSchema
from app.monitoring.recorder import Recorder
from app.serving.served import ServedModel
from app.serving.shadow import Shadow
from app.serving.slot import ModelSlot

logger = logging.getLogger(__name__)

# Bodies larger than this are parsed, validated and predicted on a model thread, not on the
# event loop (a 16 MiB body is ~0.1-0.2 s of parsing that no other request should wait behind).
INLINE_BYTES = 16 * 1024


Reader = Callable[[Any, int], Batch]
"""Reads a parsed body into a Batch (at most `max_rows` rows), or raises InvalidInput."""
Decode = Callable[[InputSchema, bytes, int], Decoded | None]
"""A lane's compiled decoder: a plainly valid body for the schema -> the model input and the
batch's location (at most `max_rows` rows), else None (read it the general way)."""


Params = dict[str, Any] | None
"""A request's checked inference params, or None: the model's defaults."""


def checked_params(schema: InputSchema, batch: Batch, mlflow_params: bool) -> Params:
    """The batch's params, checked against the model's params schema (InvalidInput names what
    is wrong). A model without one refuses params, or, with `mlflow_params`, ignores them with
    a log line, as MLflow's scoring server does."""
    if batch.params is None:
        return None
    if schema.params is not None:
        return schema.params.check(batch.params)
    if mlflow_params:
        logger.info("params ignored: the model's signature declares none")
        return None
    message = "this model takes no inference params (its signature declares none)"
    raise InvalidInput(message, [{"loc": ["params"], "msg": message}])


Load = Callable[[bytes], Any]
"""A body's bytes -> what a Reader reads (JSON bodies: `parse_json`)."""


def _decode_predict(schema: InputSchema, body: bytes, max_rows: int) -> Decoded | None:
    """/predict's: the model's compiled decoder (`app.formats.decoders`), if it has one."""
    return None if schema.decoder is None else schema.decoder.decode(body, max_rows)


_MLFLOW_FIRST = re.compile(rb'\s*\{\s*"(?:%s)"' % b"|".join(k.encode() for k in MLFLOW_KEYS))


def decode_mlflow(schema: InputSchema, body: bytes, max_rows: int) -> Decoded | None:
    """/invocations': the same compiled decoder, for a body in one of MLflow's formats (those
    the decoder reads beside them, a bare record or `records`, are not MLflow's)."""
    if schema.decoder is None or _MLFLOW_FIRST.match(body) is None:
        return None
    return schema.decoder.decode(body, max_rows)


def _decode_csv(schema: InputSchema, body: bytes, max_rows: int) -> Decoded | None:
    """CSV's: a plain body of the model's double columns straight to its matrix."""
    if schema.decoder is None:
        return None
    return decode_csv(schema.array_order, body, max_rows)


def _text(body: bytes) -> bytes:
    return body


class DataPlane:
    """Answers prediction requests with the slot's serving model."""

    def __init__(self, slot: ModelSlot, recorder: Recorder, shadow: Shadow | None = None) -> None:
        self.slot = slot
        self.recorder = recorder
        self.shadow = shadow
        """The shadow model the answered rows are offered to (SHADOW_MODEL_URI), if any."""
        self.max_rows = slot.settings.max_request_rows
        self.fast_decoders = True
        """Whether bodies go through the lane's compiled decoder first (tests compare
        answers with it off)."""

    def parse(
        self,
        schema: InputSchema,
        body: bytes,
        read: Reader,
        decode: Decode | None = None,
        load: Load = parse_json,
    ) -> tuple[np.ndarray | pd.DataFrame, Batch]:
        """JSON body -> model input, and the batch it came from (InvalidInput says what is
        wrong). A lane's compiled `decode` tries first; a body it does not take is read the
        general way, which answers the same for any body both read (the fast path's batch
        carries only the location, for errors)."""
        if decode is not None and self.fast_decoders:
            decoded = decode(schema, body, self.max_rows)
            if decoded is not None:
                return decoded
        batch = read(load(body), self.max_rows)
        return schema.parse(batch, booleans=b"true" in body or b"false" in body), batch

    async def infer(
        self,
        body: bytes,
        read: Reader,
        request_id: str,
        decode: Decode | None = None,
        load: Load = parse_json,
        *,
        mlflow_params: bool = False,
    ) -> tuple[ServedModel, list[Any]]:
        """The serving model and its predictions for a body in the format `read` reads (from
        what `load` made of the bytes: parsed JSON unless told), or `decode` decodes when it
        can (the caller bounds the time). The body's inference params are checked against the
        model's params schema; for a model without one they are refused, or ignored with
        `mlflow_params` as MLflow's scoring server ignores them. Every protocol's lane comes
        through here; what was predicted is recorded (prediction log, drift, accuracy) off the
        request path."""
        start = time.perf_counter()
        served = self.slot.serving()
        served.in_flight += 1
        try:
            schema = served.predictor.schema
            if len(body) <= INLINE_BYTES:
                data, batch = self.parse(schema, body, read, decode, load)
                params = checked_params(schema, batch, mlflow_params)
                predicted = None
            elif (offloaded := await self._offload(served, body, decode)) is not None:
                data, batch, predicted = offloaded
                params = None
            else:  # a large body crosses to a model thread once: parsed and predicted there
                data, batch, params, predicted = await asyncio.get_running_loop().run_in_executor(
                    served.executor,
                    self._parse_and_predict,
                    served,
                    (body, read, decode, load),
                    mlflow_params,
                )
            try:
                if predicted is None:
                    predictions = await served.predict(data, params)
                else:
                    predictions = predicted()
            except InvalidInput as exc:
                cause = exc.__cause__
                logger.info("the model refused the input: %s", one_line(str(cause or exc)))
                if len(data) > 1 and not getattr(batch, "single", False):
                    raise await self._refused_rows(served, data, batch, exc) from None
                raise
        finally:
            served.in_flight -= 1
        self.recorder.record(
            request_id, served.predictor, data, predictions, time.perf_counter() - start
        )
        if self.shadow is not None:
            self.shadow.offer(request_id, served.predictor, data, predictions)
        return served, predictions

    async def _offload(
        self, served: ServedModel, body: bytes, decode: Decode | None
    ) -> tuple[np.ndarray, Batch, Callable[[], list[Any]]] | None:
        """A large /predict body's matrix, batch and predictions from a model process beside this
        worker (`app.parallel.model_process`), or None: none has room, or the one that took the body
        leaves it to the worker (which then answers as it would without model processes)."""
        if decode is not _decode_predict or not self.fast_decoders or not served.model_processes:
            return None
        process = min(served.model_processes, key=attrgetter("waiting"))
        answered = process.submit(body)
        done = None if answered is None else await answered
        if done is None:
            return None
        matrix, predictions, seconds = done
        served.metrics.observe(predictions, seconds)
        return matrix, Records([], ()), lambda: predictions

    def _parse_and_predict(
        self,
        served: ServedModel,
        how: tuple[bytes, Reader, Decode | None, Load],
        mlflow_params: bool,
    ) -> tuple[np.ndarray | pd.DataFrame, Batch, Params, Callable[[], list[Any]]]:
        """(On a model thread) a large body's input, batch, params, and a callable that gives
        its predictions or raises what predicting raised. Its rows are many already, so it is
        not batched with others, and one thread hop instead of two (parse, then predict)
        leaves the event loop more time."""
        schema = served.predictor.schema
        data, batch = self.parse(schema, *how)
        params = checked_params(schema, batch, mlflow_params)
        try:
            predictions, seconds = timed(partial(served.predictor.predict, params=params), data)
        except Exception as exc:
            error = exc

            def fail() -> list[Any]:
                raise error

            return data, batch, params, fail
        served.metrics.observe(predictions, seconds)
        return data, batch, params, lambda: predictions

    async def _refused_rows(
        self, served: ServedModel, data: Any, batch: Batch, error: InvalidInput
    ) -> InvalidInput:
        """The model refused a batch: name the rows it refuses on their own (up to 20)."""
        message = error.details[0]["msg"] if error.details else error.message

        def find() -> list[int]:
            refused = []
            for i in range(len(data)):
                row = data[i : i + 1] if isinstance(data, np.ndarray) else data.iloc[i : i + 1]
                try:
                    served.predictor.predict(row)
                except InvalidInput:
                    refused.append(i)
                    if len(refused) == MAX_ERRORS:
                        break
            return refused

        rows = await asyncio.get_running_loop().run_in_executor(served.executor, find)
        if not rows:
            return error  # only the combination is refused: nothing to point at
        details = [{"loc": [*batch.loc, i], "msg": message} for i in rows]
        return InvalidInput(summarize(details), details)

    async def predict(self, body: bytes, request_id: str) -> bytes:
        """JSON answer bytes for a /predict body."""
        served, predictions = await self.infer(body, normalize, request_id, _decode_predict)
        return b'{"predictions":%s,"model":%s}' % (
            orjson.dumps(predictions, option=orjson.OPT_SERIALIZE_NUMPY),
            served.identity_json,
        )

    async def invocations(self, body: bytes, request_id: str, kind: str = "json") -> bytes:
        """JSON answer bytes for an MLflow scoring-server body (`kind`: "json", "csv" or
        "parquet"), shaped as MLflow's server shapes it: `{"predictions": ...}`, in the form
        of the model's own output (`app.model.output`)."""
        read, decode, load = _INVOCATIONS[kind]
        served, predictions = await self.infer(
            body, read, request_id, decode, load, mlflow_params=True
        )
        answer = as_mlflow(predictions, served.predictor.output)
        return b'{"predictions":%s}' % orjson.dumps(answer, option=orjson.OPT_SERIALIZE_NUMPY)


_INVOCATIONS: dict[str, tuple[Reader, Decode | None, Load]] = {
    "json": (normalize_mlflow, decode_mlflow, parse_json),
    "csv": (read_csv, _decode_csv, _text),
    "parquet": (read_parquet, None, _text),
}
"""How /invocations reads a body of each kind: the reader, its compiled decoder, the load."""
