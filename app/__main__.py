"""`python -m app [--host H] [--port P]`: serve the model with uvicorn."""

from __future__ import annotations

import argparse
import logging
import signal
import sys

import uvicorn
from pydantic import ValidationError

from app.settings import Settings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m app",
        description="Serve an MLflow model (MODEL_URI, or RUN_ID + MODEL_NAME) over HTTP.",
    )
    parser.add_argument("--host", help="address to bind (default: HOST or 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to listen on (default: PORT or 8000)")
    return parser


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    for noisy in ("mlflow", "botocore", "urllib3", "alembic"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))


def _settings_error(exc: ValidationError) -> str:
    problems = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]).upper()
        message = err["msg"].removeprefix("Value error, ")
        problems.append(f"{field}: {message}" if field else message)
    return "; ".join(problems)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    overrides = {k: v for k, v in vars(args).items() if v is not None}
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        print(f"error: invalid settings: {_settings_error(exc)}", file=sys.stderr)  # noqa: T201
        return 2
    configure_logging(settings.log_level)

    from app.main import create_app

    exit_code = 0
    server: uvicorn.Server | None = None

    def fatal() -> None:
        nonlocal exit_code
        exit_code = 1
        if server is not None:
            server.should_exit = True

    app = create_app(settings, on_fatal=fatal)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        access_log=False,
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=30,
    )
    server = uvicorn.Server(config)
    # uvicorn shuts down gracefully on SIGTERM/SIGINT, then re-raises the signal to the
    # handler it found: make that a no-op so a requested stop exits 0, not -15.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    server.run()
    if exit_code == 0 and not server.started:
        exit_code = 1  # could not bind, or lifespan startup failed
    return exit_code


if __name__ == "__main__":
    raise SystemExit(main())
