"""Without a way to abandon a thread on cancel, the model load runs on a thread that is
waited for: the model still loads and serves."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import pytest

from app.compat import anyio as anyio_compat
from tests.app.compat.conftest import Forcing, fallback_warnings
from tests.app.conftest import AppFactory


def test_a_cancelled_caller_does_not_wait_for_the_thread() -> None:
    release = threading.Event()

    async def main() -> float:
        loop = asyncio.get_running_loop()
        task = asyncio.create_task(anyio_compat.run_sync_abandoning(lambda: release.wait(30)))
        await asyncio.sleep(0.1)
        start = loop.time()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return loop.time() - start

    try:
        assert asyncio.run(main()) < 5, "the cancelled call waited for its thread"
    finally:
        release.set()


def test_without_it_the_model_loads_and_serves(
    serve: AppFactory,
    iris_records: list[dict[str, float]],
    reference: Callable[[list[dict[str, float]]], list[Any]],
    force_fallback: Forcing,
    caplog: pytest.LogCaptureFixture,
) -> None:
    force_fallback(anyio_compat, anyio_compat._keyword)
    with serve() as client:
        answer = client.post("/predict", json={"records": iris_records[:5]})
    assert answer.json()["predictions"] == reference(iris_records[:5])
    assert len(fallback_warnings(caplog, "anyio")) == 1
