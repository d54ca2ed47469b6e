"""Running the app under uvicorn: one process, or a supervisor and N worker processes.

- Connections are served by `app.server.protocol.ServingHttpProtocol`: uvicorn's httptools protocol
  with TCP_NODELAY on every connection and one write per answer.
- With N > 1 workers the supervisor binds the socket, starts N spawned workers that serve on
  it, and points `PROMETHEUS_MULTIPROC_DIR` at a fresh folder so /metrics adds up all workers.
  A worker that gives up loading the model (exit 1) stops the whole service with exit 1; a
  SIGTERM or SIGINT stops the workers gracefully (each drains first, `app.server.drain`)
  and exits 0; SIGHUP makes every worker
  reload, and POST /admin/reload in any worker does too (`app.serving.workers`).
- Each process gets a core of its own when they are as many as the cores (`app.process.cores`).
- Workers even out their keep-alive connections (`app.server.protocol.ConnectionBalance`): each
  one's count of open connections is in shared memory, and one holding two more than a
  sibling closes a connection after an answer, so that the client reconnects to the sibling.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Callable, MutableSequence

import uvicorn

from app.http.observe import RequestIdFilter
from app.monitoring.metrics import SHARED_DIR_ENV
from app.process.cores import pin_worker
from app.server.drain import DrainingServer
from app.server.protocol import http_protocol
from app.settings import Settings

logger = logging.getLogger(__name__)
MULTIPROC_ENV = SHARED_DIR_ENV
SHUTDOWN_GRACE = 30
"""Seconds requests in flight get to finish after SIGTERM."""


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RequestIdFilter())  # each line of a request names its X-Request-ID
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s",
        handlers=[handler],
    )
    for noisy in ("mlflow", "botocore", "urllib3", "alembic"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))


def _ignore_signals_after_shutdown() -> None:
    # uvicorn stops gracefully on SIGTERM/SIGINT, then re-raises the signal to the handler it
    # found: make that a no-op so a requested stop exits 0, not -15.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)


def _serve_one(
    settings: Settings,
    sock: socket.socket | None = None,
    loads: MutableSequence[int] | None = None,
    index: int = 0,
) -> int:
    """Serve in this process until stopped; 0 on a requested stop, 1 if the model never loaded.

    A worker serves `sock`, its supervisor's, and keeps its count of connections in
    `loads[index]`, shared with its siblings."""
    from app.api.application import create_app

    exit_code = 0
    server: DrainingServer | None = None

    def fatal() -> None:
        nonlocal exit_code
        exit_code = 1
        if server is not None:
            server.should_exit = True

    # SIGHUP means "reload"; until the app installs that handler, and after it removes it,
    # the default action (terminate) must not apply.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    # Before the app starts any thread: threads run where their creator was pinned.
    pin_worker(settings.pin_cores, settings.workers, settings.model_process_count, index)
    app = create_app(settings, on_fatal=fatal)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        http=http_protocol(loads, index),
        log_level=settings.log_level.lower(),
        access_log=False,
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=SHUTDOWN_GRACE,
    )
    server = DrainingServer(config, settings.drain_seconds, app.state.slot.drain)
    _ignore_signals_after_shutdown()
    server.run(sockets=[sock] if sock is not None else None)
    if exit_code == 0 and not server.started:
        exit_code = 1  # could not bind, or the lifespan failed to start
    return exit_code


def _worker(
    settings: Settings, sock: socket.socket, loads: MutableSequence[int], index: int
) -> None:
    configure_logging(settings.log_level)
    sys.exit(_serve_one(settings, sock, loads, index))


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _supervise(settings: Settings) -> int:
    try:
        sock = _bind(settings.host, settings.port)
    except OSError as exc:
        logger.critical("cannot listen on %s:%d: %s", settings.host, settings.port, exc)
        return 1
    own_dir = MULTIPROC_ENV not in os.environ
    metrics_dir = os.environ.get(MULTIPROC_ENV) or tempfile.mkdtemp(prefix="model-serving-metrics-")
    os.environ[MULTIPROC_ENV] = metrics_dir
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    workers: list[multiprocessing.process.BaseProcess] = []

    def hangup(*_: object) -> None:
        for process in workers:
            if process.exitcode is None and process.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGHUP)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    # Ignored while the workers start: an ignored signal stays ignored across exec, so a
    # SIGHUP cannot kill a worker before its app has installed the reload handler.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    context = multiprocessing.get_context("spawn")
    loads = context.Array("i", settings.workers, lock=False)  # open connections, per worker
    workers.extend(
        # The settings object itself (pickled): a JSON dump would mask API_KEY as "**********".
        context.Process(target=_worker, args=(settings, sock, loads, i), name=f"worker-{i}")
        for i in range(settings.workers)
    )
    for process in workers:
        process.start()
    signal.signal(signal.SIGHUP, hangup)
    logger.info(
        "serving on http://%s:%d with %d workers (pids %s)",
        settings.host, sock.getsockname()[1], len(workers), [p.pid for p in workers],
    )  # fmt: skip
    try:
        exit_code = _watch(workers, lambda: stopping)
    finally:
        # Close our copy of the listening socket first: once the workers close theirs, the
        # port refuses new connections instead of queueing them for nobody.
        sock.close()
        _stop_workers(workers, settings.drain_seconds)
        if own_dir:
            shutil.rmtree(metrics_dir, ignore_errors=True)
    if exit_code == 0 and any(p.exitcode not in (0, None) for p in workers):
        exit_code = 1
    return exit_code


def _watch(workers: list[multiprocessing.process.BaseProcess], stopping: Callable[[], bool]) -> int:
    """Wait until asked to stop (0) or a worker ends (its verdict: 1 if it failed)."""
    while not stopping():
        dead = [p for p in workers if p.exitcode is not None]
        if dead:
            code = dead[0].exitcode
            logger.log(
                logging.CRITICAL if code else logging.INFO,
                "worker %s exited with %s: stopping the service", dead[0].pid, code,
            )  # fmt: skip
            return 1 if code else 0
        time.sleep(0.2)
    return 0


def _stop_workers(workers: list[multiprocessing.process.BaseProcess], drain: float) -> None:
    """SIGTERM every worker; wait for them to drain (`drain` + SHUTDOWN_GRACE + 5 s), then
    kill."""
    for process in workers:
        if process.exitcode is None and process.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + drain + SHUTDOWN_GRACE + 5
    for process in workers:
        process.join(max(0.1, deadline - time.monotonic()))
        if process.exitcode is None:
            process.kill()
            process.join(5)


def serve(settings: Settings) -> int:
    """Run the service as `settings` say; the process's exit code."""
    if settings.workers == 1:
        return _serve_one(settings)
    return _supervise(settings)
