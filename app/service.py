"""The serving layer between HTTP and the model: loading, reloading, predicting, describing.

Routes hand it raw request bodies and get JSON bytes back. It owns the serving model (with its
batcher and identity, swapped in as one reference, so every request is answered wholly by one
model), the metrics, and the background tasks: the first load with retries (the HTTP server is
up, /healthz answers, while it runs; /readyz answers 503 until it is in) and alias polling.
"""

from __future__ import annotations

import asyncio
import functools
import gc
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

from app.batching import MicroBatcher, timed
from app.errors import InvalidInput, NotReady, ReloadFailed
from app.metrics import Metrics, ModelMetrics
from app.payload import normalize
from app.predictor import MLFLOW_CLIENT_DEFAULTS, LoadError, ModelIdentity, Predictor, load_error
from app.schema import InputSchema
from app.settings import Settings

logger = logging.getLogger(__name__)

PredictorFactory = Callable[[], Predictor]
# Bodies larger than this are parsed and validated on a thread, not on the event loop
# (a 16 MiB body is ~0.1-0.2 s of work that no other request should wait behind).
INLINE_BYTES = 16 * 1024
_IDENTITY_KEYS = ("name", "version", "alias", "run_id", "uri")


@dataclass(slots=True, eq=False)
class _Active:
    """The serving model, its batcher and identity, and the requests it is answering."""

    predictor: Predictor
    identity_json: bytes
    metrics: ModelMetrics
    batcher: MicroBatcher | None = None
    in_flight: int = 0


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


def _same_model(target: ModelIdentity, serving: ModelIdentity) -> bool:
    """Whether the URI still names the model being served. A URI that resolves to no version
    or run (models:/<model_id>) names one fixed model: the same."""
    if target.version is None and target.run_id is None:
        return True
    if target.version is None:  # runs:/<run_id>/<path>
        return target.run_id == serving.run_id
    return (target.name, target.version) == (serving.name, serving.version)


