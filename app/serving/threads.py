"""A blocking call that shutdown never waits for: run on a daemon thread, its outcome awaited
through an asyncio future.

A model load may block for minutes on a registry that took the connection and never answers.
On a worker thread of the event loop's pool (`anyio.to_thread`, `run_in_executor`) such a
call holds up the process's exit, which joins those threads, long past any grace period. On a
daemon thread it does not: a caller cancelled (the slot stopping) goes on at once, and the
process exits while the call is still blocked. When the call returns after its caller has
given up, `abandoned` is called to release what it left (a loaded model's files, say).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar

logger = logging.getLogger(__name__)
T = TypeVar("T")


async def run_in_daemon(
    fn: Callable[..., T],
    *args: Any,
    name: str,
    abandoned: Callable[[], None] | None = None,
) -> T:
    """`fn(*args)` on a new daemon thread named `name`; its result or exception. Cancelled,
    the caller goes on at once; `abandoned()` runs once `fn` has returned or raised (on that
    thread, or the loop's if it still runs)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(outcome: Callable[[], None]) -> None:
        if future.cancelled():
            release()
        elif not future.done():
            outcome()

    def release() -> None:
        if abandoned is not None:
            try:
                abandoned()
            except Exception:
                logger.exception("releasing what an abandoned %s call left", name)

    def run() -> None:
        outcome: Callable[[], None]
        try:
            outcome = functools.partial(future.set_result, fn(*args))
        except BaseException as exc:
            outcome = functools.partial(future.set_exception, exc)
        try:
            loop.call_soon_threadsafe(settle, outcome)
        except RuntimeError:  # the loop is closed: nobody waits any more
            release()

    threading.Thread(target=run, name=name, daemon=True).start()
    return await future
