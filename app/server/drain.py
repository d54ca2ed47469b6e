"""Draining: how a process behind a load balancer stops without failing a request.

On SIGTERM (or SIGINT) with DRAIN_SECONDS > 0, the process first turns unready (`/readyz`
answers 503) and keeps answering every request for DRAIN_SECONDS: long enough for the load
balancer's health checks to take it out of rotation. Then uvicorn stops as it always does:
no new connections, requests in flight finish (up to `timeout_graceful_shutdown`), the
lifespan writes what the prediction log still holds, and the process exits 0. A second
signal during the drain stops at once (gracefully, as without a drain).
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType

import uvicorn

from app.compat import uvicorn as uvicorn_compat

logger = logging.getLogger(__name__)


class DrainingServer(uvicorn.Server):
    """uvicorn's server, which drains for `drain_seconds` before it stops on a signal.

    `on_drain` is called (in the main thread, from the signal handler) when the drain
    starts: the app turns unready there."""

    def __init__(
        self, config: uvicorn.Config, drain_seconds: float, on_drain: Callable[[], None]
    ) -> None:
        super().__init__(config)
        self.drain_seconds = drain_seconds if uvicorn_compat.drains() else 0.0
        self.on_drain = on_drain
        self._timer: threading.Timer | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.drain_seconds <= 0 or self.should_exit:
            super().handle_exit(sig, frame)
            return
        if self._timer is not None:  # a second signal: stop now
            self._timer.cancel()
            super().handle_exit(sig, frame)
            return
        self.on_drain()
        logger.info(
            "%s: draining for %g s (/readyz answers 503, requests are still answered)",
            signal.Signals(sig).name, self.drain_seconds,
        )  # fmt: skip
        self._timer = threading.Timer(self.drain_seconds, self._drained, args=(sig,))
        self._timer.daemon = True
        self._timer.start()

    def _drained(self, sig: int) -> None:
        if not self.should_exit:
            logger.info("drained: no new connections, finishing the requests in flight")
            super().handle_exit(sig, None)
