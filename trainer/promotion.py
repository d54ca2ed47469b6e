"""`promote`: the challenger against the champion on the same labelled rows, and the champion
alias moved only when the gate (trainer.gate) holds; the thin shell around it that reads the
evidence and talks to the registry.

The evidence is the live rows both versions predicted: the shadow's predictions in the
prediction log (`prediction_shadow`, by request id and row) joined with the served ones
(`prediction_log`) and their true labels (`prediction_feedback`). Without such rows (or with
`--evidence holdout`), both versions are scored on the held-out part of the trainer's data, the
same rows for both. The decision is recorded on both versions as `promotion.*` tags.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import psycopg2
from psycopg2 import sql

from model_serving.prediction_log import FEEDBACK_TABLE, LOG_TABLE, SHADOW_TABLE
from trainer.data import Dataset, connect
from trainer.errors import TrainerError, first_line, redact
from trainer.gate import Comparison, Gate, compare
from trainer.predictions import class_key

PAIRED_ROWS = sql.SQL(
    "SELECT l.prediction, s.prediction, f.label FROM {shadow} s"
    " JOIN {log} l ON l.request_id = s.request_id AND l.row_index = s.row_index"
    " JOIN {feedback} f ON f.request_id = s.request_id AND f.row_index = s.row_index"
    " WHERE l.model_name = %(name)s AND l.model_version = %(champion)s"
    " AND s.model_name = %(name)s AND s.model_version = %(challenger)s"
    " ORDER BY s.id"
).format(
    shadow=sql.Identifier(SHADOW_TABLE),
    log=sql.Identifier(LOG_TABLE),
    feedback=sql.Identifier(FEEDBACK_TABLE),
)


class Refused(TrainerError):
    """The gate did not hold: the decision is printed, the command exits 3 with the reason."""

    def __init__(self, reason: str, output: str) -> None:
        super().__init__(f"not promoted: {reason}")
        self.output = output


@dataclass(frozen=True)
class Versions:
    name: str
    champion: str
    challenger: str
    champion_alias: str
    challenger_alias: str


@dataclass(frozen=True)
class Evidence:
    source: str
    """shadow (live rows from the prediction log) or holdout (the trainer's held-out rows)."""
    champion_right: list[bool]
    challenger_right: list[bool]


def same(prediction: Any, label: Any) -> bool:
    return class_key(prediction) == class_key(label)


def shadow_rows(url: str, versions: Versions) -> Evidence:
    """The labelled rows both versions predicted live (champion served, challenger shadowed)."""
    conn = connect(url)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(
                PAIRED_ROWS,
                {
                    "name": versions.name,
                    "champion": versions.champion,
                    "challenger": versions.challenger,
                },
            )
            rows = cur.fetchall()
    except psycopg2.errors.UndefinedTable:
        rows = []  # no log, or no shadow has written to it yet
    except psycopg2.Error as exc:
        raise TrainerError(f"cannot read the prediction log: {first_line(exc)}") from None
    finally:
        conn.close()
    return Evidence(
        "shadow",
        [same(served, label) for served, _, label in rows],
        [same(shadow, label) for _, shadow, label in rows],
    )


def holdout_rows(
    x: pd.DataFrame, y: pd.Series, predict: Callable[[str, pd.DataFrame], list[Any]], v: Versions
) -> Evidence:
    """Both versions scored on the same held-out rows."""
    labels = list(y)
    champion = predict(v.champion, x)
    challenger = predict(v.challenger, x)
    return Evidence(
        "holdout",
        [same(p, label) for p, label in zip(champion, labels, strict=True)],
        [same(p, label) for p, label in zip(challenger, labels, strict=True)],
    )


def decide(evidence: Evidence, gate: Gate) -> Comparison:
    return compare(evidence.champion_right, evidence.challenger_right, gate)


def record(
    versions: Versions, evidence: Evidence, result: Comparison, gate: Gate
) -> dict[str, Any]:
    """The decision, as printed and as tagged on both versions."""
    return {
        "name": versions.name,
        "decision": "promoted" if result.promote else "refused",
        "reason": result.reason,
        "evidence": evidence.source,
        "rows": result.rows,
        "champion": {
            "alias": versions.champion_alias,
            "version": versions.champion,
            "accuracy": result.champion_accuracy,
        },
        "challenger": {
            "alias": versions.challenger_alias,
            "version": versions.challenger,
            "accuracy": result.challenger_accuracy,
        },
        "gain": result.gain,
        "gain_se": result.gain_se,
        "lower_bound": result.lower_bound,
        "only_champion_right": result.only_champion_right,
        "only_challenger_right": result.only_challenger_right,
        "mcnemar_p": result.mcnemar_p,
        "gate": {"min_rows": gate.min_rows, "min_gain": gate.min_gain, "alpha": gate.alpha},
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def tags(decision: dict[str, Any], role: str) -> dict[str, str]:
    """The `promotion.*` tags a version carries after a decision it took part in (`role`:
    champion or challenger)."""
    other = "challenger" if role == "champion" else "champion"
    return {
        "promotion.decision": decision["decision"],
        "promotion.reason": decision["reason"],
        "promotion.role": role,
        "promotion.against_version": str(decision[other]["version"]),
        "promotion.evidence": decision["evidence"],
        "promotion.rows": str(decision["rows"]),
        "promotion.champion_accuracy": f"{decision['champion']['accuracy']:.6f}",
        "promotion.challenger_accuracy": f"{decision['challenger']['accuracy']:.6f}",
        "promotion.gain": f"{decision['gain']:.6f}",
        "promotion.gain_se": f"{decision['gain_se']:.6f}",
        "promotion.mcnemar_p": f"{decision['mcnemar_p']:.6g}",
        "promotion.at": decision["at"],
        "promotion.gate": (
            f"min_rows={decision['gate']['min_rows']} min_gain={decision['gate']['min_gain']:g}"
            f" alpha={decision['gate']['alpha']:g}"
        ),
    }


def text(decision: dict[str, Any]) -> str:
    champion, challenger = decision["champion"], decision["challenger"]
    return "\n".join(
        [
            f"{decision['decision']}: {decision['name']} v{challenger['version']}"
            f" ({challenger['alias']}) against v{champion['version']} ({champion['alias']})",
            f"evidence {decision['evidence']}: {decision['rows']} labelled rows, both models",
            f"champion accuracy {champion['accuracy']:.4f}",
            f"challenger accuracy {challenger['accuracy']:.4f}",
            f"gain {decision['gain']:+.4f} +/- {decision['gain_se']:.4f}"
            f" (McNemar p {decision['mcnemar_p']:.3g})",
            f"reason: {decision['reason']}",
        ]
    )


def held_out(dataset: Dataset, train_size: float, random_state: int) -> tuple[Any, Any]:
    """The held-out part of the trainer's data: the rows its split leaves out of training."""
    from trainer import model

    parts = model.split(dataset, train_size=train_size, random_state=random_state)
    return parts.x_valid, parts.y_valid


# -- the registry ---------------------------------------------------------------------------


def resolve(name: str, champion_alias: str, challenger_alias: str) -> Versions:
    """The versions the two aliases point at (TrainerError when either is missing, or both
    name one version: nothing to compare)."""
    from trainer.tracking import find_alias

    found = {}
    for alias in (champion_alias, challenger_alias):
        version = find_alias(name, alias)
        if version is None:
            raise TrainerError(f"models:/{name}@{alias} does not exist")
        found[alias] = str(version.version)
    if found[champion_alias] == found[challenger_alias]:
        raise TrainerError(
            f"@{champion_alias} and @{challenger_alias} both name version"
            f" {found[champion_alias]} of {name}: nothing to compare"
        )
    return Versions(
        name, found[champion_alias], found[challenger_alias], champion_alias, challenger_alias
    )


def apply(decision: dict[str, Any], versions: Versions) -> None:
    """Tag both versions with the decision; when promoted, point the champion alias at the
    challenger's version."""
    import mlflow

    client = mlflow.MlflowClient()
    for role, version in (("champion", versions.champion), ("challenger", versions.challenger)):
        for key, value in tags(decision, role).items():
            client.set_model_version_tag(versions.name, version, key, value)
    if decision["decision"] == "promoted":
        client.set_registered_model_alias(
            versions.name, versions.champion_alias, versions.challenger
        )


def where(url: str) -> str:
    return redact(url)
