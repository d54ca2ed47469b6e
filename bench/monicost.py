"""The drift and accuracy monitoring's cost, for `bench/run.py --monitoring`.

With `--monitoring`, case (b) also drives "api (drift off)": the same API as "api" with
DRIFT_METRICS=false, so the two differ only by the drift counters (every predicted row binned
per feature against the model's baseline, off the request path). The target: "api" (drift
on, the default) req/s >= 0.95 x "api (drift off)", in the same run.

Then, apart from wrk, `/metrics` itself for a wide model: a 50-feature classifier trained here
on synthetic data, saved as an MLflow model folder with its drift baseline, served by the API
with 1 and 2 workers (2: Prometheus' multiprocess mode merges the workers' files at every
scrape). After every bin of every feature holds rows, `/metrics` is fetched `SCRAPES` times:
its size, its series, and the time of a scrape (median and the slowest).

Self-contained (bench/run.py imports it; it imports nothing from bench/run.py).
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

SERVER = "api (drift off)"
CASE = "b"
TARGET = 0.95  # api req/s >= 0.95 x api (drift off) req/s
ENV = {"DRIFT_METRICS": "false"}
FEATURES = 50
TRAIN_ROWS = 2_000
SCRAPES = 50
LOAD_REQUESTS = 200
LOAD_ROWS = 20


def targets(cases: dict[str, dict[str, Any]]) -> list[tuple[str, bool | None, str]]:
    """(target, passed or None when not measured, the figures)."""
    label = f"({CASE}) drift on req/s >= {TARGET:g} x drift off"
    servers = cases.get(CASE, {}).get("servers", {})
    on, off = servers.get("api"), servers.get(SERVER)
    if on is None or off is None:
        return [(label, None, "not measured")]
    ratio = on["rps"] / off["rps"] if off["rps"] else 0.0
    return [(label, ratio >= TARGET, f"{on['rps']:,.0f} vs {off['rps']:,.0f} ({ratio:.3f}x)")]


def wide_model(folder: Path) -> Path:
    """A 50-feature, 3-class scikit-learn pipeline saved as an MLflow model folder with the
    drift baseline the trainer logs (trainer.reference.baseline)."""
    import mlflow.sklearn
    import pandas as pd
    from mlflow.models import infer_signature
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from model_serving.baseline import METADATA_KEY
    from trainer.reference import baseline

    x_arr, y_arr = make_classification(
        n_samples=TRAIN_ROWS, n_features=FEATURES, n_informative=10, n_classes=3, random_state=0
    )
    x = pd.DataFrame(x_arr, columns=[f"f{i:02d}" for i in range(FEATURES)])
    y = pd.Series(y_arr, name="target")
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(x, y)
    path = folder / "wide-model"
    mlflow.sklearn.save_model(
        model,
        path,
        signature=infer_signature(x, model.predict(x)),
        metadata={METADATA_KEY: baseline(x, y)},
    )
    return path


def _load(url: str, rows: list[dict[str, float]]) -> None:
    body = json.dumps({"dataframe_records": rows}).encode()
    request = urllib.request.Request(
        url + "/predict", data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as resp:
        resp.read()


def _scrape(url: str) -> tuple[float, bytes]:
    t0 = time.perf_counter()
    with urllib.request.urlopen(url + "/metrics", timeout=30) as resp:
        text = resp.read()
    return time.perf_counter() - t0, text


def _series(text: bytes, prefix: str) -> int:
    return sum(line.startswith(prefix) for line in text.decode().splitlines())


def scrape_cost(start: Callable[[str, dict[str, str], int], Any]) -> list[dict[str, Any]]:
    """`/metrics` of the 50-feature model at 1 and 2 workers, drift on and off. `start(model,
    env, workers)` is a context manager that serves `model` and yields its base URL."""
    import numpy as np

    found = []
    with tempfile.TemporaryDirectory() as tmp:
        model = wide_model(Path(tmp))
        rng = np.random.default_rng(0)
        for workers in (1, 2):
            for drift in (True, False):
                env = {} if drift else dict(ENV)
                with start(str(model), env, workers) as url:
                    for _ in range(LOAD_REQUESTS):
                        rows = rng.normal(0, 2, size=(LOAD_ROWS, FEATURES))
                        _load(url, [{f"f{i:02d}": float(v) for i, v in enumerate(r)} for r in rows])
                    time.sleep(1.0)  # the rows are binned every quarter second
                    times, text = [], b""
                    for _ in range(SCRAPES):
                        seconds, text = _scrape(url)
                        times.append(seconds)
                    found.append(
                        {
                            "workers": workers,
                            "drift": drift,
                            "bytes": len(text),
                            "series": _series(text, ""),
                            "drift_series": _series(text, "drift_"),
                            "median_ms": statistics.median(times) * 1000,
                            "max_ms": max(times) * 1000,
                        }
                    )
    return found


def report_lines(cases: dict[str, dict[str, Any]], scrapes: list[dict[str, Any]]) -> list[str]:
    """The monitoring's side of case (b) and the wide model's scrapes, for bench/run.py."""
    lines = ["targets (drift and accuracy monitoring):"]
    for label, passed, detail in targets(cases):
        verdict = "n/a " if passed is None else ("PASS" if passed else "FAIL")
        lines.append(f"  {verdict}  {label:<44} {detail}")
    if scrapes:
        lines += ["", f"/metrics of a {FEATURES}-feature model ({SCRAPES} scrapes each):"]
        lines.append(
            f"  {'workers':>7}  {'drift':<5}  {'bytes':>9}  {'lines':>6}  {'drift_*':>7}"
            f"  {'median ms':>9}  {'max ms':>7}"
        )
        for s in scrapes:
            lines.append(
                f"  {s['workers']:>7}  {'on' if s['drift'] else 'off':<5}  {s['bytes']:>9,}"
                f"  {s['series']:>6,}  {s['drift_series']:>7,}  {s['median_ms']:>9.1f}"
                f"  {s['max_ms']:>7.1f}"
            )
    return lines


if __name__ == "__main__":  # pragma: no cover
    sys.exit("run through bench/run.py --monitoring")
