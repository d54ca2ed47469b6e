"""`python -m trainer <command>`: train, evaluate, promote, seed-db, create-bucket, report.

Expected failures end with one `error: ...` line on stderr and exit 1; usage errors, and a
command whose extra is not installed, exit 2; `promote` refused by its gate prints the decision
and exits 3.
Only the command's result goes to stdout; anything libraries print goes to stderr.

This module is the entry point (settings, logging, running the chosen command and turning its
failure into an exit code); the grammar is in trainer.parser, the commands in trainer.commands.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Callable

from pydantic import ValidationError

from trainer.errors import TrainerError, scrub
from trainer.extras import Extra, MissingExtra, require
from trainer.parser import build_parser
from trainer.settings import get_settings

QUIET_LOGGERS = ("mlflow", "alembic", "urllib3", "botocore", "py.warnings", "git")


def configure_logging(level: str) -> None:
    """Logs to stderr; below INFO, the libraries' own chatter (retries, migrations) is hidden."""
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise TrainerError(f"unknown log level {level!r}")
    logging.basicConfig(
        stream=sys.stderr, level=numeric, format="%(levelname)s %(name)s: %(message)s"
    )
    logging.captureWarnings(True)
    if numeric > logging.INFO:
        os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "ERROR")
        for name in QUIET_LOGGERS:
            logging.getLogger(name).setLevel(logging.ERROR)


def main(argv: list[str] | None = None) -> int:
    try:
        settings = get_settings()
    except ValidationError as exc:
        fields = ", ".join(f"TRAINER_{'_'.join(map(str, e['loc'])).upper()}" for e in exc.errors())
        sys.stderr.write(f"error: invalid setting {fields}\n")
        return 1
    parser = build_parser(settings)
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace, argparse.ArgumentParser], str] = args.handler
    extra: Extra = args.extra
    try:
        require(extra)
    except MissingExtra as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    try:
        configure_logging("INFO" if args.verbose else settings.log_level)
        with contextlib.redirect_stdout(sys.stderr):
            output = handler(args, parser)
    except TrainerError as exc:
        refused = getattr(exc, "output", None)
        if refused is not None:  # promote: the decision is the output, the refusal exits 3
            sys.stdout.write(f"{refused}\n")
        sys.stderr.write(f"error: {scrub(str(exc))}\n")
        return 3 if refused is not None else 1
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted\n")
        return 130
    sys.stdout.write(output + "\n")
    return 0
