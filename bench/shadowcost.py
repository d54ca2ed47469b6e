"""The shadow model's cost, for `bench/run.py --shadow`.

With `--shadow`, case (b) also drives "api (shadow)": the same API as "api" with a shadow model
(SHADOW_MODEL_URI, here the served model itself: the same predict cost a challenger of the same
kind has) and SHADOW_SAMPLE=1.0, so every answered row is offered to the shadow. The targets, in
the same run: "api (shadow)" req/s >= 0.7 x "api", and its p99 <= 1.3 x "api"'s. Its /metrics
is read before and after the measure: the rows the shadow predicted and those it dropped (its
queue full) show whether it kept up, so a low cost is not a shadow that did nothing.

With case (c) in the run too, "api (shadow 0.1)" (SHADOW_SAMPLE=0.1: a tenth of the 1000-row
requests shadowed) is measured in (c) beside "api"; its figures are stated, no target.

Self-contained (bench/run.py imports it; it imports nothing from bench/run.py).
"""

from __future__ import annotations

import re
import sys
import urllib.request
from typing import Any

SERVER = "api (shadow)"
CASE = "b"
SAMPLED = "api (shadow 0.1)"
SAMPLED_CASE = "c"
SAMPLE = 0.1
RPS_TARGET = 0.7  # api (shadow) req/s >= 0.7 x api req/s
P99_TARGET = 1.3  # api (shadow) p99 <= 1.3 x api p99


def env(model_uri: str, sample: float = 1.0) -> dict[str, str]:
    return {"SHADOW_MODEL_URI": model_uri, "SHADOW_SAMPLE": str(sample)}


def measured_in(server: str, case: str) -> bool:
    """Whether bench/run.py measures `server` in `case` (the shadow's servers: one case each)."""
    if server == SERVER:
        return case == CASE
    if server == SAMPLED:
        return case == SAMPLED_CASE
    return True


def counts(predict_url: str) -> dict[str, float]:
    """The shadow's counters in the server's /metrics: rows predicted, dropped, failed."""
    base = predict_url.rsplit("/", 1)[0]
    with urllib.request.urlopen(base + "/metrics", timeout=30) as resp:
        text = resp.read().decode()

    def total(name: str) -> float:
        return sum(float(v) for v in re.findall(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M))

    return {
        "shadowed": total("shadow_rows_total"),
        "dropped": total("shadow_rows_dropped_total"),
        "failed": total("shadow_failed_rows_total"),
    }


def tally(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {k: after[k] - before[k] for k in after}


def targets(cases: dict[str, dict[str, Any]]) -> list[tuple[str, bool | None, str]]:
    """(target, passed or None when not measured, the figures)."""
    servers = cases.get(CASE, {}).get("servers", {})
    on, off = servers.get(SERVER), servers.get("api")
    rps = f"({CASE}) shadow on req/s >= {RPS_TARGET:g} x off"
    p99 = f"({CASE}) shadow on p99 <= {P99_TARGET:g} x off"
    if on is None or off is None:
        return [(rps, None, "not measured"), (p99, None, "not measured")]
    r = on["rps"] / off["rps"] if off["rps"] else 0.0
    q = on["p99_ms"] / off["p99_ms"] if off["p99_ms"] else float("inf")
    return [
        (rps, r >= RPS_TARGET, f"{on['rps']:,.0f} vs {off['rps']:,.0f} ({r:.3f}x)"),
        (p99, q <= P99_TARGET, f"{on['p99_ms']:.2f} vs {off['p99_ms']:.2f} ms ({q:.3f}x)"),
    ]


def report_lines(cases: dict[str, dict[str, Any]]) -> list[str]:
    lines = ["targets (shadow model, SHADOW_SAMPLE=1.0):"]
    for label, passed, detail in targets(cases):
        verdict = "n/a " if passed is None else ("PASS" if passed else "FAIL")
        lines.append(f"  {verdict}  {label:<44} {detail}")
    shadow = cases.get(CASE, {}).get("servers", {}).get(SERVER, {}).get("shadow")
    if shadow:
        lines.append(f"  during the measure: {_tally_line(shadow)}")
    sampled = [(key, c["servers"]) for key, c in cases.items() if SAMPLED in c["servers"]]
    if sampled:
        lines += ["", f"({SAMPLED_CASE}) with SHADOW_SAMPLE={SAMPLE:g}, against api (no target):"]
    for key, servers in sampled:
        on, off = servers[SAMPLED], servers.get("api")
        figures = f"{on['rps'] * 1000:,.0f} rows/s, p99 {on['p99_ms']:.2f} ms"
        if off is not None and off["rps"] and off["p99_ms"]:
            figures += (
                f" vs {off['rps'] * 1000:,.0f} rows/s, p99 {off['p99_ms']:.2f} ms"
                f" ({on['rps'] / off['rps']:.3f}x, p99 {on['p99_ms'] / off['p99_ms']:.3f}x)"
            )
        lines.append(f"  {key:<22} {figures}")
        if on.get("shadow"):
            lines.append(f"  {'':<22} {_tally_line(on['shadow'])}")
    return lines


def _tally_line(shadow: dict[str, float]) -> str:
    offered = shadow["shadowed"] + shadow["dropped"] + shadow["failed"]
    share = shadow["shadowed"] / offered if offered else 0.0
    return (
        f"{shadow['shadowed']:,.0f} rows shadowed, {shadow['dropped']:,.0f} dropped,"
        f" {shadow['failed']:,.0f} failed ({share:.1%} of the rows offered shadowed)"
    )


if __name__ == "__main__":  # pragma: no cover
    sys.exit("run through bench/run.py --shadow")
