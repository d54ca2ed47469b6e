"""The first load: retried with backoff while the registry or the artifact store cannot be
reached, given up at once when the model cannot be loaded at all.

The HTTP server is up meanwhile (/healthz answers, /readyz says 503 with the last error).
A model that does not exist, or cannot be served, fails at once; an unreachable server is
retried for MODEL_LOAD_TIMEOUT seconds; either way the process then logs one `giving up`
line and `on_fatal` stops it. With a cache (MODEL_CACHE_DIR), an unreachable server is not
waited for: the newest cached copy of the same MODEL_URI serves at once, and the registry is
tried again in the background (at most REGISTRY_RETRY_MAX seconds apart) until it answers;
then what the URI names now is swapped in if it is newer. When the cache holds a copy, the
tracking server and registry are first probed with a TCP connect: if that fails, the copy
serves without MLflow even being imported (see app/model/snapshot.py).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable

import anyio.to_thread

from app.errors import ServiceError
from app.model.failures import LoadError, explain
from app.model.predictor import Predictor
from app.serving.slot import ModelSlot
from app.serving.threads import run_in_daemon

logger = logging.getLogger(__name__)


def backoff(attempt: int, remaining: float) -> float:
    """Seconds to wait before attempt `attempt` + 1: exponential, capped, jittered."""
    return min(remaining, min(30.0, 0.5 * 2 ** (attempt - 1)) * random.uniform(0.7, 1))


class Loader:
    """Loads the configured model into the slot, retrying as the failure warrants."""

    def __init__(self, slot: ModelSlot, on_fatal: Callable[[], None] | None = None) -> None:
        self.slot = slot
        self.on_fatal = on_fatal
        self._cache_tried = False

    async def _attempt(self) -> Predictor:
        predictor = self.slot.factory()
        try:
            # Never waited for at shutdown: a load blocked on the registry ends with the process.
            await run_in_daemon(predictor.load, name="model-load", abandoned=predictor.close)
        except asyncio.CancelledError:
            raise  # the load goes on alone; `abandoned` releases what it leaves
        except BaseException:
            predictor.close()  # the one cleanup of a failed load
            raise
        return predictor

    async def run(self) -> None:
        settings = self.slot.settings
        budget = settings.model_load_timeout
        deadline = time.monotonic() + budget
        attempt = 0
        if await self._probe_first():
            await self._follow_registry()
            return
        while True:
            attempt += 1
            try:
                predictor = await self._attempt()
            except Exception as exc:
                error = explain(exc)
                self._failed(error)
                if error.unreachable and await self._serve_cached(error):
                    await self._follow_registry()
                    return
                remaining = deadline - time.monotonic()
                if error.permanent or remaining <= 0:
                    self._give_up(error, attempt, budget)
                    return
                delay = backoff(attempt, remaining)
                logger.warning(
                    "model load attempt %d failed: %s; retrying in %.1fs", attempt, error, delay
                )
                await asyncio.sleep(delay)
                continue
            self.slot.install(predictor)
            self._start_polling()
            return

    def _start_polling(self) -> None:
        interval = self.slot.settings.model_reload_interval
        if interval > 0:
            self.slot.spawn(self.slot.poll(interval), "alias-poller")

    def _failed(self, error: LoadError) -> None:
        self.slot.metrics.load_failures.inc()
        self.slot.last_error = str(error)
        if error.unreachable:
            self.slot.mark_registry(reachable=False)

    async def _probe_first(self) -> bool:
        """With a cached copy of the model, a tracking server or registry that does not even
        take a TCP connection is not waited for (nor MLflow imported): the copy serves."""
        cache = self.slot.cache
        uri = self.slot.settings.resolved_model_uri
        if cache is None or not await anyio.to_thread.run_sync(cache.holds, uri):
            return False
        error = await anyio.to_thread.run_sync(self.slot.factory().probe)
        if error is None:
            return False
        self._failed(error)
        return await self._serve_cached(error)

    async def _serve_cached(self, reason: LoadError) -> bool:
        """Serve the newest whole cached copy of the model, if there is one (tried once)."""
        cache = self.slot.cache
        if cache is None or self._cache_tried:
            return False
        self._cache_tried = True
        uri = self.slot.settings.resolved_model_uri
        entry = await anyio.to_thread.run_sync(cache.latest, uri)
        if entry is None:
            logger.info("no cached copy of %s to serve meanwhile", uri)
            return False
        predictor = self.slot.factory()
        try:
            await run_in_daemon(
                predictor.load_cached, entry, name="model-load-cached", abandoned=predictor.close
            )
        except Exception as exc:
            predictor.close()
            logger.warning("the cached copy %s cannot be served: %s", entry.path, explain(exc))
            return False
        self.slot.install(predictor, source="cache")
        logger.warning(
            "serving %s from the cache (stored %s) while the registry is unreachable: %s",
            predictor.identity.label, entry.saved_at, reason,
        )  # fmt: skip
        return True

    async def _follow_registry(self) -> None:
        """Try the registry until it answers; a newer version it names is swapped in."""
        cap = self.slot.settings.registry_retry_max
        attempt = 0
        while not self.slot.registry_reachable:
            attempt += 1
            await asyncio.sleep(min(cap, backoff(attempt, cap)))
            try:
                result = await self.slot.reload()
            except ServiceError:
                continue  # logged; the cached model keeps serving
            logger.info("the registry answers again: %s", result["status"])
        self._start_polling()

    def _give_up(self, error: LoadError, attempts: int, budget: float) -> None:
        why = "cannot be loaded" if error.permanent else f"not loaded after {budget:g}s"
        logger.critical(
            "giving up: model %s %s (%d attempt%s): %s",
            self.slot.settings.resolved_model_uri, why, attempts,
            "" if attempts == 1 else "s", error,
        )  # fmt: skip
        if self.on_fatal is not None:
            self.on_fatal()
