"""What each subcommand does: one function per command, returning what goes to stdout.

Each takes the parsed arguments and the parser (for usage errors, exit 2) and raises TrainerError
for an expected failure. The trainer modules a command uses are imported inside it, so that a
command loads only what it needs (and `--help` none of it). The functions after cmd_train check
its data source before the run and load it inside the run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from trainer.errors import TrainerError, redact
from trainer.hyper import HyperParams
from trainer.settings import get_settings

if TYPE_CHECKING:
    from trainer.data import Dataset, Source


def cmd_train(args: argparse.Namespace, parser: argparse.ArgumentParser) -> str:
    from trainer import tracking

    if args.skip_if_exists and args.register is None:
        parser.error("--skip-if-exists needs --register")
    if args.alias is not None and args.register is None:
        parser.error("--alias needs --register")
    registered = (args.register or args.model_name) if args.register is not None else None
    alias = (args.alias or get_settings().alias) if registered else None

    source = train_source(args, parser)
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

    target = tracking.configure()
    with tracking.translated_errors(target):
        result = tracking.existing(job) if args.skip_if_exists else None
        if result is not None:
            sys.stderr.write(
                f"{result.registered_model_uri} already exists (version {result.version}):"
                " not training\n"
            )
        else:
            result = tracking.train(job, lambda: load_train_data(args, source), target)
    if args.json:
        return json.dumps(result.as_dict())
    return str(result.run_id)


def train_source(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Source:
    """train's --data, checked before any run starts: a CSV that exists; for the prediction log,
    a postgresql:// --log-url; --since, --until and --with-training only with the log."""
    from trainer import data

    source = data.parse_source(args.data)
    if source.kind == "csv" and not Path(source.location).is_file():
        raise TrainerError(f"CSV file not found: {source.location}")
    if source.kind == "log":
        if not args.log_url:
            parser.error("--data log needs --log-url (or TRAINER_LOG_URL)")
        if urlsplit(args.log_url).scheme not in data.POSTGRES_SCHEMES:
            raise TrainerError(f"--log-url must be a postgresql:// URL, got {redact(args.log_url)}")
    elif args.since or args.until or args.with_training:
        parser.error("--since, --until and --with-training need --data log")
    return source


def load_train_data(args: argparse.Namespace, source: Source) -> Dataset:
    """(In the run) the rows train fits on: the prediction log's, or those of the source."""
    from trainer import data

    if source.kind == "log":
        return load_log(args)
    return data.load(source, label=args.label, table=args.table, limit=args.limit)


def load_log(args: argparse.Namespace) -> Dataset:
    """(In the run) the log's labelled rows, recorded as the run's params and tags."""
    from trainer import logdata, tracking

    rows = logdata.read(args.log_url, label=args.label, since=args.since, until=args.until)
    training = []
    if args.with_training:
        for run_id in rows.runs:
            found = tracking.training_rows(run_id)
            training.append(found.frame.rename(columns={found.label: args.label}))
    with_training = ",".join(rows.runs) if args.with_training else ""
    tracking.record_data(
        {**rows.params(args.log_url, args.since, args.until), "with_training": with_training},
        {
            "training.data": "prediction log",
            "training.label_source": "POST /feedback",
            "training.log_rows": str(len(rows.frame)),
            "training.log_range": f"{rows.first.isoformat()} .. {rows.last.isoformat()}",
        },
    )
    return logdata.dataset(rows, args.label, training)


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
        drift_baseline = tracking.run_baseline(logged.run_id)
    summary = report.build(logged, training, args.output, drift_baseline)
    return json.dumps(summary.as_dict()) if args.json else summary.line()


def cmd_promote(args: argparse.Namespace, parser: argparse.ArgumentParser) -> str:
    from trainer import data, promotion, tracking
    from trainer.gate import Gate

    if args.evidence == "shadow" and not args.log_url:
        parser.error("--evidence shadow needs --log-url (or TRAINER_LOG_URL)")
    if args.log_url and urlsplit(args.log_url).scheme not in data.POSTGRES_SCHEMES:
        raise TrainerError(f"--log-url must be a postgresql:// URL, got {redact(args.log_url)}")
    gate = Gate(min_rows=args.min_rows, min_gain=args.min_gain, alpha=args.alpha)
    target = tracking.configure()
    with tracking.translated_errors(target):
        versions = promotion.resolve(args.name, args.champion, args.challenger)
        evidence = None
        if args.evidence != "holdout" and args.log_url:
            evidence = promotion.shadow_rows(args.log_url, versions)
            if args.evidence == "auto" and not evidence.champion_right:
                evidence = None  # no live rows both predicted: the held-out rows
        if evidence is None:
            source = data.parse_source(args.data)
            dataset = data.load(source, label=args.label, table=args.table, limit=args.limit)
            x, y = promotion.held_out(dataset, args.train_size, args.random_state)

            def predict(version: str, rows: Any) -> list[Any]:
                model = tracking.load_model(f"models:/{args.name}/{version}")
                return list(model.predict(rows))

            evidence = promotion.holdout_rows(x, y, predict, versions)
        result = promotion.decide(evidence, gate)
        decision = promotion.record(versions, evidence, result, gate)
        promotion.apply(decision, versions)
    output = json.dumps(decision) if args.json else promotion.text(decision)
    if not result.promote:
        raise promotion.Refused(result.reason, output)
    return output


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
