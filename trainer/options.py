"""The command line's options: their types, and the groups of options the subcommands share.

A type turns one value into a typed one. A bad value is an argparse usage error (exit 2): one out
of range says what it must be; one that is not a number at all is an "invalid <type> value", named
by the type's `__name__`. A group adds its options to a subcommand's parser (trainer.parser), with
defaults from TRAINER_* settings.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from trainer.settings import TrainerSettings


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text}")
    return value


def fraction(text: str) -> float:
    value = float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1 (exclusive), got {text}")
    return value


def gamma(text: str) -> str | float:
    if text in ("scale", "auto"):
        return text
    try:
        return positive_float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be scale, auto or a positive number, got {text}"
        ) from None


def iso_time(text: str) -> datetime:
    """An ISO 8601 time; without a zone, UTC."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be an ISO 8601 time such as 2025-01-31T08:00:00Z, got {text}"
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


positive_int.__name__ = "positive integer"
positive_float.__name__ = "positive number"
non_negative_float.__name__ = "number"
fraction.__name__ = "fraction"


# -- option groups shared by, or grouped within, the subcommands -------------------------------


def add_source(parser: argparse.ArgumentParser, s: TrainerSettings, data_out: bool = True) -> None:
    source = parser.add_argument_group("data")
    source.add_argument(
        "--data",
        default=s.data,
        help="iris (built in), a CSV path, a postgresql:// URL, or (train) log: the labelled"
        " rows of the prediction log (default: TRAINER_DATA or iris)",
    )
    source.add_argument("--table", default=s.table, help="Postgres table (default: %(default)s)")
    add_label(source, s)
    source.add_argument(
        "--limit",
        type=positive_int,
        default=s.limit,
        help="latest rows by id read from Postgres (default: %(default)s)",
    )
    if not data_out:
        return
    source.add_argument(
        "--data-out",
        type=Path,
        default=s.data_out,
        help="CSV of the loaded data, for evaluate (default: %(default)s)",
    )


def add_mlflow(parser: argparse.ArgumentParser, s: TrainerSettings) -> None:
    mlf = parser.add_argument_group("MLflow")
    mlf.add_argument(
        "--experiment", default=s.experiment, help="experiment name (default: %(default)s)"
    )
    mlf.add_argument(
        "--model-name",
        default=s.model_name,
        help="name of the model in the run: runs:/<run_id>/<name> (default: %(default)s)",
    )
    mlf.add_argument(
        "--register",
        nargs="?",
        const="",
        default=None,
        metavar="NAME",
        help="register the model version under NAME (default NAME: the model name)",
    )
    mlf.add_argument(
        "--alias",
        default=None,
        help=f"alias pointed at the registered version (default: {s.alias} when registering)",
    )
    mlf.add_argument(
        "--skip-if-exists",
        action="store_true",
        help="with --register: do not train if models:/NAME@ALIAS already resolves",
    )


def add_label(parser: Any, s: TrainerSettings) -> None:
    parser.add_argument("--label", default=s.label, help="label column (default: %(default)s)")


def add_split(parser: argparse.ArgumentParser, s: TrainerSettings) -> None:
    group = parser.add_argument_group("train/validation split")
    group.add_argument(
        "--train-size",
        type=fraction,
        default=s.train_size,
        help="fraction of rows for training (default: %(default)s)",
    )
    group.add_argument(
        "--random-state",
        type=int,
        default=s.random_state,
        help="seed of the split (default: %(default)s)",
    )


def add_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object instead of plain text"
    )
