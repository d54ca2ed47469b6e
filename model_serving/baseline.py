"""The drift baseline a model is logged with, and the population stability index against it.

The trainer computes it from the training rows and logs it two ways: in the model's MLmodel
`metadata` under `METADATA_KEY` (so it travels with the model to any URI, the API's cache and
a cluster) and as the run artifact `baseline.json` for people to read. The API reads it from
the model's metadata; a model without one serves, without drift metrics.

    {"version": 1, "rows": <training rows>,
     "features": {<name>: {"edges": [<9 inner decile edges, ascending>],
                           "shares": [<10 training shares, one per bin>]}},
     "classes": {<class as a string>: <training share>}}

Bin i holds values v with edges[i-1] < v <= edges[i] (bin 0: v <= edges[0]; bin 9: v >
edges[8]).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Sequence
from typing import Any

METADATA_KEY = "model_serving_baseline"
ARTIFACT_NAME = "baseline.json"
FORMAT_VERSION = 1
BINS = 10
_EPSILON = 1e-4  # a share of 0 would make the PSI infinite


def bin_index(edges: Sequence[float], value: float) -> int:
    """The bin `value` falls in."""
    return bisect.bisect_left(edges, value)


def shares(edges: Sequence[float], values: Iterable[float]) -> list[float]:
    """The share of `values` in each of the len(edges) + 1 bins."""
    counts = [0] * (len(edges) + 1)
    n = 0
    for value in values:
        counts[bin_index(edges, value)] += 1
        n += 1
    return [c / n if n else 0.0 for c in counts]


def psi(expected: Sequence[float], actual: Sequence[float]) -> float:
    """Population stability index of `actual` shares against `expected` ones (same bins).

    Under 0.1: no real change; 0.1 to 0.2: some; over 0.2: the population has shifted."""
    total = 0.0
    for e, a in zip(expected, actual, strict=True):
        e, a = max(e, _EPSILON), max(a, _EPSILON)
        total += (a - e) * math.log(a / e)
    return total


def is_baseline(value: Any) -> bool:
    """Whether `value` looks like a baseline this module can read."""
    return (
        isinstance(value, dict)
        and value.get("version") == FORMAT_VERSION
        and isinstance(value.get("features"), dict)
        and isinstance(value.get("classes"), dict)
    )
