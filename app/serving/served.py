"""The serving model: one loaded predictor with what serves it beside it (its batcher, its
metrics, the model threads, its model processes) and the requests it is answering.

The slot (`app.serving.slot`) makes one per model it installs and swaps them by reference.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any

import anyio.to_thread
import numpy as np
import orjson
import pandas as pd

from app.batching.batcher import MicroBatcher, timed
from app.model.predictor import Predictor
from app.monitoring.metrics import Metrics, ModelMetrics
from app.parallel.model_process import ModelProcess
from app.process.cores import model_process_core
from app.settings import Settings

logger = logging.getLogger(__name__)

IDENTITY_KEYS = ("name", "version", "alias", "run_id", "uri")
"""The identity fields /model-info and the answers' model field carry."""


@dataclass(slots=True, eq=False)
class ServedModel:
    """The serving model, its batcher and identity, and the requests it is answering."""

    predictor: Predictor
    identity_json: bytes
    metrics: ModelMetrics
    executor: ThreadPoolExecutor
    source: str = "registry"
    batcher: MicroBatcher | None = None
    in_flight: int = 0
    model_processes: tuple[ModelProcess, ...] = ()
    """Model processes serving this model beside the worker (started after it is swapped in)."""

    async def predict(
        self, data: np.ndarray | pd.DataFrame, params: dict[str, Any] | None = None
    ) -> list[Any]:
        """Predictions for parsed input: batched with other requests' when it is a matrix and
        comes without inference params (which hold for its own rows only)."""
        if self.batcher is not None and isinstance(data, np.ndarray) and params is None:
            return await self.batcher.predict(data)
        loop = asyncio.get_running_loop()
        predict = (
            self.predictor.predict
            if params is None
            else partial(self.predictor.predict, params=params)
        )
        predictions, seconds = await loop.run_in_executor(self.executor, timed, predict, data)
        self.metrics.observe(predictions, seconds)
        return predictions

    @classmethod
    def make(
        cls,
        predictor: Predictor,
        settings: Settings,
        metrics: Metrics,
        executor: ThreadPoolExecutor,
        source: str,
    ) -> ServedModel:
        """`predictor` ready to serve: its identity, its metrics, its batcher started."""
        identity = predictor.identity.as_dict()
        served = cls(
            predictor,
            orjson.dumps({k: identity[k] for k in IDENTITY_KEYS}),
            metrics.for_model(
                predictor.identity.name, predictor.identity.version or "", predictor.is_classifier
            ),
            executor,
            source,
        )
        if settings.batching:
            served.batcher = MicroBatcher(
                predictor.predict,
                executor,
                observe=served.metrics.observe,
                max_rows=settings.micro_batch_max_rows,
                max_wait=settings.batch_max_wait_ms / 1000,
                in_flight=lambda: served.in_flight,
                concurrency=settings.predict_threads,
            )
            served.batcher.start()
        return served


async def start_model_processes(
    served: ServedModel, settings: Settings, stopping: threading.Event, current: Callable[[], bool]
) -> None:
    """Start the model processes for `served` (see app.parallel.model_process); the worker
    serves alone meanwhile, and for good when its model cannot be served so (logged).
    `current()` says whether `served` is still the slot's model; `stopping` is set when the
    slot stops: either way, processes started meanwhile are closed again."""
    predictor = served.predictor
    label = predictor.identity.label
    started: list[ModelProcess] = []

    def start() -> None:
        snapshot = predictor.snapshot()
        if snapshot is None or predictor.schema.decoder is None:
            logger.info("%s is served in the worker alone: no model process", label)
            return
        for k in range(settings.model_process_count):
            process = ModelProcess(
                snapshot,
                settings.max_request_rows,
                label,
                stopping,
                model_process_core(k),
            )
            started.append(process)

    ready = False
    try:
        await anyio.to_thread.run_sync(start)
        ready = True
    except (RuntimeError, OSError) as exc:
        logger.warning("%s is served in the worker alone: %s", label, exc)
    finally:  # also when the slot stops meanwhile
        if ready and current() and not stopping.is_set():
            served.model_processes = tuple(started)
            if started:
                pids = ", ".join(str(process.pid) for process in started)
                logger.info("%s: model processes take large requests (pid %s)", label, pids)
        else:
            close_model_processes(tuple(started))


def close_model_processes(model_processes: tuple[ModelProcess, ...]) -> None:
    for process in model_processes:
        process.close()
