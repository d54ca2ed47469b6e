"""The promotion gate's statistics: two models judged on the same labelled rows (pure functions).

Both models predicted every row, so the comparison is paired: what matters is the rows where
exactly one of them is right. With b rows only the champion got right and c rows only the
challenger did, out of n, the gain in accuracy is (c - b) / n, and its standard error is that
of the mean of the per-row differences d (+1, 0 or -1):

    se = sqrt((b + c) / n - ((c - b) / n) ** 2) / sqrt(n)

(much smaller than the unpaired error of two accuracies, since the rows both get right or both
get wrong add nothing to it). The gate holds when there are at least `min_rows` rows and the
gain's one-sided lower bound, gain - z * se, is above `min_gain`. McNemar's exact test (the
chance of c or more of the b + c discordant rows going the challenger's way if both models were
as good) is reported beside it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import Any


@dataclass(frozen=True)
class Gate:
    """The gate's settings."""

    min_rows: int = 200
    min_gain: float = 0.0
    alpha: float = 0.05
    """One-sided: the chance of promoting a challenger that is no better than `min_gain`."""

    @property
    def z(self) -> float:
        return NormalDist().inv_cdf(1 - self.alpha)


@dataclass(frozen=True)
class Comparison:
    """Two models on the same labelled rows, and the gate's verdict."""

    rows: int
    champion_accuracy: float
    challenger_accuracy: float
    gain: float
    gain_se: float
    lower_bound: float
    only_champion_right: int
    only_challenger_right: int
    mcnemar_p: float
    promote: bool
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def mcnemar_p(only_champion: int, only_challenger: int) -> float:
    """One-sided exact McNemar: P(X >= only_challenger), X ~ Binomial(b + c, 1/2)."""
    from scipy.stats import binomtest

    n = only_champion + only_challenger
    if n == 0:
        return 1.0
    return float(binomtest(only_challenger, n, 0.5, alternative="greater").pvalue)


def compare(
    champion_right: Sequence[bool], challenger_right: Sequence[bool], gate: Gate
) -> Comparison:
    """Judge the challenger against the champion on the same rows (row i of both sequences is
    the same labelled row)."""
    if len(champion_right) != len(challenger_right):
        raise ValueError("both models must be judged on the same rows")
    n = len(champion_right)
    b = sum(1 for a, c in zip(champion_right, challenger_right, strict=True) if a and not c)
    c = sum(1 for a, c in zip(champion_right, challenger_right, strict=True) if c and not a)
    champion = sum(map(bool, champion_right)) / n if n else 0.0
    challenger = sum(map(bool, challenger_right)) / n if n else 0.0
    gain = (c - b) / n if n else 0.0
    se = math.sqrt(max(0.0, (b + c) / n - gain**2) / n) if n else 0.0
    lower = gain - gate.z * se
    if n < gate.min_rows:
        promote, reason = False, f"too few labelled rows: {n} < --min-rows {gate.min_rows}"
    elif gain <= gate.min_gain:
        promote, reason = False, f"no gain: {gain:+.4f} is not above --min-gain {gate.min_gain:g}"
    elif lower <= gate.min_gain:
        promote, reason = (
            False,
            f"gain within sampling error: {gain:+.4f} +/- {se:.4f}, its {1 - gate.alpha:.0%}"
            f" lower bound {lower:+.4f} is not above --min-gain {gate.min_gain:g}",
        )
    else:
        promote, reason = (
            True,
            f"gain {gain:+.4f} +/- {se:.4f}: its {1 - gate.alpha:.0%} lower bound {lower:+.4f}"
            f" is above --min-gain {gate.min_gain:g}",
        )
    return Comparison(
        rows=n,
        champion_accuracy=champion,
        challenger_accuracy=challenger,
        gain=gain,
        gain_se=se,
        lower_bound=lower,
        only_champion_right=b,
        only_challenger_right=c,
        mcnemar_p=mcnemar_p(b, c),
        promote=promote,
        reason=reason,
    )
