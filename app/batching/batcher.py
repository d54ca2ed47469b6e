"""Adaptive micro-batching: concurrent /predict requests share one model call.

Requests that arrive while the model is busy queue up; when it is free, everything queued (up
to `max_rows`) goes in one predict call, on a worker thread so the event loop never blocks.
When other requests are already on their way in (`in_flight()` counts requests between
arrival and answer), the batcher waits up to `max_wait` seconds for them to join; a lone
request never waits. Each caller gets exactly its own rows back. If a combined call fails,
every request in it is retried alone, so an error reaches only the request that caused it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from app.errors import NotReady

logger = logging.getLogger(__name__)

PredictFn = Callable[[np.ndarray], list[Any]]


@dataclass(slots=True)
class _Job:
    matrix: np.ndarray
    future: asyncio.Future[list[Any]]
    rows: int


class MicroBatcher:
    """Gathers concurrent matrices for one `predict` callable (one model)."""

    def __init__(
        self,
        predict: PredictFn,
        executor: ThreadPoolExecutor,
        *,
        max_rows: int = 256,
        max_wait: float = 0.002,
        in_flight: Callable[[], int] = lambda: 0,
        concurrency: int = 1,
        observe: Callable[[list[Any], float], None] = lambda predictions, seconds: None,
    ) -> None:
        self._predict = predict
        self._observe = observe
        self._executor = executor
        self.max_rows = max_rows
        self.max_wait = max_wait
        self._in_flight = in_flight
        # Model calls running at once (scikit-learn's native code releases the GIL, so a
        # second call can use a second core); while all are busy, new requests queue up.
        self._slots = asyncio.Semaphore(concurrency)
        self._calls: set[asyncio.Task[None]] = set()
        self._queue: asyncio.Queue[_Job] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.batches = 0  # model calls made, for tests and metrics

    def start(self) -> None:
        if self._task is None:
            self._loop = asyncio.get_running_loop()
            self._task = self._loop.create_task(self._run(), name="micro-batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        for call in list(self._calls):
            call.cancel()
        while not self._queue.empty():
            job = self._queue.get_nowait()
            if not job.future.done():
                job.future.cancel()

    async def predict(self, matrix: np.ndarray) -> list[Any]:
        """Predictions for `matrix`'s rows, possibly computed together with other requests'."""
        if self._task is None:
            self.start()
        job = _Job(matrix, self._loop.create_future(), len(matrix))
        self._queue.put_nowait(job)
        return await job.future

    async def _gather(self) -> list[_Job]:
        first = await self._queue.get()
        jobs, rows = [first], first.rows
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_wait
        while rows < self.max_rows:
            if not self._queue.empty():
                job = self._queue.get_nowait()
            elif self._in_flight() > len(jobs) and (remaining := deadline - loop.time()) > 0:
                # Others are on their way in, or inside a running call (measured: counting
                # those too makes bigger batches, ~6% more req/s at 32 connections).
                try:
                    job = await asyncio.wait_for(self._queue.get(), remaining)
                except TimeoutError:
                    break
            else:
                break
            if rows + job.rows > self.max_rows:
                self._queue.put_nowait(job)  # it starts the next batch
                break
            jobs.append(job)
            rows += job.rows
        return jobs

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._slots.acquire()  # gather only once a model call can start
            try:
                jobs = await self._gather()
            except BaseException:
                self._slots.release()
                raise
            jobs = [job for job in jobs if not job.future.done()]  # client went away
            if not jobs:
                self._slots.release()
                continue
            self.batches += 1
            call = loop.create_task(self._call(loop, jobs))
            self._calls.add(call)
            call.add_done_callback(self._finished)

    def _finished(self, call: asyncio.Task[None]) -> None:
        self._calls.discard(call)
        self._slots.release()

    async def drain(self, timeout: float) -> None:
        """Wait (at most `timeout` s) until nothing is queued or being predicted."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (self._calls or not self._queue.empty()) and loop.time() < deadline:
            await asyncio.sleep(0.005)

    async def _call(self, loop: asyncio.AbstractEventLoop, jobs: list[_Job]) -> None:
        async def run(m: np.ndarray) -> list[Any]:
            predictions, seconds = await loop.run_in_executor(
                self._executor, timed, self._predict, m
            )
            self._observe(predictions, seconds)  # one model call, however many requests
            return predictions

        try:
            await self._predict_jobs(run, jobs)
        except asyncio.CancelledError:
            for job in jobs:  # retired while predicting: nobody may be left waiting
                _settle(job, exc=NotReady("the model was replaced while answering; retry"))
            raise

    async def _predict_jobs(
        self, run: Callable[[np.ndarray], Awaitable[list[Any]]], jobs: list[_Job]
    ) -> None:
        matrix = jobs[0].matrix if len(jobs) == 1 else np.concatenate([j.matrix for j in jobs])
        try:
            predictions = await run(matrix)
        except Exception as exc:
            if len(jobs) == 1:
                _settle(jobs[0], exc=exc)
                return
            for job in jobs:  # isolate the failure to the request that caused it
                try:
                    alone = await run(job.matrix)
                except Exception as single:
                    _settle(job, exc=single)
                else:
                    _settle(job, result=alone)
            return
        start = 0
        for job in jobs:
            _settle(job, result=predictions[start : start + job.rows])
            start += job.rows


def timed(predict: PredictFn, matrix: Any) -> tuple[list[Any], float]:
    """`predict(matrix)` and the seconds it took (run on the model thread)."""
    start = time.perf_counter()
    predictions = predict(matrix)
    return predictions, time.perf_counter() - start


def _settle(job: _Job, *, result: list[Any] | None = None, exc: Exception | None = None) -> None:
    if job.future.done():
        return
    if exc is not None:
        job.future.set_exception(exc)
    else:
        job.future.set_result(result if result is not None else [])
