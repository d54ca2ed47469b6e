"""`python -m app [-m URI] [-h HOST] [-p PORT] [-w N] [-t SECONDS] [--env-manager local]`:
serve the model with uvicorn. The flags are `mlflow models serve`'s, so a command line that
starts MLflow's scoring server starts this service with `python -m app` in its place."""

from __future__ import annotations

import argparse
import sys

from pydantic import ValidationError

from app.settings import Settings

ENV_MANAGERS = ("local", "virtualenv", "uv", "conda")
"""What `mlflow models serve --env-manager` takes; this service serves in its own environment."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m app",
        description="Serve an MLflow model (MODEL_URI, or RUN_ID + MODEL_NAME) over HTTP. "
        "Takes the flags of `mlflow models serve`.",
        add_help=False,  # -h is the host, as in `mlflow models serve`
    )
    parser.add_argument("--help", action="help", help="show this help and exit")
    parser.add_argument(
        "-m", "--model-uri", dest="model_uri", metavar="URI",
        help="the model to serve (default: MODEL_URI)",
    )  # fmt: skip
    parser.add_argument("-h", "--host", help="address to bind (default: HOST or 127.0.0.1)")
    parser.add_argument("-p", "--port", type=int, help="port to listen on (default: PORT or 8000)")
    parser.add_argument(
        "-w", "--workers", type=int, help="worker processes (default: WORKERS or 1)"
    )
    parser.add_argument(
        "-t", "--timeout", dest="request_timeout", type=float, metavar="SECONDS",
        help="seconds to answer a request, as mlflow's --timeout (default: REQUEST_TIMEOUT)",
    )  # fmt: skip
    parser.add_argument(
        "--env-manager", metavar="NAME",
        help="accepted for mlflow models serve's command lines: only 'local' (this environment)",
    )  # fmt: skip
    parser.add_argument(
        "--no-conda", action="store_const", const="local", dest="env_manager",
        help="the same as --env-manager local (as in mlflow models serve)",
    )  # fmt: skip
    return parser


def _settings_error(exc: ValidationError) -> str:
    problems = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]).upper()
        message = err["msg"].removeprefix("Value error, ")
        problems.append(f"{field}: {message}" if field else message)
    return "; ".join(problems)


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)  # noqa: T201
    return 2


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    manager = args.env_manager
    if manager is not None and manager != "local":
        known = "one of mlflow's" if manager in ENV_MANAGERS else "not an environment manager"
        return _fail(
            f"--env-manager {manager} ({known}) is not supported: the service serves the model "
            "in its own environment; use --env-manager local"
        )
    overrides = {k: v for k, v in vars(args).items() if v is not None and k != "env_manager"}
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        return _fail(f"invalid settings: {_settings_error(exc)}")
    from app.server.supervisor import configure_logging, serve

    configure_logging(settings.log_level)
    return serve(settings)


if __name__ == "__main__":
    raise SystemExit(main())
