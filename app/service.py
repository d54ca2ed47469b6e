"""The serving layer between HTTP and the model: loading with retries, predicting, describing.

Routes hand it raw request bodies and get JSON bytes back; it owns the current `Predictor`,
the metrics, and the background task that loads the model (the HTTP server is up, and
/healthz answers, while the model loads; /readyz answers 503 until it is in).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import anyio.to_thread
import numpy as np
import orjson

from app.batching import MicroBatcher
from app.errors import InvalidInput, NotReady
from app.metrics import Metrics
from app.payload import normalize
from app.predictor import MLFLOW_CLIENT_DEFAULTS, LoadError, Predictor, load_error
from app.schema import InputSchema
from app.settings import Settings

logger = logging.getLogger(__name__)

PredictorFactory = Callable[[], Predictor]
# Above this many rows, validation runs on a thread rather than in the event loop.
INLINE_ROWS = 64
_IDENTITY_KEYS = ("name", "version", "alias", "run_id", "uri")


@dataclass(frozen=True, slots=True)
class _Active:
    """The serving model, its batcher and its identity, swapped in as one reference."""

    predictor: Predictor
    batcher: MicroBatcher | None
    identity_json: bytes


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


class ModelService:
    """Owns the served model and everything the routes need of it."""

    def __init__(
        self,
        settings: Settings,
        factory: PredictorFactory,
        metrics: Metrics,
        on_fatal: Callable[[], None] | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self._factory = factory
        self._active: _Active | None = None
        self._task: asyncio.Task[None] | None = None
        # One model thread: predict calls never block the event loop, and never contend.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="predict")
        self.last_error: str | None = None
        self.failed = False
        self.on_fatal = on_fatal

    # -- lifecycle -----------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        return self._active is not None and self._active.predictor.ready

    async def start(self) -> None:
        """Start loading in the background; returns at once."""
        for key, value in MLFLOW_CLIENT_DEFAULTS.items():
            os.environ.setdefault(key, value)
        self._task = asyncio.create_task(self._load_with_retries(), name="model-loader")

    async def wait_loaded(self) -> None:
        if self._task is not None:
            await asyncio.shield(self._task)

    async def stop(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        active, self._active = self._active, None
        if active is not None:
            if active.batcher is not None:
                await active.batcher.stop()
            active.predictor.close()
        self._executor.shutdown(wait=False, cancel_futures=True)
        self.metrics.ready.set(0)

    async def _load_with_retries(self) -> None:
        budget = self.settings.model_load_timeout
        deadline = time.monotonic() + budget
        uri = self.settings.resolved_model_uri
        attempt = 0
        while True:
            attempt += 1
            predictor = self._factory()
            try:
                await anyio.to_thread.run_sync(predictor.load, abandon_on_cancel=True)
            except Exception as exc:
                error = exc if isinstance(exc, LoadError) else load_error(exc)
                self.metrics.load_failures.inc()
                self.last_error = str(error)
                remaining = deadline - time.monotonic()
                if error.permanent or remaining <= 0:
                    self._give_up(uri, error, attempt, budget)
                    return
                delay = min(remaining, min(30.0, 0.5 * 2 ** (attempt - 1)) * random.uniform(0.7, 1))
                logger.warning(
                    "model load attempt %d failed: %s; retrying in %.1fs", attempt, error, delay
                )
                await asyncio.sleep(delay)
                continue
            self._install(predictor)
            return

    def _give_up(self, uri: str, error: LoadError, attempts: int, budget: float) -> None:
        self.failed = True
        why = "cannot be loaded" if error.permanent else f"not loaded after {budget:g}s"
        logger.critical(
            "giving up: model %s %s (%d attempt%s): %s",
            uri, why, attempts, "" if attempts == 1 else "s", error,
        )  # fmt: skip
        if self.on_fatal is not None:
            self.on_fatal()

    def _install(self, predictor: Predictor) -> None:
        settings = self.settings
        batcher = None
        if settings.batching:
            batcher = MicroBatcher(
                predictor.predict,
                self._executor,
                max_rows=settings.batch_max_rows,
                max_wait=settings.batch_max_wait_ms / 1000,
            )
            batcher.start()
        identity = predictor.identity.as_dict()
        identity_json = orjson.dumps({k: identity[k] for k in _IDENTITY_KEYS})
        old, self._active = self._active, _Active(predictor, batcher, identity_json)
        info = predictor.describe()
        self.metrics.observe_model(identity, float(info.get("load_seconds") or 0.0))
        self.last_error = None
        if old is not None:
            old.predictor.close()

    # -- requests ------------------------------------------------------------------------

    def _serving(self) -> _Active:
        active = self._active
        if active is None or not active.predictor.ready:
            reason = f" (last error: {self.last_error})" if self.last_error else ""
            raise NotReady("the model is not loaded yet" + reason)
        return active

    def _current(self) -> Predictor:
        return self._serving().predictor

    async def predict(self, body: bytes) -> bytes:
        """JSON response bytes for a /predict request body.

        The model, batcher and identity are read once, so a request is answered wholly by
        one model even if another is swapped in meanwhile."""
        active = self._serving()
        predictor, batcher = active.predictor, active.batcher
        if batcher is not None:
            batcher.in_flight += 1
        try:
            batch = normalize(parse_json(body), self.settings.max_batch_rows)
            if len(batch.items) <= INLINE_ROWS:
                data = predictor.schema.parse(batch)
            else:
                data = await anyio.to_thread.run_sync(predictor.schema.parse, batch)
            start = time.perf_counter()
            if batcher is not None and isinstance(data, np.ndarray):
                predictions = await batcher.predict(data)
            else:
                loop = asyncio.get_running_loop()
                predictions = await loop.run_in_executor(self._executor, predictor.predict, data)
        finally:
            if batcher is not None:
                batcher.in_flight -= 1
        self._observe(predictor, predictions, time.perf_counter() - start)
        return b'{"predictions":%s,"model":%s}' % (
            orjson.dumps(predictions, option=orjson.OPT_SERIALIZE_NUMPY),
            active.identity_json,
        )

    def _observe(self, predictor: Predictor, predictions: list[Any], seconds: float) -> None:
        identity = predictor.identity
        name, version = identity.name, identity.version or ""
        self.metrics.predict_seconds.labels(name, version).observe(seconds)
        self.metrics.rows.labels(name, version).inc(len(predictions))
        if getattr(predictor, "is_classifier", False):
            self.metrics.count_classes(name, version, predictions)

    def info(self) -> dict[str, Any]:
        return self._current().describe()

    def input_schema(self) -> InputSchema:
        return self._current().schema

    def input_example(self) -> list[dict[str, Any]] | None:
        example = self._current().describe().get("input_example")
        return example if isinstance(example, list) else None

    def status(self) -> dict[str, Any]:
        active = self._active
        return {
            "ready": self.ready,
            "model": active.predictor.identity.as_dict() if active is not None else None,
            "last_error": self.last_error,
        }
