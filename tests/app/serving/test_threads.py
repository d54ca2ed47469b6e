"""A model load blocked on a registry that never answers does not hold up shutdown: SIGTERM
ends the real service within its grace period, and a cancelled caller never waits."""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.server.supervisor import SHUTDOWN_GRACE
from app.serving.threads import run_in_daemon
from tests.servers import free_port, python_env, running

MLFLOW_VARS = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")


class Silent:
    """A TCP server that accepts every connection, reads what is sent, and never answers."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.requested = threading.Event()  # a request's bytes arrived
        self._held: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return  # closed
            self._held.append(conn)
            threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _read(self, conn: socket.socket) -> None:
        try:
            while conn.recv(65536):
                self.requested.set()
        except OSError:
            pass

    def close(self) -> None:
        self.sock.close()
        for conn in self._held:
            conn.close()


@pytest.fixture
def silent() -> Iterator[Silent]:
    server = Silent()
    yield server
    server.close()


def test_sigterm_during_a_load_blocked_on_the_registry_exits_within_the_grace_period(
    silent: Silent, tmp_path: Path
) -> None:
    port = free_port()
    env = python_env(
        {
            "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{silent.port}",
            "MODEL_URI": "models:/sk_model@champion",
            "MODEL_LOAD_TIMEOUT": "600",
            # Each request waits this long for an answer (MLflow's own default is 120 s; a
            # download from S3 may take as long): longer than the grace period.
            "MLFLOW_HTTP_REQUEST_TIMEOUT": str(4 * SHUTDOWN_GRACE),
        },
        drop=MLFLOW_VARS,
    )
    args = [sys.executable, "-m", "app", "--port", str(port)]
    with running(args, env, tmp_path / "app.log", cwd=tmp_path) as server:
        server.wait_http(f"http://127.0.0.1:{port}/readyz", status=503, timeout=60)
        assert silent.requested.wait(60), "the load asked the registry"
        time.sleep(0.5)  # the load now waits on an answer that never comes
        assert server.proc.poll() is None
        started = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        code = server.proc.wait(SHUTDOWN_GRACE)
        took = time.monotonic() - started
        output = server.output()
    assert code == 0, output
    assert took < SHUTDOWN_GRACE
    assert "model loaded" not in output and "Traceback" not in output


def test_a_cancelled_caller_goes_on_at_once_and_what_the_call_left_is_released() -> None:
    release, released = threading.Event(), threading.Event()

    def blocked() -> str:
        release.wait(30)
        return "loaded"

    async def cancel_while_blocked() -> float:
        task = asyncio.create_task(run_in_daemon(blocked, name="test-load", abandoned=released.set))
        await asyncio.sleep(0.2)
        started = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return time.monotonic() - started

    assert asyncio.run(cancel_while_blocked()) < 1.0
    assert not released.is_set()  # still blocked: nothing to release yet
    assert [t.daemon for t in threading.enumerate() if t.name == "test-load"] == [True]
    release.set()
    assert released.wait(5), "the abandoned call's result was released"


def test_a_result_and_an_exception_come_back_to_the_caller() -> None:
    def fail() -> None:
        raise ValueError("no such model")

    async def both() -> str:
        with pytest.raises(ValueError, match="no such model"):
            await run_in_daemon(fail, name="test-fail")
        return await run_in_daemon(str.upper, "ok", name="test-ok")

    assert asyncio.run(both()) == "OK"
