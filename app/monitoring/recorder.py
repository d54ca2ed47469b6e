"""What the service saw and answered: drift counts and the predictions POST /feedback scores,
fed as requests are answered; the prediction log's rows made off the request path.

`record()` is all a request pays: the drift counter and the recent predictions for POST
/feedback take what the request already has (the parsed matrix or frame, the predictions)
with an append each, on the event loop. With the prediction log on, it also queues the
observation. A background task, every quarter second, bins the rows the drift counter took
and, on the event loop a slice at a time, turns what was queued into the log's rows. When too
many rows wait (the log's database slow or down), new requests' rows are dropped from the log
and counted; nothing waits for them. The shadow model's predictions (`app.serving.shadow`) come
from its own thread through `record_shadow()`, and are taken on the same tick: kept beside the
served ones for POST /feedback, and logged.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from app.model.predictor import Predictor
from app.monitoring.copytext import (
    frame_inputs,
    frame_matrix,
    matrix_inputs,
    output_texts,
    timestamp,
)
from app.monitoring.drift import DriftCounter
from app.monitoring.feedback import FeedbackScorer, Recent
from app.monitoring.metrics import Metrics
from app.monitoring.predlog import PredictionLog, copy_field
from app.monitoring.siblings import Siblings
from app.settings import Settings

logger = logging.getLogger(__name__)
TICK = 0.25
SLICE = 200  # observations processed between two turns of the event loop


@dataclass(slots=True)
class Observation:
    at: float
    request_id: str
    predictor: Predictor
    data: np.ndarray | pd.DataFrame
    predictions: list[Any]
    seconds: float


@dataclass(slots=True)
class ShadowObservation:
    """The shadow model's predictions of a served request's rows."""

    at: float
    request_id: str
    predictor: Predictor
    predictions: list[Any]
    seconds: float


class Recorder:
    """Takes observations on the request path; feeds the log, drift and accuracy off it."""

    def __init__(self, settings: Settings, metrics: Metrics, log: PredictionLog | None) -> None:
        self.settings = settings
        self.metrics = metrics
        self.log = log
        self.drift = DriftCounter(metrics, settings.drift_alert_alpha, settings.drift_metrics)
        self.recent = Recent(rows=settings.feedback_memory_rows)
        self.siblings = Siblings(self.recent)
        self.feedback = FeedbackScorer(metrics, self.recent, self.siblings, log)
        self._pending: list[Observation] = []
        self._pending_rows = 0
        self._limit = settings.prediction_log_queue_rows
        self._model_fields: dict[int, str] = {}
        self._shadowed: collections.deque[ShadowObservation] = collections.deque()
        self._task: asyncio.Task[None] | None = None

    def serve(self, predictor: Predictor) -> None:
        """`predictor` is about to serve: its drift counters and baseline are exported."""
        identity = predictor.identity
        self.drift.serve(identity.name, identity.version or "", predictor.metadata)

    def record(
        self,
        request_id: str,
        predictor: Predictor,
        data: Any,
        predictions: list[Any],
        seconds: float,
    ) -> None:
        identity = predictor.identity
        key = (identity.name, identity.version or "")
        names: Sequence[str]
        if isinstance(data, np.ndarray):
            names, rows = predictor.schema.array_order, data
        else:
            names, rows = frame_matrix(data)
        self.drift.add(key, names, predictor.metadata, rows)
        self.recent.add(request_id, key, predictions)
        if self.log is None:
            return
        count = len(predictions)
        if self._pending_rows + self.log.waiting + count > self._limit:
            self.metrics.log_dropped.inc(count)
            return
        self._pending.append(
            Observation(time.time(), request_id, predictor, data, predictions, seconds)
        )
        self._pending_rows += count

    def record_shadow(
        self, request_id: str, predictor: Predictor, predictions: list[Any], seconds: float
    ) -> None:
        """The shadow's predictions of a request's rows (called on the shadow's thread: a
        deque's append is atomic; the event loop takes them on its next tick)."""
        self._shadowed.append(
            ShadowObservation(time.time(), request_id, predictor, predictions, seconds)
        )

    async def _drain_shadow(self) -> None:
        """Keep what the shadow predicted beside the served predictions, and queue its log
        rows (dropped and counted when the log's queue is full); a slice at a time."""
        taken = [self._shadowed.popleft() for _ in range(len(self._shadowed))]
        for start in range(0, len(taken), SLICE):
            lines: list[str] = []
            for seen in taken[start : start + SLICE]:
                identity = seen.predictor.identity
                key = (identity.name, identity.version or "")
                self.recent.add_shadow(seen.request_id, key, seen.predictions)
                if self.log is None:
                    continue
                if self.log.shadow_waiting + len(lines) + len(seen.predictions) > self._limit:
                    self.metrics.log_dropped.inc(len(seen.predictions))
                    continue
                head = f"{timestamp(seen.at)}\t{seen.request_id}\t"
                model = self._model_field(seen.predictor)
                tail = f"\t{seen.seconds * 1000:.3f}\n"
                outputs = output_texts(seen.predictions)
                lines.extend(f"{head}{i}\t{model}\t{out}{tail}" for i, out in enumerate(outputs))
            if self.log is not None:
                self.log.add_shadow(lines)
            await asyncio.sleep(0)

    async def start(self) -> None:
        await self.siblings.start()
        self._task = asyncio.get_running_loop().create_task(self.run(), name="recorder")

    async def run(self) -> None:
        while True:
            await asyncio.sleep(TICK)
            self.drift.flush()
            await self._drain_shadow()
            await self._drain()

    async def _drain(self) -> None:
        if self.log is None:
            return
        batch, self._pending, self._pending_rows = self._pending, [], 0
        # On the event loop, a slice at a time with a yield between: a thread would hold the
        # GIL for milliseconds against the loop (the convoy effect: p99 at 32 connections
        # went from 3 ms to 22 ms), a slice delays requests by well under a millisecond.
        for start in range(0, len(batch), SLICE):
            self.log.add(self._log_lines(batch[start : start + SLICE]))
            await asyncio.sleep(0)
        self.metrics.log_queue.set(self.log.waiting + self._pending_rows)
        if self.log.waiting or self.log.shadow_waiting:
            self.log.wake()

    async def flush(self) -> None:
        """Shutdown: hand over and write what was recorded, within the flush deadline. The
        background task stops first: a batch it has taken is handed over before it ends."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        await self.siblings.stop()
        self.drift.flush()
        await self._drain_shadow()
        await self._drain()
        if self.log is not None:
            await self.log.flush(self.settings.prediction_log_flush_seconds)
            self.metrics.log_queue.set(self.log.waiting)

    def _log_lines(self, batch: list[Observation]) -> list[str]:
        """The prediction log's COPY lines for what was recorded."""
        lines: list[str] = []
        for group in _runs(batch):
            first = group[0]
            if isinstance(first.data, np.ndarray):
                names = list(first.predictor.schema.array_order)
                matrices = [o.data for o in group if isinstance(o.data, np.ndarray)]  # all are
                rows = matrices[0] if len(matrices) == 1 else np.concatenate(matrices)
                inputs = matrix_inputs(names, rows)
            else:
                inputs = frame_inputs(first.data)
            lines.extend(_lines(group, self._model_field(first.predictor), inputs))
        return lines

    def _model_field(self, predictor: Predictor) -> str:
        """The log's model columns (name, version, run id) as COPY text, kept per model."""
        model = self._model_fields.get(id(predictor))
        if model is None:
            identity = predictor.identity
            fields = (identity.name, identity.version or "\\N", identity.run_id or "\\N")
            model = self._model_fields[id(predictor)] = "\t".join(
                f if f == "\\N" else copy_field(f) for f in fields
            )
            if len(self._model_fields) > 16:  # models come and go; keep the few recent ones
                self._model_fields.pop(next(iter(self._model_fields)))
        return model


def _runs(batch: list[Observation]) -> list[list[Observation]]:
    """The batch cut where the serving model changes, and around each frame: a run's rows
    are encoded in one piece (a frame's columns are its own)."""
    runs: list[list[Observation]] = []
    last: int | None = None
    for seen in batch:
        kind = id(seen.predictor) if isinstance(seen.data, np.ndarray) else None
        if kind is None or kind != last:
            runs.append([])
            last = kind
        runs[-1].append(seen)
    return runs


def _lines(group: list[Observation], model: str, inputs: list[str]) -> list[str]:
    """The log's COPY lines for a run's rows; `inputs` holds every row's input JSON, in order."""
    lines: list[str] = []
    outputs = output_texts([p for seen in group for p in seen.predictions])
    row = 0
    for seen in group:
        head = f"{timestamp(seen.at)}\t{seen.request_id}\t"
        tail = f"\t{seen.seconds * 1000:.3f}\n"
        for i in range(len(seen.predictions)):
            lines.append(f"{head}{i}\t{model}\t{inputs[row]}\t{outputs[row]}{tail}")
            row += 1
    return lines
