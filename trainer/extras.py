"""What each trainer command needs beyond the base install, and the one line that says so.

`pip install .` brings the API's dependencies only (mlflow-skinny among them). The trainer's
commands need the `[trainer]` extra (the Postgres driver; the full mlflow: SQL stores, the
embedded default), `report` needs the `[report]` extra (the trainer's, plus Evidently). Each is
checked by the modules it brings, without importing them, before a command starts: a missing
one is a line naming the `pip install` to run, not an ImportError's traceback halfway through.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass


@dataclass(frozen=True)
class Extra:
    """An optional dependency group of pyproject.toml and the top-level modules it brings."""

    name: str
    modules: tuple[str, ...]

    @property
    def install(self) -> str:
        return f"pip install '.[{self.name}]'"

    def missing(self) -> list[str]:
        """The modules of this extra that cannot be imported here."""
        return [m for m in self.modules if importlib.util.find_spec(m) is None]


# psycopg2: the driver (psycopg2-binary); sqlalchemy, alembic: what full mlflow adds to
# mlflow-skinny for SQL tracking stores such as the embedded default.
TRAINER = Extra("trainer", ("psycopg2", "sqlalchemy", "alembic"))
REPORT = Extra("report", (*TRAINER.modules, "evidently"))


class MissingExtra(Exception):
    """A command's extra is not installed: reported as one line, exit 2."""

    def __init__(self, extra: Extra, missing: list[str]) -> None:
        super().__init__(
            f"this command needs the [{extra.name}] extra (no module {', '.join(missing)}):"
            f" {extra.install}"
        )


def require(extra: Extra) -> None:
    """Raise MissingExtra unless every module of `extra` can be imported."""
    missing = extra.missing()
    if missing:
        raise MissingExtra(extra, missing)
