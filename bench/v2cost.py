"""The Open Inference Protocol (V2) lane's speed, for `bench/run.py --v2`.

With `--v2`, case (b) also drives "api (V2)": the same API process as "api", right after it,
through POST /v2/models/<name>/infer with the V2 body that means the same one row as
/predict's: one FP64 tensor of shape [1] per feature (`--v2 columns`, what clients build
from named inputs) or one [1, 4] tensor (`--v2 matrix`). Before any measure, both lanes must
answer the same predictions for the bench's payloads (the one row and the 1000 rows); the
target: V2 req/s >= 0.9 x /predict's req/s, in the same run.

Self-contained (bench/run.py imports it; it imports nothing from bench/run.py).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

SERVER = "api (V2)"
CASE = "b"
TARGET = 0.9  # V2 req/s >= 0.9 x /predict req/s
LAYOUTS = ("columns", "matrix")


def infer_url(predict_url: str, model: str) -> str:
    """The V2 infer URL of the API whose /predict is `predict_url`."""
    return predict_url.removesuffix("/predict") + f"/v2/models/{model}/infer"


def body(rows: list[list[float]], features: list[str], layout: str) -> bytes:
    """A V2 inference request carrying `rows` (values in `features` order)."""
    if layout == "columns":
        inputs = [
            {"name": name, "datatype": "FP64", "shape": [len(rows)], "data": [r[i] for r in rows]}
            for i, name in enumerate(features)
        ]
    else:
        shape = [len(rows), len(features)]
        inputs = [{"name": "input-0", "datatype": "FP64", "shape": shape, "data": rows}]
    return json.dumps({"inputs": inputs}, separators=(",", ":")).encode()


def _post(url: str, data: bytes) -> tuple[int, Any]:
    request = urllib.request.Request(
        url, data=data, method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()[:500]


def check(
    predict_url: str,
    v2_url: str,
    payloads: dict[str, bytes],
    v2_payloads: dict[str, bytes],
) -> str | None:
    """None when V2 answers every payload as /predict does; else what differs."""
    for label, data in payloads.items():
        status, want = _post(predict_url, data)
        if status != 200:
            return f"/predict answered {status} to the {label} payload: {want!r}"
        status, got = _post(v2_url, v2_payloads[label])
        if status != 200:
            return f"V2 answered {status} to the {label} payload: {got!r}"
        outputs = got.get("outputs") or [{}]
        if len(outputs) != 1 or outputs[0].get("data") != want["predictions"]:
            return f"V2 answers the {label} payload differently from /predict"
    return None


def targets(cases: dict[str, dict[str, Any]]) -> list[tuple[str, bool | None, str]]:
    """Issue 12's target: (target, passed or None when not measured, the figures)."""
    label = f"({CASE}) V2 req/s >= {TARGET:g} x /predict"
    servers = cases.get(CASE, {}).get("servers", {})
    predict, v2 = servers.get("api"), servers.get(SERVER)
    if predict is None or v2 is None:
        return [(label, None, "not measured")]
    ratio = v2["rps"] / predict["rps"] if predict["rps"] else 0.0
    return [
        (label, ratio >= TARGET, f"{v2['rps']:,.0f} vs {predict['rps']:,.0f} ({ratio:.3f}x)"),
        (f"({CASE}) V2: no failed request", v2["errors"] == 0, f"{v2['errors']} errors"),
    ]


def report_lines(cases: dict[str, dict[str, Any]], layout: str) -> list[str]:
    """The V2 side of case (b), for bench/run.py's report."""
    lines = [f"targets (V2 body: {layout}, the same rows as /predict's):"]
    for label, passed, detail in targets(cases):
        verdict = "n/a " if passed is None else ("PASS" if passed else "FAIL")
        lines.append(f"  {verdict}  {label:<36} {detail}")
    return lines
