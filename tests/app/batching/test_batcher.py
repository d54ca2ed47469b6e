"""Micro-batching: concurrent requests share model calls, each gets its own rows back.

The model here is gated: its calls wait for the test to release them, so a test decides when a
call is running and which requests arrive meanwhile. `in_flight` is counted as the data plane
counts it: from a request's arrival to its answer, including requests still being read.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, TypeVar

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.api.application import create_app
from app.batching.batcher import MicroBatcher
from app.settings import Settings
from tests.app.conftest import AppFactory, wait_ready
from tests.app.fakes import FakeModel
from tests.iris import FEATURES

T = TypeVar("T")
PATIENCE = 10.0  # seconds an awaited event may take before the test fails


class GatedModel:
    """Sums each row; fails on negative input. Records each call's rows (their first value)
    and start time, and, until `release` is set, holds every call it gets."""

    def __init__(self, *, released: bool = False) -> None:
        self.calls: list[list[float]] = []
        self.started_at: list[float] = []  # time.monotonic(), the clock of asyncio's loops
        self.started = threading.Event()
        self.release = threading.Event()
        if released:
            self.release.set()

    def __call__(self, matrix: np.ndarray) -> list[Any]:
        self.started_at.append(time.monotonic())
        self.calls.append([float(v) for v in matrix[:, 0]])
        self.started.set()
        if not self.release.wait(PATIENCE):
            raise TimeoutError("the test never released the model")
        if (matrix < 0).any():
            raise ValueError("negative")
        return [float(row.sum()) for row in matrix]

    async def running(self) -> None:
        """Wait until a model call has started."""
        assert await asyncio.to_thread(self.started.wait, PATIENCE), "no model call started"


class Lane:
    """The batcher's `in_flight`, counted as app/dataplane.py counts it, and a record of
    whether the batcher asked."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.asked = threading.Event()

    def count(self) -> int:
        self.asked.set()
        return self.in_flight

    async def predict(self, batcher: MicroBatcher, matrix: np.ndarray) -> list[Any]:
        self.in_flight += 1
        try:
            return await batcher.predict(matrix)
        finally:
            self.in_flight -= 1

    @contextmanager
    def arriving(self) -> Iterator[None]:
        """A request counted from its arrival (its body still being read) until the block
        ends; inside, once read, it goes to `batcher.predict` itself."""
        self.in_flight += 1
        try:
            yield
        finally:
            self.in_flight -= 1


def rows(n: int, value: float) -> np.ndarray:
    """`n` rows [value, j] (j = 0, 1, ...): row j's prediction is value + j."""
    return np.column_stack([np.full(n, value), np.arange(n, dtype=float)])


def answers(n: int, value: float) -> list[float]:
    """What the model answers for rows(n, value), in order."""
    return [value + j for j in range(n)]


