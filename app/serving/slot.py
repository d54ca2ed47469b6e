"""The model slot: which model serves, and swapping another in without a pause.

The serving model is one `ServedModel` (predictor, batcher, identity, metrics, the requests it
is answering), replaced by one reference assignment: every request is answered wholly by the
model it started on. A reload loads the new model beside the old one, swaps it in, and
retires the old one once its requests are done. Alias polling is a reload on a timer.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

import anyio.to_thread

from app.errors import NotReady, ReloadFailed
from app.model.cache import ModelCache
from app.model.failures import explain
from app.model.predictor import ModelIdentity, Predictor
from app.monitoring.metrics import Metrics
from app.process.prepare import freeze_heap
from app.serving.served import ServedModel, close_model_processes, start_model_processes
from app.serving.threads import run_in_daemon
from app.settings import Settings

logger = logging.getLogger(__name__)

PredictorFactory = Callable[[], Predictor]


class Companion(Protocol):
    """A model served beside the slot's (the shadow model): reloaded with it on POST
    /admin/reload and SIGHUP, and described in /model-info."""

    async def reload(self, *, force: bool = False) -> dict[str, Any] | None: ...

    def info(self) -> dict[str, Any]: ...


def _reachability(reachable: bool | None) -> str | None:
    return None if reachable is None else ("reachable" if reachable else "unreachable")


def same_model(target: ModelIdentity, serving: ModelIdentity) -> bool:
    """Whether the URI still names the model being served. A URI that names no registry
    version or run (a path, models:/<model_id>, s3://...) names one fixed model: the same."""
    if target.version is None and target.run_id is None:
        return True
    if target.version is None:  # runs:/<run_id>/<path>
        return target.run_id == serving.run_id
    return (target.name, target.version) == (serving.name, serving.version)


class ModelSlot:
    """Holds the serving model; installs, reloads, polls and retires models."""

    role = "model"
    """What the slot's model is, in log lines."""

    def __init__(
        self,
        settings: Settings,
        factory: PredictorFactory,
        metrics: Metrics,
        cache: ModelCache | None = None,
        on_ready: Callable[[bool], None] = lambda ready: None,
        on_install: Callable[[Predictor], None] = lambda predictor: None,
    ) -> None:
        self.settings = settings
        self.on_ready = on_ready
        """Told when this process starts and stops serving a model (the workers' marks)."""
        self.on_install = on_install
        """Told of each model as it starts serving, before its first request (monitoring)."""
        self.cache = cache
        self.registry_reachable: bool | None = None
        """Whether the tracking server and artifact store answered the last time they were
        asked (None: not asked yet)."""
        self.metrics = metrics
        self.factory = factory
        self.last_error: str | None = None
        self.companion: Companion | None = None
        """Reloaded with this slot's model on request, and shown beside it (the shadow)."""
        self.draining = False
        """Set once the process is stopping (`drain`): unready, still answering."""
        self._active: ServedModel | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._reload_lock = asyncio.Lock()
        self._stopping = threading.Event()  # model processes being started give up
        # Model threads: predict calls never block the event loop.
        self.executor = ThreadPoolExecutor(
            max_workers=settings.predict_threads, thread_name_prefix="predict"
        )

    @property
    def ready(self) -> bool:
        return self._active is not None and self._active.predictor.ready

    def drain(self) -> None:
        """The process is stopping: readiness answers 503 from now on, requests are still
        answered (`app.server.drain`)."""
        self.draining = True

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """Run `coro` in the background until it ends or the slot stops."""
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def serving(self) -> ServedModel:
        """The model answering requests now, or NotReady."""
        active = self._active
        if active is None or not active.predictor.ready:
            reason = f" (last error: {self.last_error})" if self.last_error else ""
            raise NotReady("the model is not loaded yet" + reason)
        return active

    def install(self, predictor: Predictor, source: str = "registry") -> ServedModel | None:
        """Swap `predictor` in (one reference assignment); returns what it replaced."""
        identity = predictor.identity.as_dict()
        active = ServedModel.make(predictor, self.settings, self.metrics, self.executor, source)
        self.on_install(predictor)
        old, self._active = self._active, active
        self._observe_install(
            identity, float(predictor.describe().get("load_seconds") or 0), source
        )
        self.last_error = None
        if source == "registry":
            self.mark_registry(reachable=True)
            if self.cache is not None and predictor.local_dir is not None:
                self.spawn(self._store(predictor), "cache-store")
        freeze_heap()
        if self.settings.model_process_count:
            starting = start_model_processes(
                active, self.settings, self._stopping, lambda: self._active is active
            )
            self.spawn(starting, "model-processes")
        return old

    def _observe_install(self, identity: dict[str, Any], load_seconds: float, source: str) -> None:
        """The metrics and marks of a model that starts serving."""
        self.metrics.observe_model(identity, load_seconds)
        self.metrics.observe_source(source)
        self.on_ready(True)

    def _observe_stop(self) -> None:
        self.metrics.ready.set(0)
        self.on_ready(False)

    def count_reload(self, result: str) -> None:
        """One reload, by result: success, unchanged, failure."""
        self.metrics.reloads.labels(result).inc()

    def count_load_failure(self) -> None:
        self.metrics.load_failures.inc()

    def mark_registry(self, *, reachable: bool) -> None:
        self.registry_reachable = reachable
        self.metrics.registry_reachable.set(1 if reachable else 0)

    async def _store(self, predictor: Predictor) -> None:
        """Keep the registry-loaded model's files, and its serving file, in the cache (a
        failure only warns)."""
        assert self.cache is not None and predictor.local_dir is not None
        cache, files, info = self.cache, Path(predictor.local_dir), predictor.describe()

        def save() -> None:
            cache.save(
                self.settings.resolved_model_uri,
                files,
                predictor.identity.as_dict(),
                {k: info.get(k) for k in ("metrics", "params")},
                serving=predictor.snapshot(),
            )

        try:
            await anyio.to_thread.run_sync(save)
        except OSError as exc:
            logger.warning("could not cache the model: %s", exc)

    async def retire(self, served: ServedModel, timeout: float) -> None:
        """Let the requests `served` is answering finish, then release it."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while served.in_flight > 0 and loop.time() < deadline:
            await asyncio.sleep(0.01)
        if served.batcher is not None:
            await served.batcher.drain(max(0.0, deadline - loop.time()))
            await served.batcher.stop()
        model_processes, served.model_processes = served.model_processes, ()
        await anyio.to_thread.run_sync(close_model_processes, model_processes)
        served.predictor.close()

    async def stop(self) -> None:
        self._stopping.set()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        active, self._active = self._active, None
        if active is not None:
            await self.retire(active, timeout=0)
        self.executor.shutdown(wait=False, cancel_futures=True)
        self._observe_stop()

    async def reload(self, *, force: bool = False) -> dict[str, Any]:
        """Load what the model URI means now and swap it in; the old model serves meanwhile.

        Unchanged (same version and run) unless `force`. On failure the old model keeps
        serving and ReloadFailed says why."""
        async with self._reload_lock:
            previous = self.serving().predictor.identity
            candidate = self.factory()
            try:
                target = await run_in_daemon(
                    candidate.resolve, name="model-resolve", abandoned=candidate.close
                )
                self.mark_registry(reachable=True)
                if not force and same_model(target, previous):
                    self.count_reload("unchanged")
                    return {"status": "unchanged", "model": previous.as_dict(), "previous": None}
                await run_in_daemon(candidate.load, name="model-load", abandoned=candidate.close)
            except Exception as exc:
                error = explain(exc)
                self.mark_registry(reachable=not error.unreachable)
                candidate.close()
                self.count_reload("failure")
                message = f"reload failed, still serving {previous.label}: {error}"
                logger.error("%s", message)
                raise ReloadFailed(message) from None
            old = self.install(candidate)
            self.count_reload("success")
        logger.info("reloaded: %s -> %s", previous.label, candidate.identity.label)
        if old is not None:
            self.spawn(self.retire(old, self.settings.request_timeout), "retire-model")
        return {
            "status": "reloaded",
            "model": candidate.identity.as_dict(),
            "previous": previous.as_dict(),
        }

    async def poll(self, interval: float) -> None:
        """Reload every `interval` seconds (follows a moved alias); failures keep the model."""
        while True:
            await asyncio.sleep(interval)
            try:
                result = await self.reload()
            except (ReloadFailed, NotReady):
                continue  # logged and counted; the old model keeps serving
            if result["status"] == "reloaded":
                logger.info("alias poll: now serving %s", self.serving().predictor.identity.label)

    def info(self) -> dict[str, Any]:
        served = self.serving()
        return {
            **served.predictor.describe(),
            "source": served.source,
            "registry": _reachability(self.registry_reachable),
            "model_processes": [process.describe() for process in served.model_processes],
            **({"shadow": self.companion.info()} if self.companion is not None else {}),
        }

    async def reload_companion(self, force: bool) -> dict[str, Any] | None:
        """Reload the companion's model (when there is one, loaded): its result, failures
        included (they change nothing of the served model)."""
        if self.companion is None:
            return None
        try:
            return await self.companion.reload(force=force)
        except (ReloadFailed, NotReady) as exc:
            return {"status": "failed", "error": exc.message}

    def status(self) -> dict[str, Any]:
        active = self._active
        return {
            "ready": self.ready,
            "model": active.predictor.identity.as_dict() if active is not None else None,
            "source": active.source if active is not None else None,
            "registry": _reachability(self.registry_reachable),
            "last_error": self.last_error,
            "draining": self.draining,
        }
