"""What the service saw and answered, handed off the request path to the log, drift and
accuracy.

`record()` is all a request pays: one append of what it already has (the parsed matrix or
frame, the predictions, the model, its id and latency). A background task takes what was
recorded every quarter second and, on a thread, turns it into prediction-log rows, adds it to
the drift window and remembers the predictions for POST /feedback. Every few seconds it
computes the drift metrics. When too many rows wait (the log's database slow or down), new
requests' rows are dropped from the log and counted; nothing waits for them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import anyio.to_thread
import numpy as np
import orjson
import pandas as pd

from app.drift import DriftMonitor, LiveAccuracy
from app.metrics import Metrics
from app.predlog import PredictionLog, copy_field
from app.settings import Settings
from app.slot import ServedModel

logger = logging.getLogger(__name__)
TICK = 0.25


@dataclass(slots=True)
class Observation:
    at: float
    request_id: str
    served: ServedModel
    data: np.ndarray | pd.DataFrame
    predictions: list[Any]
    seconds: float


def _matrix(served: ServedModel, data: np.ndarray | pd.DataFrame) -> tuple[list[str], np.ndarray]:
    """The rows as a float matrix and its column names (non-numeric columns left out)."""
    schema = served.predictor.schema
    if isinstance(data, np.ndarray):
        return list(schema.array_order), data
    numeric = data.select_dtypes("number")
    return [str(c) for c in numeric.columns], numeric.to_numpy(dtype=np.float64)


def _records(names: list[str], matrix: np.ndarray, data: Any) -> list[dict[str, Any]]:
    """The rows as the client's records (every input, not only the numeric ones)."""
    if isinstance(data, pd.DataFrame):
        return data.to_dict(orient="records")  # type: ignore[return-value]
    return [dict(zip(names, row, strict=True)) for row in matrix.tolist()]


class Recorder:
    """Takes observations on the request path; feeds the log, drift and accuracy off it."""

    def __init__(self, settings: Settings, metrics: Metrics, log: PredictionLog | None) -> None:
        self.settings = settings
        self.metrics = metrics
        self.log = log
        self.drift = DriftMonitor(metrics, settings.drift_window_rows)
        self.accuracy = LiveAccuracy(metrics, settings.accuracy_window_rows)
        self._pending: list[Observation] = []
        self._pending_rows = 0
        self._limit = settings.prediction_log_queue_rows
        self._model_fields: dict[int, str] = {}
        self._task: asyncio.Task[None] | None = None

    def record(
        self,
        request_id: str,
        served: ServedModel,
        data: Any,
        predictions: list[Any],
        seconds: float,
    ) -> None:
        rows = len(predictions)
        if self.log is not None and self._pending_rows + self.log.waiting + rows > self._limit:
            self.metrics.log_dropped.inc(rows)
            return
        self._pending.append(
            Observation(time.time(), request_id, served, data, predictions, seconds)
        )
        self._pending_rows += rows

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self.run(), name="recorder")

    async def run(self) -> None:
        next_drift = time.monotonic() + self.settings.drift_interval
        while True:
            await asyncio.sleep(TICK)
            await self._drain()
            if time.monotonic() >= next_drift:
                next_drift = time.monotonic() + self.settings.drift_interval
                await anyio.to_thread.run_sync(self.drift.compute)

    async def sync(self) -> None:
        """Process what was recorded so far (feedback may name a request just answered)."""
        await self._drain()

    async def _drain(self) -> None:
        batch, self._pending, self._pending_rows = self._pending, [], 0
        if batch:
            await anyio.to_thread.run_sync(self._process, batch)
        if self.log is not None:
            self.metrics.log_queue.set(self.log.waiting + self._pending_rows)
            if self.log.waiting:
                self.log.wake()

    async def flush(self) -> None:
        """Shutdown: hand over and write what was recorded, within the flush deadline. The
        background task stops first: a batch it has taken is handed over before it ends."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        await self._drain()
        if self.log is not None:
            await self.log.flush(self.settings.prediction_log_flush_seconds)
            self.metrics.log_queue.set(self.log.waiting)

    def _process(self, batch: list[Observation]) -> None:
        lines: list[str] = []
        for seen in batch:
            identity = seen.served.predictor.identity
            key = (identity.name, identity.version or "")
            names, matrix = _matrix(seen.served, seen.data)
            self.drift.add(key, names, seen.served.predictor.metadata, matrix, seen.predictions)
            self.accuracy.add(seen.request_id, key, seen.predictions)
            if self.log is not None:
                lines.extend(self._lines(seen, _records(names, matrix, seen.data)))
        if lines and self.log is not None:
            self.log.add(lines)

    def _lines(self, seen: Observation, records: list[dict[str, Any]]) -> list[str]:
        served = seen.served
        model = self._model_fields.get(id(served))
        if model is None:
            identity = served.predictor.identity
            fields = (identity.name, identity.version or "\\N", identity.run_id or "\\N")
            model = self._model_fields[id(served)] = "\t".join(
                f if f == "\\N" else copy_field(f) for f in fields
            )
            if len(self._model_fields) > 16:  # models come and go; keep the few recent ones
                self._model_fields.pop(next(iter(self._model_fields)))
        at = datetime.fromtimestamp(seen.at, UTC).isoformat()
        head = f"{at}\t{seen.request_id}\t"
        tail = f"\t{seen.seconds * 1000:.3f}\n"
        return [
            f"{head}{i}\t{model}\t"
            f"{copy_field(orjson.dumps(record, default=str).decode())}\t"
            f"{copy_field(orjson.dumps(prediction, option=orjson.OPT_SERIALIZE_NUMPY).decode())}"
            f"{tail}"
            for i, (record, prediction) in enumerate(zip(records, seen.predictions, strict=True))
        ]