async def until(condition: Callable[[], bool], what: str) -> None:
    """Poll `condition` on the event loop until it holds (fails after PATIENCE s)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + PATIENCE
    while not condition():
        assert loop.time() < deadline, f"not within {PATIENCE}s: {what}"
        await asyncio.sleep(0.001)


def scenario(body: Callable[[ThreadPoolExecutor], Coroutine[Any, Any, T]]) -> T:
    """Run `body(pool)` on a fresh event loop with one model thread."""

    async def main() -> T:
        with ThreadPoolExecutor(1) as pool:
            return await body(pool)

    return asyncio.run(main())


def test_concurrent_requests_share_calls_and_get_their_own_rows() -> None:
    model, lane = GatedModel(), Lane()
    matrices = [rows(i % 3 + 1, float(i)) for i in range(30)]

    async def body(pool: ThreadPoolExecutor) -> list[list[Any]]:
        batcher = MicroBatcher(model, pool, max_rows=1000, max_wait=60, in_flight=lane.count)
        first = asyncio.create_task(lane.predict(batcher, matrices[0]))
        await model.running()
        rest = [asyncio.create_task(lane.predict(batcher, m)) for m in matrices[1:]]
        await until(lambda: lane.in_flight == 30, "29 requests queued behind the running call")
        assert model.calls == [[0.0]], "nothing else may start while the model is busy"
        model.release.set()
        results = await asyncio.wait_for(asyncio.gather(first, *rest), PATIENCE)
        assert batcher.batches == 2
        await batcher.stop()
        return list(results)

    results = scenario(body)
    for i, result in enumerate(results):
        assert result == answers(i % 3 + 1, float(i))
    sizes = [len(call) for call in model.calls]
    assert sum(sizes) == sum(i % 3 + 1 for i in range(30))
    assert len(model.calls) < 30 / 2, f"requests were not combined: {sizes}"
    # The 29 that arrived while the first call ran went together, in arrival order.
    assert model.calls[1] == [float(i) for i in range(1, 30) for _ in range(i % 3 + 1)]


def test_the_batcher_waits_for_a_request_still_on_its_way_in() -> None:
    model, lane = GatedModel(released=True), Lane()

    async def body(pool: ThreadPoolExecutor) -> tuple[list[Any], list[Any]]:
        batcher = MicroBatcher(model, pool, max_rows=1000, max_wait=60, in_flight=lane.count)
        with lane.arriving():  # B has arrived; its body is still being read
            a = asyncio.create_task(lane.predict(batcher, rows(1, 1.0)))
            await until(lane.asked.is_set, "the batcher counted the requests in flight")
            assert model.calls == [], "A went to the model alone although B was in flight"
            b = asyncio.create_task(batcher.predict(rows(2, 2.0)))  # B is read
            # Within PATIENCE, far under max_wait: the wait ends when B comes.
            answers = await asyncio.wait_for(asyncio.gather(a, b), PATIENCE)
        await batcher.stop()
        return answers[0], answers[1]

    a, b = scenario(body)
    assert model.calls == [[1.0, 2.0, 2.0]], "B joined the call A was waiting in"
    assert (a, b) == (answers(1, 1.0), answers(2, 2.0))


def test_the_wait_for_company_ends_at_max_wait() -> None:
    model, lane = GatedModel(released=True), Lane()
    max_wait = 0.2

    async def body(pool: ThreadPoolExecutor) -> tuple[list[Any], list[Any], float]:
        loop = asyncio.get_running_loop()
        batcher = MicroBatcher(model, pool, max_rows=1000, max_wait=max_wait, in_flight=lane.count)
        with lane.arriving():  # B has arrived, but its body comes only after A was answered
            start = loop.time()
            # Answered at all: the wait ended at max_wait though in_flight still counts B.
            a = await asyncio.wait_for(lane.predict(batcher, rows(1, 1.0)), max_wait + PATIENCE)
            b = await asyncio.wait_for(batcher.predict(rows(1, 2.0)), PATIENCE)
        await batcher.stop()
        return a, b, model.started_at[0] - start

    a, b, waited = scenario(body)
    assert (a, b) == (answers(1, 1.0), answers(1, 2.0))
    assert model.calls == [[1.0], [2.0]], "A went alone once max_wait was over"
    assert waited >= max_wait - 0.001, f"A's call started {waited:.3f}s after it came"


def test_a_lone_request_does_not_wait_for_company() -> None:
    model, lane = GatedModel(released=True), Lane()

    async def body(pool: ThreadPoolExecutor) -> tuple[list[Any], float]:
        loop = asyncio.get_running_loop()
        batcher = MicroBatcher(model, pool, max_rows=1000, max_wait=60, in_flight=lane.count)
        start = loop.time()
        answer = await asyncio.wait_for(lane.predict(batcher, rows(1, 1.0)), PATIENCE)
        elapsed = loop.time() - start
        await batcher.stop()
        return answer, elapsed

    answer, elapsed = scenario(body)
    assert answer == answers(1, 1.0)
    assert lane.asked.is_set(), "the batcher looked at in_flight (1: the request itself)"
    assert elapsed < 0.5  # far under max_wait: nobody else was in flight


def test_a_failing_request_fails_alone() -> None:
    model, lane = GatedModel(), Lane()

    async def body(pool: ThreadPoolExecutor) -> list[Any]:
        batcher = MicroBatcher(model, pool, max_rows=1000, max_wait=0, in_flight=lane.count)
        blocker = asyncio.create_task(lane.predict(batcher, rows(1, 1.0)))
        await model.running()  # the model is busy: the next three queue together
        jobs = [asyncio.create_task(lane.predict(batcher, rows(2, v))) for v in (1.0, -1.0, 3.0)]
        await until(lambda: lane.in_flight == 4, "three requests queued behind the running call")
        model.release.set()
        results = await asyncio.wait_for(
            asyncio.gather(blocker, *jobs, return_exceptions=True), PATIENCE
        )
        await batcher.stop()
        return list(results)

    blocked, first, bad, last = scenario(body)
    assert blocked == answers(1, 1.0)
    assert first == answers(2, 1.0) and last == answers(2, 3.0)
    assert isinstance(bad, ValueError)
    # One combined call that failed, then each of its requests alone.
    assert model.calls == [[1.0], [1, 1, -1, -1, 3, 3], [1, 1], [-1, -1], [3, 3]]


def test_max_rows_caps_a_combined_call() -> None:
    model, lane = GatedModel(), Lane()

    async def body(pool: ThreadPoolExecutor) -> list[list[Any]]:
        batcher = MicroBatcher(model, pool, max_rows=10, max_wait=0, in_flight=lane.count)
        tasks = [asyncio.create_task(lane.predict(batcher, rows(4, 0.0)))]
        await model.running()
        tasks += [
            asyncio.create_task(lane.predict(batcher, rows(4, float(i)))) for i in range(1, 12)
        ]
        await until(lambda: lane.in_flight == 12, "eleven requests queued behind the running call")
        model.release.set()
        results = await asyncio.wait_for(asyncio.gather(*tasks), PATIENCE)
        await batcher.stop()
        return list(results)

    results = scenario(body)
    assert results == [answers(4, float(i)) for i in range(12)]
    sizes = [len(call) for call in model.calls]
    assert max(sizes) <= 10
    assert sum(sizes) == 48
    # The first alone (the model was free), then two 4-row requests a call: a third won't fit.
    assert sizes == [4, 8, 8, 8, 8, 8, 4]


class GatedFakeModel(FakeModel):
    """The fake model of the app tests, whose predict calls wait for `release`."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = GatedModel()

    def predict(self, data: Any, params: Any = None) -> list[Any]:
        return self.inner(np.asarray(data))


