"""The command line's grammar: one parser per subcommand, defaults from TRAINER_* settings.

Each subcommand's parser names the function in trainer.commands that runs it (`handler`) and
the extra it needs installed (`extra`). The option groups several subcommands share (data, split,
MLflow, --json) are in trainer.options, with the option types.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from trainer import commands
from trainer.extras import REPORT, TRAINER
from trainer.hyper import KERNELS
from trainer.options import (
    add_json,
    add_label,
    add_mlflow,
    add_source,
    add_split,
    fraction,
    gamma,
    iso_time,
    non_negative_float,
    positive_float,
    positive_int,
)
from trainer.settings import TrainerSettings, get_settings


def build_parser(settings: TrainerSettings | None = None) -> argparse.ArgumentParser:
    """Every subcommand and option; defaults come from TRAINER_* settings."""
    s = settings or get_settings()
    parser = argparse.ArgumentParser(
        prog="python -m trainer",
        description="Train, track and register the iris model in MLflow; seed its database.",
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="show INFO logs (MLflow's included)"
    )
    subcommands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    parser.set_defaults(extra=TRAINER)
    add_train(subcommands.add_parser("train", help="fit the model and log it to MLflow"), s)
    add_evaluate(subcommands.add_parser("evaluate", help="score a logged model on the data CSV"), s)
    add_promote(
        subcommands.add_parser(
            "promote", help="move @champion to @challenger if it is better on the same rows"
        ),
        s,
    )
    add_seed_db(
        subcommands.add_parser("seed-db", help="create and fill the iris table in Postgres"), s
    )
    add_create_bucket(
        subcommands.add_parser("create-bucket", help="create the S3/MinIO artifact bucket"), s
    )
    add_report(
        subcommands.add_parser(
            "report", help="HTML drift and accuracy report of the API's prediction log"
        ),
        s,
    )
    return parser


# -- one function per subcommand ---------------------------------------------------------------


def add_train(train: argparse.ArgumentParser, s: TrainerSettings) -> None:
    train.set_defaults(handler=commands.cmd_train)
    add_source(train, s)
    log = train.add_argument_group("prediction log (--data log)")
    log.add_argument(
        "--log-url",
        default=s.log_url or None,
        help="postgresql:// URL of the API's prediction log (default: TRAINER_LOG_URL)",
    )
    log.add_argument(
        "--since",
        type=iso_time,
        default=None,
        help="only rows logged from this ISO 8601 time on (UTC unless given; default: all)",
    )
    log.add_argument(
        "--until",
        type=iso_time,
        default=None,
        help="only rows logged before this ISO 8601 time (default: all)",
    )
    log.add_argument(
        "--with-training",
        action="store_true",
        help="add the training rows of the runs whose models made the logged predictions",
    )
    add_split(train, s)
    hyper = train.add_argument_group("SVC hyper-parameters")
    hyper.add_argument("--C", dest="C", type=positive_float, default=1.0, help="default: 1.0")
    hyper.add_argument("--kernel", choices=KERNELS, default="rbf", help="default: rbf")
    hyper.add_argument("--gamma", type=gamma, default="scale", help="default: scale")
    add_mlflow(train, s)
    add_json(train)


def add_evaluate(evaluate: argparse.ArgumentParser, s: TrainerSettings) -> None:
    evaluate.set_defaults(handler=commands.cmd_evaluate)
    which = evaluate.add_mutually_exclusive_group(required=True)
    which.add_argument("--run-id", help="run whose model runs:/<run_id>/<model name> is scored")
    which.add_argument("--model-uri", help="any model URI: runs:/..., models:/NAME@ALIAS, ...")
    evaluate.add_argument(
        "--model-name", default=s.model_name, help="with --run-id (default: %(default)s)"
    )
    evaluate.add_argument(
        "--data-csv",
        type=Path,
        default=s.data_out,
        help="CSV written by train (default: %(default)s)",
    )
    add_label(evaluate, s)
    add_split(evaluate, s)
    add_json(evaluate)


def add_promote(promote: argparse.ArgumentParser, s: TrainerSettings) -> None:
    promote.set_defaults(handler=commands.cmd_promote)
    promote.add_argument("name", metavar="NAME", help="registered model name")
    promote.add_argument(
        "--challenger", default="challenger", help="alias of the challenger (default: %(default)s)"
    )
    promote.add_argument(
        "--champion", default=s.alias, help="alias of the champion (default: %(default)s)"
    )
    gate = promote.add_argument_group("the gate")
    gate.add_argument(
        "--min-rows",
        type=positive_int,
        default=100,
        help="fewest labelled rows both predicted (default: %(default)s)",
    )
    gate.add_argument(
        "--min-gain",
        type=non_negative_float,
        default=0.0,
        help="accuracy gain the challenger must beat, beyond sampling error (default: %(default)s)",
    )
    gate.add_argument(
        "--alpha",
        type=fraction,
        default=0.05,
        help="one-sided chance of promoting a challenger no better than --min-gain"
        " (default: %(default)s)",
    )
    evidence = promote.add_argument_group("evidence")
    evidence.add_argument(
        "--evidence",
        choices=("auto", "shadow", "holdout"),
        default="auto",
        help="shadow: the live labelled rows both predicted (prediction log); holdout: the"
        " held-out part of --data, scored by both; auto: shadow when there are such rows"
        " (default: %(default)s)",
    )
    evidence.add_argument(
        "--log-url",
        default=s.log_url or None,
        help="postgresql:// URL of the prediction log (default: TRAINER_LOG_URL)",
    )
    add_source(promote, s, data_out=False)
    add_split(promote, s)
    add_json(promote)


def add_seed_db(seed: argparse.ArgumentParser, s: TrainerSettings) -> None:
    seed.set_defaults(handler=commands.cmd_seed_db)
    seed.add_argument(
        "url",
        nargs="?",
        default=s.data,
        metavar="URL",
        help="postgresql:// URL (default: TRAINER_DATA)",
    )
    seed.add_argument("--table", default=s.table, help="table name (default: %(default)s)")
    seed.add_argument(
        "--follow",
        action="store_true",
        help="then insert one sampled row every --interval seconds until SIGINT/SIGTERM",
    )
    seed.add_argument(
        "--interval",
        type=positive_float,
        default=s.seed_interval,
        help="seconds between rows with --follow (default: %(default)s)",
    )


def add_create_bucket(bucket: argparse.ArgumentParser, s: TrainerSettings) -> None:
    bucket.set_defaults(handler=commands.cmd_create_bucket)
    bucket.add_argument("name", metavar="NAME", help="bucket name")
    bucket.add_argument(
        "--endpoint-url",
        default=os.environ.get("MLFLOW_S3_ENDPOINT_URL") or None,
        help="S3 endpoint (default: MLFLOW_S3_ENDPOINT_URL; AWS when unset)",
    )
    bucket.add_argument(
        "--timeout",
        type=non_negative_float,
        default=s.bucket_timeout,
        help="seconds to keep retrying an unreachable endpoint (default: %(default)s)",
    )


def add_report(report: argparse.ArgumentParser, s: TrainerSettings) -> None:
    report.set_defaults(handler=commands.cmd_report, extra=REPORT)
    report.add_argument(
        "--log-url",
        default=s.log_url or None,
        help="postgresql:// URL of the prediction log (default: TRAINER_LOG_URL)",
    )
    report.add_argument(
        "--since",
        type=iso_time,
        default=None,
        help="only predictions logged from this ISO 8601 time on (UTC unless given; default: all)",
    )
    report.add_argument(
        "--run-id",
        default=None,
        help="the run whose predictions are reported (default: the run with the most rows)",
    )
    report.add_argument(
        "--output", type=Path, default=Path("report.html"), help="HTML file (default: %(default)s)"
    )
    add_json(report)
