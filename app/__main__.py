"""`python -m app [--host H] [--port P] [--workers N]`: serve the model with uvicorn."""

from __future__ import annotations

import argparse
import sys

from pydantic import ValidationError

from app.settings import Settings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m app",
        description="Serve an MLflow model (MODEL_URI, or RUN_ID + MODEL_NAME) over HTTP.",
    )
    parser.add_argument("--host", help="address to bind (default: HOST or 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to listen on (default: PORT or 8000)")
    parser.add_argument("--workers", type=int, help="worker processes (default: WORKERS or 1)")
    return parser


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
    from app.server.supervisor import configure_logging, serve

    configure_logging(settings.log_level)
    return serve(settings)


if __name__ == "__main__":
    raise SystemExit(main())