def test_requests_to_the_app_during_a_model_call_share_the_next_one() -> None:
    model = GatedFakeModel()
    settings = Settings(model_uri="models:/fake@live", predict_threads=1, batch_max_wait_ms=2)
    app = create_app(settings, predictor_factory=lambda: model)
    answers: dict[int, Any] = {}
    n = 12
    records = [dict(zip(FEATURES, [float(i), 0.0, 0.0, 1.0], strict=True)) for i in range(n)]

    with TestClient(app) as client:
        wait_ready(client)

        def call(i: int) -> None:
            answers[i] = client.post("/predict", json=records[i]).json()["predictions"]

        threads = [threading.Thread(target=call, args=(i,)) for i in range(n)]
        threads[0].start()
        assert model.inner.started.wait(PATIENCE), "the first request reached the model"
        for t in threads[1:]:
            t.start()
        served = app.state.slot.serving()
        deadline = time.monotonic() + PATIENCE
        while served.in_flight < n:
            assert time.monotonic() < deadline, f"{served.in_flight} of {n} requests arrived"
            time.sleep(0.005)
        model.inner.release.set()
        for t in threads:
            t.join(PATIENCE)
        metrics = client.get("/metrics").text
    assert answers == {i: [i + 1.0] for i in range(n)}
    calls = model.inner.calls
    assert calls[0] == [0.0] and sorted(calls[1]) == [float(i) for i in range(1, n)]
    assert len(calls) == 2, "the requests that came while the first call ran went together"
    assert 'prediction_duration_seconds_count{model="fake",version="7"} 2.0' in metrics
    assert 'predicted_rows_total{model="fake",version="7"} 12.0' in metrics


@pytest.mark.parametrize("batching", [True, False])
def test_concurrent_http_requests_are_answered_with_their_own_predictions(
    serve: AppFactory, iris_records: list[dict[str, float]], reference: Any, batching: bool
) -> None:
    expected = reference(iris_records)
    answers: dict[int, Any] = {}

    with serve(batching=batching) as client:

        def call(i: int, c: TestClient = client) -> None:
            response = c.post("/predict", content=json.dumps(iris_records[i]))
            answers[i] = response.json()["predictions"]

        threads = [threading.Thread(target=call, args=(i,)) for i in range(0, 150, 3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    assert answers == {i: [expected[i]] for i in range(0, 150, 3)}
