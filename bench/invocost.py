"""MLflow's scoring-server lane (POST /invocations), for `bench/run.py --invocations` and the
CSV shape of case (c).

With `--invocations`, case (b) also drives "api (/invocations)": the same API process as
"api", right after it, through POST /invocations with the same one-row body /predict gets
(dataframe_split or dataframe_records: MLflow's formats). Before any measure, both routes must
answer the same predictions for the bench's payloads; the target: /invocations req/s >= 0.9 x
/predict's, in the same run.

Case (c)'s `csv` shape sends the 1000 rows as `text/csv` (a header and a line per row), to the
API's /invocations and to mlflow models serve's, checked to answer as the JSON bodies do.

Self-contained (bench/run.py imports it; it imports nothing from bench/run.py).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

SERVER = "api (/invocations)"
CASE = "b"
TARGET = 0.9  # /invocations req/s >= 0.9 x /predict req/s
CSV_SHAPE = "csv"
JSON = "application/json"
CSV = "text/csv"


def url(predict_url: str) -> str:
    """The /invocations URL of the API whose /predict is `predict_url` (mlflow's is as is)."""
    return predict_url.removesuffix("/predict") + "/invocations"


def content_type(shape: str | None) -> str:
    return CSV if shape == CSV_SHAPE else JSON


def csv_body(rows: list[list[float]], features: list[str]) -> bytes:
    """`rows` (values in `features` order) as CSV with a header, as to_csv(index=False) writes."""
    lines = [",".join(features), *(",".join(repr(v) for v in row) for row in rows)]
    return ("\n".join(lines) + "\n").encode()


def post(target: str, data: bytes, kind: str = JSON) -> tuple[int, Any]:
    request = urllib.request.Request(
        target, data=data, method="POST", headers={"Content-Type": kind}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()[:500]


def check(predict_url: str, invocations_url: str, payloads: dict[str, bytes]) -> str | None:
    """None when /invocations answers every payload as /predict does; else what differs."""
    for label, data in payloads.items():
        status, want = post(predict_url, data)
        if status != 200:
            return f"/predict answered {status} to the {label} payload: {want!r}"
        status, got = post(invocations_url, data)
        if status != 200:
            return f"/invocations answered {status} to the {label} payload: {got!r}"
        if got != {"predictions": want["predictions"]}:
            return f"/invocations answers the {label} payload differently from /predict"
    return None


def targets(cases: dict[str, dict[str, Any]]) -> list[tuple[str, bool | None, str]]:
    """(target, passed or None when not measured, the figures)."""
    label = f"({CASE}) /invocations req/s >= {TARGET:g} x /predict"
    servers = cases.get(CASE, {}).get("servers", {})
    predict, invocations = servers.get("api"), servers.get(SERVER)
    if predict is None or invocations is None:
        return [(label, None, "not measured")]
    ratio = invocations["rps"] / predict["rps"] if predict["rps"] else 0.0
    figures = f"{invocations['rps']:,.0f} vs {predict['rps']:,.0f} ({ratio:.3f}x)"
    errors = invocations["errors"]
    return [
        (label, ratio >= TARGET, figures),
        (f"({CASE}) /invocations: no failed request", errors == 0, f"{errors} errors"),
    ]


def report_lines(cases: dict[str, dict[str, Any]]) -> list[str]:
    """The /invocations side of case (b), for bench/run.py's report."""
    lines = ["targets (/invocations, the same body as /predict's):"]
    for label, passed, detail in targets(cases):
        verdict = "n/a " if passed is None else ("PASS" if passed else "FAIL")
        lines.append(f"  {verdict}  {label:<44} {detail}")
    return lines
