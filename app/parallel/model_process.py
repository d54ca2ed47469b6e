"""A model process beside a worker: large /predict bodies decoded and predicted in a second
interpreter, under its own GIL.

In one worker, the model threads' decoding (msgspec holds the GIL) and the event loop's HTTP work
wait for each other on one GIL, so one worker cannot fill two cores. A `ModelProcess` is a child
process (`python -m app.parallel.child`) serving the same model from the worker's serving
file (`app.model.snapshot`: the fitted estimator and the predict path verified at load, verified
again in the child on the same rows). The event loop writes a large body's bytes into its pipe as
they came, and gets back the float64 matrix (for the prediction log, drift and accuracy, recorded by
the worker as for any request), the predictions and the seconds predicting took. Bodies the process
has no room for are decoded and predicted on the worker's threads as before. Requests are shared,
not connections: any client's large requests use both processes.

The process takes only what the worker's compiled decoder (`app.formats.decoders`) takes and its
predict path answers without an error; on anything else it says so, and the worker reads the
body the general way, which gives the answer and names what is wrong. So every answer and
error is the worker's own. If the process dies, the worker serves on alone (logged).

Messages: length-prefixed frames on two pipes (`multiprocessing.connection.Connection`).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import struct
import subprocess
import sys
import threading
import time
from collections import deque
from multiprocessing.connection import Connection
from typing import Any

import msgspec
import numpy as np

from app.parallel.frames import HEAD, OK
from app.process.cores import pin

logger = logging.getLogger(__name__)

Offloaded = tuple[np.ndarray, list[Any], float]
"""A body's float64 matrix, its predictions, and the seconds predicting took."""

DEPTH = 3
"""Bodies a model process holds at most (one being predicted, the rest in its pipe). Fewer
leave the process idle between answers; more leave the worker's own threads idle while the
process takes every request (docs/performance.md)."""
START_SECONDS = 120.0
_FRAME = 4  # the length prefix `Connection.send_bytes` writes before a body


def _pipe_capacity(fd: int) -> int:
    """Bytes the pipe holds: grown to 1 MiB where Linux lets it, else taken as 64 KiB."""
    try:
        return int(fcntl.fcntl(fd, 1031, 1 << 20))  # F_SETPIPE_SZ (Linux)
    except OSError:
        return 64 * 1024  # what Linux gives without asking (and no less elsewhere)


def _start_child() -> tuple[subprocess.Popen[bytes], int, int]:
    """The model process started, and the worker's ends of its two pipes (to it, from it)."""
    to_child_r, to_child_w = os.pipe()
    from_child_r, from_child_w = os.pipe()
    command = [sys.executable, "-m", "app.parallel.child", str(to_child_r), str(from_child_w)]
    proc = subprocess.Popen(command, pass_fds=(to_child_r, from_child_w), stdin=subprocess.DEVNULL)
    os.close(to_child_r)
    os.close(from_child_w)
    return proc, to_child_w, from_child_r


