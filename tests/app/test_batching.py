"""Micro-batching: concurrent requests share model calls, each gets its own rows back."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.batching import MicroBatcher
from tests.app.conftest import AppFactory


class SlowModel:
    """Sums each row; takes 20 ms a call (so requests pile up); fails on negative input."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def __call__(self, matrix: np.ndarray) -> list[Any]:
        self.calls.append(len(matrix))
        time.sleep(0.02)
        if (matrix < 0).any():
            raise ValueError("negative")
        return [float(row.sum()) for row in matrix]


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_concurrent_requests_share_calls_and_get_their_own_rows() -> None:
    model = SlowModel()

    async def scenario() -> list[list[Any]]:
        with ThreadPoolExecutor(1) as pool:
            batcher = MicroBatcher(model, pool, max_rows=1000, max_wait=0)
            batcher.start()
            matrices = [np.full((i % 3 + 1, 2), float(i)) for i in range(30)]
            results = await asyncio.gather(*(batcher.predict(m) for m in matrices))
            await batcher.stop()
            return list(results)

    results = _run(scenario())
    for i, result in enumerate(results):
        assert result == [2.0 * i] * (i % 3 + 1)
    assert sum(model.calls) == sum(i % 3 + 1 for i in range(30))
    assert len(model.calls) < 30 / 2, f"requests were not combined: {model.calls}"


def test_a_failing_request_fails_alone() -> None:
    model = SlowModel()

    async def scenario() -> list[Any]:
        with ThreadPoolExecutor(1) as pool:
            batcher = MicroBatcher(model, pool, max_rows=1000, max_wait=0)
            blocker = asyncio.ensure_future(batcher.predict(np.ones((1, 2))))
            await asyncio.sleep(0.005)  # the model is busy: the next three queue together
            jobs = [batcher.predict(np.full((2, 2), v)) for v in (1.0, -1.0, 3.0)]
            results = await asyncio.gather(blocker, *jobs, return_exceptions=True)
            await batcher.stop()
            return list(results)

    blocked, first, bad, last = _run(scenario())
    assert blocked == [2.0]
    assert first == [2.0, 2.0] and last == [6.0, 6.0]
    assert isinstance(bad, ValueError)


def test_max_rows_caps_a_combined_call() -> None:
    model = SlowModel()

    async def scenario() -> None:
        with ThreadPoolExecutor(1) as pool:
            batcher = MicroBatcher(model, pool, max_rows=10, max_wait=0)
            await asyncio.gather(*(batcher.predict(np.ones((4, 2))) for _ in range(12)))
            await batcher.stop()

    _run(scenario())
    assert max(model.calls) <= 10
    assert sum(model.calls) == 48


def test_a_lone_request_does_not_wait_for_company() -> None:
    model = SlowModel()

    async def scenario() -> float:
        with ThreadPoolExecutor(1) as pool:
            batcher = MicroBatcher(model, pool, max_rows=1000, max_wait=1.0)
            start = time.perf_counter()
            await batcher.predict(np.ones((1, 2)))
            elapsed = time.perf_counter() - start
            await batcher.stop()
            return elapsed

    assert _run(scenario()) < 0.5  # well under max_wait: nobody else was in flight


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
