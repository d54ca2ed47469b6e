"""anyio's worker threads: a blocking call the event loop may stop waiting for.

`run_sync(fn, abandon_on_cancel=True)` (anyio 4.1 and later; `cancellable=True` before)
lets a caller cancelled through an anyio cancel scope go on at once while the thread
finishes alone: a model load cancelled so does not hold up what cancelled it. Without either
keyword such a caller waits for the thread to return. (A plain `asyncio.Task.cancel()`, as
the model slot's `stop` does, ends the wait either way.)
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
def abandoning_keyword() -> str | None:
    """The keyword to abandon a thread with, or None (one warning: threads are waited for)."""
    problem = probe()
    if problem is not None:
        fallback(
            logger, "anyio", problem, "a load cancelled through a cancel scope waits for its thread"
        )
        return None
    return keyword()


async def run_sync_abandoning(fn: Callable[..., T], *args: Any) -> T:
    """`fn(*args)` on a worker thread; a cancelled caller does not wait for it to return
    (where this anyio cannot abandon a thread, it does)."""
    keyword = abandoning_keyword()
    abandon = {} if keyword is None else {keyword: True}
    run_sync: Callable[..., Any] = anyio.to_thread.run_sync
    result: T = await run_sync(fn, *args, **abandon)
    return result