class ModelService:
    """Owns the served model and everything the routes need of it."""

    def __init__(
        self,
        settings: Settings,
        factory: PredictorFactory,
        metrics: Metrics,
        on_fatal: Callable[[], None] | None = None,
        on_reloaded: Callable[[], None] | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self._factory = factory
        self._active: _Active | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._reload_lock = asyncio.Lock()
        # Model threads: predict calls never block the event loop.
        self._executor = ThreadPoolExecutor(
            max_workers=settings.predict_threads, thread_name_prefix="predict"
        )
        self.last_error: str | None = None
        self.failed = False
        self.on_fatal = on_fatal
        self.on_reloaded = on_reloaded

    # -- lifecycle -----------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        return self._active is not None and self._active.predictor.ready

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def start(self) -> None:
        """Start loading (and, if configured, polling) in the background; returns at once."""
        for key, value in MLFLOW_CLIENT_DEFAULTS.items():
            os.environ.setdefault(key, value)
        self._spawn(self._load_with_retries(), "model-loader")

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        active, self._active = self._active, None
        if active is not None:
            await self._retire(active, timeout=0)
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
                error = load_error(exc)
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
            if self.settings.model_reload_interval > 0:
                self._spawn(self._poll(self.settings.model_reload_interval), "alias-poller")
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

    def _install(self, predictor: Predictor) -> _Active | None:
        """Swap `predictor` in (one reference assignment); returns what it replaced."""
        identity = predictor.identity.as_dict()
        active = _Active(
            predictor,
            orjson.dumps({k: identity[k] for k in _IDENTITY_KEYS}),
            self.metrics.for_model(
                predictor.identity.name,
                predictor.identity.version or "",
                bool(getattr(predictor, "is_classifier", False)),
            ),
        )
        if self.settings.batching:
            active.batcher = MicroBatcher(
                predictor.predict,
                self._executor,
                observe=active.metrics.observe,
                max_rows=self.settings.batch_max_rows,
                max_wait=self.settings.batch_max_wait_ms / 1000,
                in_flight=lambda: active.in_flight,
                concurrency=self.settings.predict_threads,
            )
            active.batcher.start()
        old, self._active = self._active, active
        info = predictor.describe()
        self.metrics.observe_model(identity, float(info.get("load_seconds") or 0.0))
        self.last_error = None
        # The model, MLflow, sklearn and pandas are long-lived: move them out of the cyclic
        # collector's way, or every full collection walks them (~250 ms pauses, seen in p99).
        gc.unfreeze()  # a replaced model's cycles become collectable again
        gc.collect()
        gc.freeze()
        return old

    async def _retire(self, active: _Active, timeout: float) -> None:
        """Let the requests `active` is answering finish, then release it."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while active.in_flight > 0 and loop.time() < deadline:
            await asyncio.sleep(0.01)
        if active.batcher is not None:
            await active.batcher.drain(max(0.0, deadline - loop.time()))
            await active.batcher.stop()
        active.predictor.close()

    # -- reloading -----------------------------------------------------------------------

    async def reload(self, *, force: bool = False, notify: bool = True) -> dict[str, Any]:
        """Load what the model URI means now and swap it in; the old model serves meanwhile.

        Unchanged (same version and run) unless `force`. On failure the old model keeps
        serving and ReloadFailed says why."""
        async with self._reload_lock:
            previous = self._serving().predictor.identity
            candidate = self._factory()
            try:
                target = await anyio.to_thread.run_sync(candidate.resolve)
                if not force and _same_model(target, previous):
                    self.metrics.reloads.labels("unchanged").inc()
                    return {"status": "unchanged", "model": previous.as_dict(), "previous": None}
                await anyio.to_thread.run_sync(candidate.load)
            except Exception as exc:
                error = load_error(exc)
                candidate.close()
                self.metrics.reloads.labels("failure").inc()
                logger.error("reload failed, still serving %s: %s", _label(previous), error)
                raise ReloadFailed(
                    f"reload failed, still serving {_label(previous)}: {error}"
                ) from None
            old = self._install(candidate)
            self.metrics.reloads.labels("success").inc()
        logger.info("reloaded: %s -> %s", _label(previous), _label(candidate.identity))
        if old is not None:
            self._spawn(self._retire(old, self.settings.request_timeout), "retire-model")
        if notify and self.on_reloaded is not None:
            self.on_reloaded()
        return {
            "status": "reloaded",
            "model": candidate.identity.as_dict(),
            "previous": previous.as_dict(),
        }

    async def _poll(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                result = await self.reload(notify=False)
            except (ReloadFailed, NotReady):
                continue  # logged and counted; the old model keeps serving
            if result["status"] == "reloaded":
                logger.info(
                    "alias poll: now serving %s", _label(self._serving().predictor.identity)
                )

    # -- requests ------------------------------------------------------------------------

    def _serving(self) -> _Active:
        active = self._active
        if active is None or not active.predictor.ready:
            reason = f" (last error: {self.last_error})" if self.last_error else ""
            raise NotReady("the model is not loaded yet" + reason)
        return active

    async def predict(self, body: bytes) -> bytes:
        """JSON response bytes for a /predict request body (the caller bounds its time).

        The serving model is read once, so a request is answered wholly by one model even if
        another is swapped in meanwhile."""
        active = self._serving()
        active.in_flight += 1
        try:
            predictions = await self._predict(active, body)
        finally:
            active.in_flight -= 1
        return b'{"predictions":%s,"model":%s}' % (
            orjson.dumps(predictions, option=orjson.OPT_SERIALIZE_NUMPY),
            active.identity_json,
        )

    async def _predict(self, active: _Active, body: bytes) -> list[Any]:
        parse = functools.partial(self._parse, active.predictor.schema, body)
        data = parse() if len(body) <= INLINE_BYTES else await anyio.to_thread.run_sync(parse)
        if active.batcher is not None and isinstance(data, np.ndarray):
            return await active.batcher.predict(data)
        loop = asyncio.get_running_loop()
        predictions, seconds = await loop.run_in_executor(
            self._executor, timed, active.predictor.predict, data
        )
        active.metrics.observe(predictions, seconds)
        return predictions

    def _parse(self, schema: InputSchema, body: bytes) -> Any:
        """JSON body -> model input (InvalidInput says what is wrong)."""
        batch = normalize(parse_json(body), self.settings.max_batch_rows)
        return schema.parse(batch, booleans=b"true" in body or b"false" in body)

    def info(self) -> dict[str, Any]:
        return self._serving().predictor.describe()

    def input_schema(self) -> InputSchema:
        return self._serving().predictor.schema

    def input_example(self) -> list[dict[str, Any]] | None:
        example = self.info().get("input_example")
        return example if isinstance(example, list) else None

    def status(self) -> dict[str, Any]:
        active = self._active
        return {
            "ready": self.ready,
            "model": active.predictor.identity.as_dict() if active is not None else None,
            "last_error": self.last_error,
        }


def _label(identity: ModelIdentity) -> str:
    version = f" version {identity.version}" if identity.version else ""
    return f"{identity.name}{version} (run {identity.run_id})"
