"""Without a way to abandon a thread on cancel, the model load runs on a thread that is
waited for: the model still loads and serves."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import anyio
import pytest

from app.compat import anyio as anyio_compat
from tests.app.compat.conftest import Forcing, fallback_warnings
from tests.app.conftest import AppFactory


def thread_returned_before_the_cancelled_call() -> bool:
    """Cancels (through anyio's cancel scope) a call blocked on its thread, lets the thread
    return a moment later, and says whether it had returned by the time the call ended."""
    started, release, returned = threading.Event(), threading.Event(), threading.Event()

    def work(timeout: float) -> None:
        started.set()
        release.wait(timeout)
        returned.set()

    async def main() -> bool:
        async with anyio.create_task_group() as group:
            group.start_soon(anyio_compat.run_sync_abandoning, work, 30)
            while not started.is_set():
                await anyio.sleep(0.01)
            group.cancel_scope.cancel()
            threading.Timer(0.3, release.set).start()
        return returned.is_set()

    try:
        return anyio.run(main)
    finally:
        release.set()


def test_a_cancelled_caller_does_not_wait_for_the_thread() -> None:
    assert anyio_compat.abandoning_keyword() == "abandon_on_cancel"
    assert not thread_returned_before_the_cancelled_call()


def test_without_it_a_cancelled_caller_waits_for_the_thread(
    force_fallback: Forcing, caplog: pytest.LogCaptureFixture
) -> None:
    force_fallback(anyio_compat, anyio_compat.abandoning_keyword)
    assert thread_returned_before_the_cancelled_call()
    assert thread_returned_before_the_cancelled_call()
    assert len(fallback_warnings(caplog, "anyio")) == 1


def test_without_it_the_model_loads_and_serves(
    serve: AppFactory,
    iris_records: list[dict[str, float]],
    reference: Callable[[list[dict[str, float]]], list[Any]],
    force_fallback: Forcing,
    caplog: pytest.LogCaptureFixture,
) -> None:
    force_fallback(anyio_compat, anyio_compat.abandoning_keyword)
    with serve() as client:
        assert client.get("/readyz").status_code == 200
        answer = client.post("/predict", json={"records": iris_records[:5]})
    assert answer.json()["predictions"] == reference(iris_records[:5])
    assert anyio_compat.abandoning_keyword() is None
    warned = fallback_warnings(caplog, "anyio")
    assert len(warned) == 1 and "waits for its thread" in warned[0]