class ModelProcess:
    """The worker's end of one model process. Bodies are written to its pipe from the event
    loop, never more than the pipe holds (so a write never waits), up to `DEPTH` at a time;
    a thread reads the answers, which come in order, and hands each to its request."""

    def __init__(
        self,
        snapshot: bytes,
        max_rows: int,
        label: str,
        stop: threading.Event,
        core: int | None = None,
    ) -> None:
        """Starts the process (pinned to `core`, if one) and waits until it serves (blocking:
        call from a thread); raises RuntimeError when it cannot serve this model, or `stop` is
        set meanwhile (it has then ended)."""
        self._proc, to_child_w, from_child_r = _start_child()
        # Pinned right after it starts: threads it starts later (numpy's, on import) keep it.
        self.core = core if pin(self._proc.pid, core, "the model process") else None
        self._send = Connection(to_child_w, readable=False)
        self._recv = Connection(from_child_r, writable=False)
        # A pipe holds whole pages: a body and its length prefix may start a page each.
        self._capacity = _pipe_capacity(to_child_w) - 2 * DEPTH * 4096
        self._lock = threading.Lock()  # guards the pipe's writes and `_waiting`
        self._waiting: deque[tuple[int, asyncio.AbstractEventLoop, asyncio.Future[Any]]] = deque()
        self._queued = 0  # bytes of the bodies in `_waiting`: at least what is in the pipe
        self._label = label
        self.alive = False
        self.answered = 0
        """Bodies this process decoded and predicted."""
        try:
            self._send.send_bytes(struct.pack("<Q", max_rows) + snapshot)
            deadline = time.monotonic() + START_SECONDS
            while not self._recv.poll(0.05):
                if stop.is_set():
                    self._proc.kill()
                    raise RuntimeError("the service stopped while the model process started")
                if time.monotonic() > deadline:
                    self._proc.kill()
                    raise RuntimeError(f"the model process did not start in {START_SECONDS} s")
            answer = self._recv.recv_bytes()
        except (OSError, EOFError) as exc:
            self._recv.close()
            self.close()
            raise RuntimeError(f"the model process ended while starting ({exc})") from exc
        except RuntimeError:
            self._recv.close()
            self.close()
            raise
        if answer != b"ready":
            self._recv.close()
            self.close()
            raise RuntimeError(answer.decode("utf-8", "replace"))
        self.alive = True
        self._reader = threading.Thread(target=self._read, name="model-process", daemon=True)
        self._reader.start()

    @property
    def waiting(self) -> int:
        """Bodies sent and not answered yet."""
        return len(self._waiting)

    @property
    def pid(self) -> int:
        return self._proc.pid

    def describe(self) -> dict[str, Any]:
        """What /model-info shows of this process."""
        return {
            "pid": self.pid,
            "running": self.alive,
            "requests": self.answered,
            "core": self.core,
        }

    def submit(self, body: bytes) -> asyncio.Future[Offloaded | None] | None:
        """(On the event loop) a future of the body's matrix, predictions and predict seconds,
        which is None when the process leaves the body to the worker (not plainly valid, or
        not predictable: the worker then says why) or has ended; None at once when the
        process is full or gone."""
        size = len(body) + _FRAME
        with self._lock:
            full = len(self._waiting) >= DEPTH or self._queued + size > self._capacity
            if not self.alive or full:
                return None
            answered: asyncio.Future[Offloaded | None] = asyncio.get_running_loop().create_future()
            try:
                self._send.send_bytes(body)  # fits in the pipe's buffer: no wait
            except OSError:
                self._died()
                return None
            self._waiting.append((size, answered.get_loop(), answered))
            self._queued += size
        return answered

    def _read(self) -> None:
        """(Its own thread) hands each answer to the request it answers, in order."""
        while True:
            try:
                answer: bytes | None = self._recv.recv_bytes()
            except (OSError, EOFError):
                answer = None
            with self._lock:
                if answer is None:
                    self._died()
                    for _, loop, answered in self._waiting:
                        _hand(loop, answered, None)
                    self._waiting.clear()
                    self._queued = 0
                    self._recv.close()
                    return
                size, loop, answered = self._waiting.popleft()
                self._queued -= size
            result = _unpack(answer)
            if result is not None:
                self.answered += 1
            _hand(loop, answered, result)

    def _died(self) -> None:
        if self.alive:
            self.alive = False
            logger.warning(
                "the model process of %s ended (exit %s): large requests are served in this "
                "process alone until the model is loaded again",
                self._label, self._proc.poll(),
            )  # fmt: skip

    def close(self) -> None:
        """Stop the process: it ends once its pipe is closed (it also does when the worker
        ends, however it ends); killed if it has not within 5 s."""
        with self._lock:
            self.alive = False
            self._send.close()
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()


def _unpack(answer: bytes) -> Offloaded | None:
    if answer[:1] != OK:
        return None
    rows, width, seconds = HEAD.unpack_from(answer, 1)
    end = 1 + HEAD.size + rows * width * 8
    matrix = np.frombuffer(answer, np.float64, rows * width, 1 + HEAD.size)
    return matrix.reshape(rows, width), msgspec.msgpack.decode(answer[end:]), seconds


def _settle(answered: asyncio.Future[Offloaded | None], result: Offloaded | None) -> None:
    if not answered.done():  # the request may have timed out, or its client gone
        answered.set_result(result)


def _hand(
    loop: asyncio.AbstractEventLoop,
    answered: asyncio.Future[Offloaded | None],
    result: Offloaded | None,
) -> None:
    with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits any more
        loop.call_soon_threadsafe(_settle, answered, result)
