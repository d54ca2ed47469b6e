"""The shadow model: a second model (SHADOW_MODEL_URI, typically `@challenger`) that predicts the
served rows off the answer's path, for comparison.

It is loaded, cached and reloaded as the served model is (`ShadowSlot` is a `ModelSlot` with
metrics of its own; the same `Loader`), so it follows its alias: a new challenger starts
shadowing without a restart. A share of the requests (SHADOW_SAMPLE) is offered to it once
answered: the offer is an append to a bounded queue on the event loop; one thread of its own
takes what waits, a few times a second, and predicts it in one call. When SHADOW_QUEUE_ROWS
rows wait (the shadow slow, stuck or failing), a request's rows are not queued, and counted as
dropped. Nothing the shadow does
reaches the served answer: its failures are counted, its predictions are compared with the
served ones (rows, agreeing rows), then handed to the recorder (`record_shadow`), which keeps
them for POST /feedback and logs them.

Its thread shares the worker's core and GIL: what the shadow computes is CPU time the served
model does not get (SHADOW_SAMPLE bounds it; docs/operations.md says what it costs).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import random
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from app.errors import NotReady
from app.model.cache import ModelCache
from app.model.predictor import ModelIdentity, Predictor
from app.monitoring.feedback import same_class
from app.monitoring.metrics import Metrics
from app.monitoring.recorder import Recorder
from app.serving.loader import Loader
from app.serving.shadow_slot import ShadowSlot, shadow_settings
from app.serving.slot import PredictorFactory
from app.settings import Settings

logger = logging.getLogger(__name__)

TICK = 0.05
"""Seconds the shadow's thread lets rows gather once one waits: one predict call takes them
all, so the shadow holds the GIL (its pure-Python parts) a few times a second, not per request."""
BATCH_ROWS = 4096
"""Most rows one shadow predict call takes (a request's rows are never split)."""
YIELD_EVERY = 32
"""Requests the shadow's thread compares between two releases of the GIL: without them its
pure-Python comparing of a few hundred requests holds the GIL for the interpreter's whole
switch interval (5 ms), and the event loop waits that long."""


@dataclass(slots=True)
class _Offer:
    request_id: str
    served: ModelIdentity
    order: tuple[str, ...]
    data: np.ndarray | pd.DataFrame
    predictions: list[Any]


class Shadow:
    """The shadow model's slot and loader, its queue and its thread."""

    def __init__(
        self,
        settings: Settings,
        factory: PredictorFactory,
        metrics: Metrics,
        recorder: Recorder,
        cache: ModelCache | None = None,
    ) -> None:
        self.settings = shadow_settings(settings)
        self.sample = settings.shadow_sample
        self.limit = settings.shadow_queue_rows
        self.metrics = metrics
        self.recorder = recorder
        self.slot = ShadowSlot(self.settings, factory, metrics, cache=cache)
        self._queue: collections.deque[_Offer] = collections.deque()
        self._queued = 0  # rows in the queue
        self._lock = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._random = random.Random()
        self._warned = 0.0  # when a failure was last logged (monotonic)

    # -- the event loop's side ----------------------------------------------------------

    def offer(self, request_id: str, served: Predictor, data: Any, predictions: list[Any]) -> None:
        """A served request's rows, for the shadow to predict (sampled; dropped when the
        queue is full). Costs the request an append."""
        if self.sample < 1.0 and self._random.random() >= self.sample:
            return
        if not self.slot.ready:
            return
        rows = len(predictions)
        with self._lock:
            if self._queued + rows > self.limit:
                full = True
            else:
                full = False
                self._queue.append(
                    _Offer(
                        request_id, served.identity, served.schema.array_order, data, predictions
                    )
                )
                self._queued += rows
                self._lock.notify()
        if full:
            self.metrics.shadow_dropped.inc(rows)

    async def start(self) -> None:
        """Start loading the shadow model (in the background) and the shadow's thread."""
        self.slot.spawn(self._load(), "shadow-loader")
        self._thread = threading.Thread(target=self._run, name="shadow", daemon=True)
        self._thread.start()

    async def _load(self) -> None:
        """The first load, by the served model's loader; a shadow that cannot be loaded is
        tried again every MODEL_RELOAD_INTERVAL (never, when 0), the served model unaffected."""
        interval = self.settings.model_reload_interval
        while True:
            given_up = asyncio.Event()
            await Loader(self.slot, on_fatal=given_up.set).run()
            if not given_up.is_set() or interval <= 0:
                return
            logger.warning(
                "shadow model %s not loaded; trying again in %gs",
                self.settings.resolved_model_uri, interval,
            )  # fmt: skip
            await asyncio.sleep(interval)

    async def reload(self, *, force: bool = False) -> dict[str, Any] | None:
        """Reload the shadow model (POST /admin/reload, SIGHUP); None when none is loaded."""
        if not self.slot.ready:
            return None
        return await self.slot.reload(force=force)

    async def stop(self) -> None:
        with self._lock:
            self._stopping = True
            self._queue.clear()
            self._queued = 0
            self._lock.notify()
        await self.slot.stop()
        # A thread stuck in a hung predict is a daemon: it does not hold up the exit.

    def info(self) -> dict[str, Any]:
        """/model-info's shadow: the model's identity, sampling and queue, or its last error."""
        status: dict[str, Any] = {
            "uri": self.settings.resolved_model_uri,
            "sample": self.sample,
            "queue_rows": self._queued,
            "queue_limit": self.limit,
        }
        if self.slot.ready:
            status["model"] = self.slot.serving().predictor.identity.as_dict()
        else:
            status["model"] = None
            status["last_error"] = self.slot.last_error
        return status

    # -- the shadow's thread ------------------------------------------------------------

    def _take(self) -> list[_Offer] | None:
        """The next offers: once one waits, TICK later, all that wait then (up to BATCH_ROWS
        rows), for one predict call; at once when BATCH_ROWS rows wait already (it lags).
        None: stopping."""
        with self._lock:
            while not self._queue and not self._stopping:
                self._lock.wait()
            behind = self._queued >= BATCH_ROWS
        if not behind:
            time.sleep(TICK)
        with self._lock:
            if self._stopping:
                return None
            taken: list[_Offer] = []
            rows = 0
            while self._queue and (
                not taken or rows + len(self._queue[0].predictions) <= BATCH_ROWS
            ):
                offer = self._queue.popleft()
                taken.append(offer)
                rows += len(offer.predictions)
            self._queued -= rows
            return taken

    def _run(self) -> None:
        while (offers := self._take()) is not None:
            for group in _groups(offers):
                try:
                    self._predict(group)
                except Exception:  # never the thread's end: logged, next
                    logger.exception("shadow: unexpected failure")

    def _predict(self, group: list[_Offer]) -> None:
        """One predict call for the group's rows; compared with the served predictions,
        counted, handed to the recorder."""
        try:
            predictor = self.slot.serving().predictor
        except NotReady:
            return
        shadow = predictor.identity
        rows = sum(len(offer.predictions) for offer in group)
        start = time.perf_counter()
        try:
            data = _reordered(_joined(group), group[0].order, predictor.schema.array_order)
            predictions = predictor.predict(data)
            if len(predictions) != rows:
                raise ValueError(f"answered {len(predictions)} rows for {rows}")
        except Exception as exc:
            self.metrics.shadow_failures.labels(shadow.name, shadow.version or "").inc(rows)
            now = time.monotonic()
            if now - self._warned > 60:  # a failing shadow fails on every call: once a minute
                self._warned = now
                logger.warning("shadow model %s failed to predict: %s", shadow.label, exc)
            return
        seconds = time.perf_counter() - start
        counts: dict[tuple[str, str, str, str], list[int]] = {}
        at = 0
        for i, offer in enumerate(group):
            if i % YIELD_EVERY == YIELD_EVERY - 1:
                time.sleep(0)  # let the event loop have the GIL: this loop is pure Python
            mine = predictions[at : at + len(offer.predictions)]
            at += len(offer.predictions)
            served = offer.served
            pair = (served.name, served.version or "", shadow.name, shadow.version or "")
            agreeing = sum(
                p == q or same_class(p, q) for p, q in zip(offer.predictions, mine, strict=True)
            )
            count = counts.setdefault(pair, [0, 0])
            count[0] += len(mine)
            count[1] += agreeing
            self.recorder.record_shadow(offer.request_id, predictor, mine, seconds)
        for pair, (compared, agreeing) in counts.items():
            self.metrics.shadow_rows.labels(*pair).inc(compared)
            if agreeing:
                self.metrics.shadow_agreeing.labels(*pair).inc(agreeing)


def _groups(offers: list[_Offer]) -> list[list[_Offer]]:
    """The offers cut into runs one predict call can take: matrices of one served model's
    column order together, each frame alone."""
    groups: list[list[_Offer]] = []
    for offer in offers:
        last = groups[-1][-1] if groups else None
        if (
            last is not None
            and isinstance(offer.data, np.ndarray)
            and isinstance(last.data, np.ndarray)
            and offer.order == last.order
            and offer.data.shape[1:] == last.data.shape[1:]
        ):
            groups[-1].append(offer)
        else:
            groups.append([offer])
    return groups


def _joined(group: list[_Offer]) -> np.ndarray | pd.DataFrame:
    if len(group) == 1:
        return group[0].data
    return np.concatenate([offer.data for offer in group])


def _reordered(
    data: np.ndarray | pd.DataFrame, served: tuple[str, ...], shadow: tuple[str, ...]
) -> np.ndarray | pd.DataFrame:
    """The served model's matrix with its columns in the shadow's order (a frame is given as
    it is: the shadow picks its own columns by name). KeyError: the shadow needs a column the
    served model does not take."""
    if not isinstance(data, np.ndarray) or tuple(served) == tuple(shadow):
        return data
    where = {name: i for i, name in enumerate(served)}
    return data[:, [where[name] for name in shadow]]
