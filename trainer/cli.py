"""`python -m trainer <command>`: train, evaluate, seed-db, create-bucket, report.

Expected failures end with one `error: ...` line on stderr and exit 1; usage errors, and a
command whose extra is not installed, exit 2.
Only the command's result goes to stdout; anything libraries print goes to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationError

from trainer.errors import TrainerError, redact, scrub
from trainer.extras import REPORT, TRAINER, Extra, MissingExtra, require
from trainer.hyper import KERNELS, HyperParams
from trainer.settings import TrainerSettings, get_settings

QUIET_LOGGERS = ("mlflow", "alembic", "urllib3", "botocore", "py.warnings", "git")


# -- option types: a bad value is an argparse usage error (exit 2) -----------------------------


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


# -- the parser ------------------------------------------------------------------------------


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
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    parser.set_defaults(extra=TRAINER)

    train = commands.add_parser("train", help="fit the model and log it to MLflow")
    train.set_defaults(handler=cmd_train)
    source = train.add_argument_group("data")
    source.add_argument(
        "--data",
        default=s.data,
        help="iris (built in), a CSV path or a postgresql:// URL (default: TRAINER_DATA or iris)",
    )
    source.add_argument("--table", default=s.table, help="Postgres table (default: %(default)s)")
    add_label(source, s)
    source.add_argument(
        "--limit",
        type=positive_int,
        default=s.limit,
        help="latest rows by id read from Postgres (default: %(default)s)",
    )
    source.add_argument(
        "--data-out",
        type=Path,
        default=s.data_out,
        help="CSV of the loaded data, for evaluate (default: %(default)s)",
    )
    add_split(train, s)
    hyper = train.add_argument_group("SVC hyper-parameters")
    hyper.add_argument("--C", dest="C", type=positive_float, default=1.0, help="default: 1.0")
    hyper.add_argument("--kernel", choices=KERNELS, default="rbf", help="default: rbf")
    hyper.add_argument("--gamma", type=gamma, default="scale", help="default: scale")
    mlf = train.add_argument_group("MLflow")
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
    add_json(train)

    evaluate = commands.add_parser("evaluate", help="score a logged model on the data CSV")
    evaluate.set_defaults(handler=cmd_evaluate)
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

    seed = commands.add_parser("seed-db", help="create and fill the iris table in Postgres")
    seed.set_defaults(handler=cmd_seed_db)
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

    bucket = commands.add_parser("create-bucket", help="create the S3/MinIO artifact bucket")
    bucket.set_defaults(handler=cmd_create_bucket)
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

    report = commands.add_parser(
        "report", help="HTML drift and accuracy report of the API's prediction log"
    )
    report.set_defaults(handler=cmd_report, extra=REPORT)
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
    return parser


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


# -- commands: each returns what goes to stdout ------------------------------------------------


def cmd_train(args: argparse.Namespace, parser: argparse.ArgumentParser) -> str:
    from trainer import data, tracking

    if args.skip_if_exists and args.register is None:
        parser.error("--skip-if-exists needs --register")
    if args.alias is not None and args.register is None:
        parser.error("--alias needs --register")
    registered = (args.register or args.model_name) if args.register is not None else None
    alias = (args.alias or get_settings().alias) if registered else None

    source = data.parse_source(args.data)
    if source.kind == "csv" and not Path(source.location).is_file():
        raise TrainerError(f"CSV file not found: {source.location}")
    out_dir = args.data_out.parent
    if not out_dir.is_dir():
        raise TrainerError(f"cannot write {args.data_out}: folder {out_dir} does not exist")
    data_params: dict[str, str | int] = {"data": source.public, "label": args.label}
    if source.kind == "postgres":
        data_params.update(table=args.table, limit=args.limit)
    job = tracking.TrainingJob(
        experiment=args.experiment,
        model_name=args.model_name,
        hyper=HyperParams(C=args.C, kernel=args.kernel, gamma=args.gamma),
        train_size=args.train_size,
        random_state=args.random_state,
        data_params=data_params,
        data_out=args.data_out,
        registered_name=registered,
        alias=alias,
    )

    def load() -> data.Dataset:
        return data.load(source, label=args.label, table=args.table, limit=args.limit)

    target = tracking.configure()
    with tracking.translated_errors(target):
        result = tracking.existing(job) if args.skip_if_exists else None
        if result is not None:
            sys.stderr.write(
                f"{result.registered_model_uri} already exists (version {result.version}):"
                " not training\n"
            )
        else:
            result = tracking.train(job, load, target)
    if args.json:
        return json.dumps(result.as_dict())
    return str(result.run_id)


def cmd_evaluate(args: argparse.Namespace, parser: argparse.ArgumentParser) -> str:
    from trainer import data, model, tracking

    uri = args.model_uri or f"runs:/{args.run_id}/{args.model_name}"
    dataset = data.read_csv(args.data_csv, label=args.label)
    parts = model.split(dataset, train_size=args.train_size, random_state=args.random_state)
    target = tracking.configure()
    with tracking.translated_errors(target):
        loaded = tracking.load_model(uri)
        scores = model.evaluate(loaded, parts)
    if args.json:
        return json.dumps(
            {
                "model_uri": uri,
                "metrics": scores.as_metrics(),
                "n_train": len(parts.y_train),
                "n_valid": len(parts.y_valid),
            }
        )
    return f"train_acc {scores.train_acc}\nvalid_acc {scores.valid_acc}"


def cmd_report(args: argparse.Namespace, parser: argparse.ArgumentParser) -> str:
    from trainer import data, predictions, report, tracking

    if not args.log_url:
        parser.error("report needs --log-url (or TRAINER_LOG_URL)")
    if urlsplit(args.log_url).scheme not in data.POSTGRES_SCHEMES:
        raise TrainerError(f"--log-url must be a postgresql:// URL, got {redact(args.log_url)}")
    out_dir = args.output.parent
    if not out_dir.is_dir():
        raise TrainerError(f"cannot write {args.output}: folder {out_dir} does not exist")
    logged = predictions.read(args.log_url, since=args.since, run_id=args.run_id)
    target = tracking.configure()
    with tracking.translated_errors(target):
        training = tracking.training_rows(logged.run_id)
    summary = report.build(logged, training, args.output)
    return json.dumps(summary.as_dict()) if args.json else summary.line()


def cmd_seed_db(args: argparse.Namespace, parser: argparse.ArgumentParser) -> str:
    from trainer import data, seed

    if data.parse_source(args.url).kind != "postgres":
        raise TrainerError(
            f"seed-db needs a postgresql:// URL (argument or TRAINER_DATA), got {redact(args.url)}"
        )
    inserted = seed.seed(args.url, args.table)
    where = f"table {args.table} at {redact(args.url)}"
    lines = [f"inserted {inserted} rows into {where}" if inserted else f"{where} already has rows"]
    if args.follow:
        stop = threading.Event()
        with stop_on_signals(stop):
            followed = seed.follow(args.url, args.table, args.interval, stop)
        lines.append(f"inserted {followed} more rows until stopped")
    return "\n".join(lines)


def cmd_create_bucket(args: argparse.Namespace, parser: argparse.ArgumentParser) -> str:
    from trainer import storage

    created = storage.create_bucket(args.name, args.endpoint_url, timeout=args.timeout)
    return f"created bucket {args.name}" if created else f"bucket {args.name} already exists"


@contextlib.contextmanager
def stop_on_signals(stop: threading.Event) -> Any:
    """Set `stop` on SIGINT or SIGTERM for the duration of the block."""

    def handle(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


# -- entry point -------------------------------------------------------------------------------


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
        sys.stderr.write(f"error: {scrub(str(exc))}\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted\n")
        return 130
    sys.stdout.write(output + "\n")
    return 0
