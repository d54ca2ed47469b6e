"""Inference params: what a model's signature declares beside its inputs (MLflow's
`ParamSchema`), and the check of a request's `params` against it.

A request's params are checked here, before the model sees them, so that a wrong one is named
in the service's one error shape: its name, the type it must have, never its value. The types
are MLflow's, with its conversions (an integer where a float is declared, a float where a
double is), and `shape: [-1]` for a list of values. A param the request leaves out takes the
declared default (MLflow's pyfunc fills it in); one the schema does not declare is refused,
where MLflow logs a warning and drops it (a misspelt param would otherwise be silently
ignored).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from app.errors import InvalidInput, summarize

LOC = "params"


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _datetime(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        return not isinstance(np.datetime64(value).item(), int)
    except ValueError:
        return False


_CHECKS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "double": (_number, "a number"),
    "float": (_number, "a number"),
    "long": (_integer, "an integer"),
    "integer": (_integer, "an integer"),
    "boolean": (lambda v: isinstance(v, bool), "true or false"),
    "string": (lambda v: isinstance(v, str), "a string"),
    "binary": (lambda v: isinstance(v, str), "a string"),
    "datetime": (_datetime, "a date or date-time string (ISO 8601)"),
    "object": (lambda v: isinstance(v, dict), "an object"),
}


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    kind: str
    default: Any
    is_list: bool

    def problem(self, value: Any) -> str | None:
        """What is wrong with `value` for this param, or None (null is taken, as MLflow does)."""
        if value is None:
            return None
        check, wanted = _CHECKS.get(self.kind, (lambda v: True, "any value"))
        if self.is_list:
            if not isinstance(value, list):
                return f"expected a list of {self.kind} values"
            return None if all(check(v) for v in value) else f"expected a list of {wanted}s"
        return None if check(value) else f"expected {wanted} ({self.kind})"

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.kind,
            "shape": [-1] if self.is_list else None,
            "default": self.default,
        }


class ParamsSchema:
    """The params a model's signature declares."""

    def __init__(self, params: list[Param]) -> None:
        self.params = {p.name: p for p in params}

    @classmethod
    def of(cls, spec: list[dict[str, Any]] | None) -> ParamsSchema | None:
        """From MLflow's `signature.params.to_dict()`; None when the model declares none."""
        if not spec:
            return None
        return cls(
            [
                Param(p["name"], p["type"], p.get("default"), tuple(p.get("shape") or ()) == (-1,))
                for p in spec
            ]
        )

    def check(self, params: dict[str, Any]) -> dict[str, Any]:
        """The request's params, checked (InvalidInput names every wrong or unknown one)."""
        details: list[dict[str, Any]] = []
        for name, value in params.items():
            param = self.params.get(name)
            if param is None:
                known = ", ".join(sorted(self.params))
                details.append({"loc": [LOC], "msg": f"unknown param; the model takes: {known}"})
                continue
            problem = param.problem(value)
            if problem is not None:
                details.append({"loc": [LOC, name], "msg": problem})
        if details:
            raise InvalidInput(summarize(details), details)
        return {name: float(v) if self._is_float(name, v) else v for name, v in params.items()}

    def _is_float(self, name: str, value: Any) -> bool:
        return self.params[name].kind in ("double", "float") and _integer(value)

    def describe(self) -> list[dict[str, Any]]:
        """For /model-info."""
        return [p.describe() for p in self.params.values()]
