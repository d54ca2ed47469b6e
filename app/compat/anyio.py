"""anyio's worker threads: a blocking call the event loop may stop waiting for.

`run_sync(fn, abandon_on_cancel=True)` (anyio 4.1 and later; `cancellable=True` before)
lets a cancelled task go on at once while the thread finishes alone: a model load cancelled
at shutdown does not hold the shutdown up. Without either keyword the call is waited for.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import anyio.to_thread

from app.compat._warn import fallback

logger = logging.getLogger(__name__)
T = TypeVar("T")
KEYWORDS = ("abandon_on_cancel", "cancellable")


def keyword(run_sync: Callable[..., Any] | None = None) -> str | None:
    """The keyword `anyio.to_thread.run_sync` abandons a thread with, or None."""
    parameters = inspect.signature(run_sync or anyio.to_thread.run_sync).parameters
    return next((k for k in KEYWORDS if k in parameters), None)


def probe(run_sync: Callable[..., Any] | None = None) -> str | None:
    """What abandoning a thread relies on that this anyio lacks; None: nothing."""
    if keyword(run_sync) is None:
        return f"to_thread.run_sync takes none of {', '.join(KEYWORDS)}"
    return None


@functools.cache
def _keyword() -> str | None:
    problem = probe()
    if problem is not None:
        fallback(logger, "anyio", problem, "a cancelled model load is waited for")
    return keyword()


async def run_sync_abandoning(fn: Callable[[], T]) -> T:
    """`fn()` on a worker thread; a cancelled caller does not wait for it to return."""
    keyword = _keyword()
    if keyword is None:
        return await anyio.to_thread.run_sync(fn)
    run_sync: Callable[..., Any] = anyio.to_thread.run_sync
    result: T = await run_sync(fn, **{keyword: True})
    return result
