"""Benchmark: this API against `mlflow models serve` and a floor app, side by side.

    .venv/bin/python bench/run.py [--duration 10] [--warmup 2] [--workers 1]
                                  [--only api,mlflow,floor] [--cases a,b,c]
                                  [--mlflow-workers N] [--format split|records] [--log]
                                  [--c-shapes dataframe_records,records,dataframe_split,instances]
                                  [--v2 [columns|matrix]] [--invocations] [--c-workers N]

In one run it
1. makes (or reuses) the reference model, the seed's Pipeline(StandardScaler, SVC) on iris,
   registered as models:/sk_model@champion in an SQLite store under bench/.store/;
2. starts, each on a free loopback port in its own process group, this API
   (`python -m app`), `mlflow models serve --env-manager local` on the same model, and the
   floor app (bench/floor_app.py: parse the JSON body, answer a constant, on the API's
   uvicorn settings);
3. checks that the API and mlflow return the same predictions for every payload, and stops
   if they do not;
4. drives each server with wrk (installed with apt-get if missing) through bench/wrk_post.lua:
   (a) 1 row, 1 connection, 1 thread; (b) 1 row, 32 connections, 2 threads;
   (c) 1000 rows per request, 4 connections, 2 threads, once per body shape (--c-shapes:
   dataframe_records, records, dataframe_split, instances, csv; mlflow gets dataframe_records
   for records, which it does not read, and csv goes to both servers' /invocations);
   a warm-up run before each measure. Before the servers
   start, a child pinned to one core times the estimator's own predict on the same 1000 rows
   (the in-process one-core limit (c) is compared with, per wall second and per CPU-second);
5. prints req/s, rows/s, p50, p99 and errors per case and server, the API's ratios to
   mlflow and to the floor, the machine, and the targets with PASS/FAIL, and writes it
   all to bench/results/<timestamp>.json.

With --log, case (b) also drives "api+log": the API with its prediction log on, in
a fresh PostgreSQL database dropped afterwards; bench/logcost.py says how the rows are counted.
With --v2, case (b) also drives "api (V2)": the same API through its Open Inference Protocol
lane with the same rows, checked to answer as /predict does (bench/v2cost.py).
With --invocations, case (b) also drives "api (/invocations)": the same API through MLflow's
scoring-server route with the same body, checked to answer as /predict does (bench/invocost.py);
case (c)'s csv shape sends the 1000 rows as text/csv to the API's and mlflow's /invocations.
With --monitoring, case (b) also drives "api (drift off)": the API with DRIFT_METRICS=false, and
then /metrics of a 50-feature model is fetched for its size and scrape time (bench/monicost.py).
With --c-workers N, case (c) also drives "api-wN" (the API with N workers) and "mlflow-wN"
(`mlflow models serve -w N`), beside the servers at their own worker counts: both cores for
large requests, against MLflow given as many.

Every server it started is stopped at the end (SIGTERM to its process group, then SIGKILL),
on success, error or Ctrl-C. Only 127.0.0.1 is used. Exit status: 0 when every target that
could be checked passed, 1 when one failed, 2 on a setup error (e.g. predictions differ).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
STORE = BENCH / ".store"
RESULTS = BENCH / "results"
LUA = BENCH / "wrk_post.lua"
HOST = "127.0.0.1"
MODEL_URI = "models:/sk_model@champion"
NOISY_CORES = 0.2  # CPU used by processes not ours during a run, above which we warn

sys.path.insert(0, str(ROOT))
import against  # noqa: E402  (bench/, this script's folder)
import invocost  # noqa: E402
import logcost  # noqa: E402  (bench/, this script's folder)
import monicost  # noqa: E402
import v2cost  # noqa: E402

from tests.servers import Server, free_port, python_env  # noqa: E402
from trainer.data import IRIS_FEATURES, iris_frame  # noqa: E402

SERVERS = (
    "api", monicost.SERVER, v2cost.SERVER, invocost.SERVER, logcost.SERVER, "mlflow", "floor"
)  # fmt: skip


@dataclass(frozen=True)
class Case:
    name: str
    title: str
    rows: int
    connections: int
    threads: int


CASES = {
    "a": Case("a", "1 row, 1 connection", 1, 1, 1),
    "b": Case("b", "1 row, 32 connections", 1, 32, 2),
    "c": Case("c", "1000 rows, 4 connections", 1000, 4, 2),
}
# Case (c) runs once per body shape: what pandas' to_dict(orient="records") and
# hand-written clients send, the API's own, MLflow's column split, TF-serving's, and CSV (to
# /invocations, the API's and mlflow's: bench/invocost.py).
C_SHAPES = ("dataframe_records", "records", "dataframe_split", "instances", invocost.CSV_SHAPE)
# mlflow models serve has no {"records": [...]}: it gets the same records as dataframe_records.
MLFLOW_SHAPE = {"records": "dataframe_records"}


def with_workers(server: str, workers: int) -> str:
    """The name of `server` (api, mlflow) started with `workers` workers for case (c)."""
    return f"{server}-w{workers}"


def is_mlflow(server: str) -> bool:
    return server == "mlflow" or server.startswith("mlflow-w")


def is_with_workers(server: str) -> bool:
    """Whether `server` is one --c-workers started (api-wN, mlflow-wN): case (c) only."""
    return server.startswith(("api-w", "mlflow-w"))


class BenchError(Exception):
    """A setup problem that makes the figures meaningless: stop, say why."""


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


# -- setup -----------------------------------------------------------------------------------


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0:
        raise BenchError("wrk is not on PATH; install it (Debian/Ubuntu: apt-get install wrk)")
    log("wrk not found: apt-get install -y wrk")
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "wrk"]):
        subprocess.run(cmd, check=True, timeout=600, stdin=subprocess.DEVNULL)
    found = shutil.which("wrk")
    if not found:
        raise BenchError("apt-get installed wrk but it is still not on PATH")
    return found


def store_env() -> dict[str, str]:
    """The environment of every process started here: the bench store, the venv's bin first
    (`mlflow models serve` execs `uvicorn` from PATH); OPENBLAS_* and the rest pass through."""
    venv_bin = str(Path(sys.executable).parent)
    path = os.pathsep.join([venv_bin, os.environ.get("PATH", "")])
    return python_env({"MLFLOW_TRACKING_URI": f"sqlite:///{STORE / 'mlflow.db'}", "PATH": path})


def ensure_model() -> dict[str, Any]:
    """Train and register the reference model once; later runs reuse it."""
    STORE.mkdir(parents=True, exist_ok=True)
    args = ["train", "--register", "--alias", "champion", "--skip-if-exists", "--json"]
    proc = subprocess.run(
        [sys.executable, "-m", "trainer", *args],
        env=store_env(),
        cwd=STORE,
        capture_output=True,
        text=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
    )
    if proc.returncode != 0:
        raise BenchError(f"trainer failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    info: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    log(
        f"model {info['registered_model_uri']} = version {info['version']}, run {info['run_id']}"
        f" ({'reused' if info.get('skipped') else 'trained'})"
    )
    return info


def make_rows() -> tuple[list[float], list[list[float]]]:
    """One row, and 1000 rows spread around the iris data (fixed seed), in IRIS_FEATURES order."""
    import numpy as np

    data = iris_frame()[list(IRIS_FEATURES)].to_numpy()
    rng = np.random.default_rng(2022)
    many = data[rng.integers(0, len(data), 1000)] + rng.normal(0, 0.25, (1000, data.shape[1]))
    many = np.round(np.clip(many, 0.1, None), 2)
    return [6.7, 3.3, 5.7, 2.1], many.tolist()


def shape_body(rows: list[list[float]], shape: str) -> bytes:
    """A (c) body: `rows` in one of C_SHAPES (`instances` as records, as mlflow reads them)."""
    columns = list(IRIS_FEATURES)
    if shape == invocost.CSV_SHAPE:
        return invocost.csv_body(rows, columns)
    if shape == "dataframe_split":
        return body(rows, "split")
    records = [dict(zip(columns, row, strict=True)) for row in rows]
    return json.dumps({shape: records}, separators=(",", ":")).encode()


def body(rows: list[list[float]], fmt: str) -> bytes:
    columns = list(IRIS_FEATURES)
    if fmt == "split":
        doc: dict[str, Any] = {"dataframe_split": {"columns": columns, "data": rows}}
    else:
        doc = {"dataframe_records": [dict(zip(columns, row, strict=True)) for row in rows]}
    return json.dumps(doc, separators=(",", ":")).encode()


# -- servers ---------------------------------------------------------------------------------


def app_supports_workers() -> bool:
    out = subprocess.run(
        [sys.executable, "-m", "app", "--help"],
        cwd=STORE,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    ).stdout
    return "--workers" in out


def start_servers(
    stack: contextlib.ExitStack,
    which: list[str],
    workers: int,
    mlflow_workers: int | None,
    log_url: str | None = None,
    baseline: against.Checkout | None = None,
    c_workers: int | None = None,
) -> tuple[dict[str, tuple[Server, str]], dict[str, Any]]:
    """Start the servers; return {name: (server, predict url)} and what was started how."""
    env = store_env()
    logs = RESULTS / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    started: dict[str, tuple[Server, str, str, float]] = {}
    setup: dict[str, Any] = {}

    api_workers = workers
    if workers > 1 and not app_supports_workers():
        log(
            "`python -m app --help` shows no --workers:"
            f" the API and the floor run 1 worker, not {workers}"
        )
        api_workers = 1
    setup["api_workers"] = api_workers

    def start(name: str, args: list[str], extra: dict[str, str], path: str, ready: str) -> None:
        port = free_port()
        args = [a.replace("{port}", str(port)) for a in args]
        server = Server(args, {**env, **extra}, logs / f"{name}.log", STORE)
        stack.enter_context(_stopping(name, server))
        base = f"http://{HOST}:{port}"
        started[name] = (server, base + path, base + ready, 300.0 if is_mlflow(name) else 120.0)
        setup[name] = {"command": args, "port": port}
        log(f"started {name}: {' '.join(args)}")

    one = [sys.executable, "-m", "app", "--host", HOST, "--port", "{port}"]
    api = [*one, "--workers", str(api_workers)] if api_workers > 1 else one
    if "api" in which:
        start("api", api, {"MODEL_URI": MODEL_URI}, "/predict", "/readyz")
    if c_workers and "api" in which:
        many = [*one, "--workers", str(c_workers)]
        start(with_workers("api", c_workers), many, {"MODEL_URI": MODEL_URI}, "/predict", "/readyz")
    if baseline is not None:
        extra = {"MODEL_URI": MODEL_URI, **baseline.env()}
        start(baseline.server, api, extra, "/predict", "/readyz")
    if monicost.SERVER in which:
        start(monicost.SERVER, api, {"MODEL_URI": MODEL_URI, **monicost.ENV}, "/predict", "/readyz")
    if logcost.SERVER in which and log_url is not None:
        extra = {"MODEL_URI": MODEL_URI, "PREDICTION_LOG_URL": log_url}
        start(logcost.SERVER, api, extra, "/predict", "/readyz")
    if "mlflow" in which:
        mlflow = str(Path(sys.executable).with_name("mlflow"))
        args = [mlflow, "models", "serve", "-m", MODEL_URI, "--env-manager", "local"]
        args += ["-h", HOST, "-p", "{port}"]
        if c_workers:
            many = [*args, "-w", str(c_workers)]
            start(with_workers("mlflow", c_workers), many, {}, "/invocations", "/ping")
        if mlflow_workers is not None:
            args += ["-w", str(mlflow_workers)]
        start("mlflow", args, {}, "/invocations", "/ping")
    if "floor" in which:
        args = [sys.executable, str(BENCH / "floor_app.py"), "--host", HOST, "--port", "{port}"]
        args += ["--workers", str(api_workers)]
        start("floor", args, {}, "/predict", "/ping")

    for name, (server, _, ready, timeout) in started.items():
        t0 = time.monotonic()
        try:
            server.wait_http(ready, timeout=timeout)
        except (RuntimeError, TimeoutError) as exc:
            raise BenchError(f"{name} did not become ready: {exc}") from None
        log(f"{name} ready in {time.monotonic() - t0:.1f}s")
    return {name: (s, url) for name, (s, url, _, _) in started.items()}, setup


@contextlib.contextmanager
def _stopping(name: str, server: Server) -> Iterator[Server]:
    try:
        yield server
    finally:
        log(f"stopped {name} (exit {server.stop()})")


@contextlib.contextmanager
def _serving(model: str, extra: dict[str, str], workers: int) -> Iterator[str]:
    """The API serving `model` with `workers` workers, for bench/monicost.py; its base URL."""
    port = free_port()
    args = [sys.executable, "-m", "app", "--host", HOST, "--port", str(port)]
    args += ["--workers", str(workers)] if workers > 1 else []
    env = {**store_env(), "MODEL_URI": model, **extra}
    name = f"wide-w{workers}{'-nodrift' if extra else ''}"
    (RESULTS / "logs").mkdir(parents=True, exist_ok=True)
    STORE.mkdir(parents=True, exist_ok=True)
    server = Server(args, env, RESULTS / "logs" / f"{name}.log", STORE)
    with _stopping(name, server):
        base = f"http://{HOST}:{port}"
        server.wait_http(base + "/readyz", timeout=120)
        yield base


# -- checks ----------------------------------------------------------------------------------


def post(url: str, data: bytes) -> tuple[int, Any]:
    request = urllib.request.Request(
        url, data=data, method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()[:500]


def check_predictions(
    urls: dict[str, str], payloads: dict[str, list[list[float]]], fmt: str
) -> None:
    """Same predictions from the API and mlflow for every payload; the floor answers 200."""
    for label, rows in payloads.items():
        answers: dict[str, Any] = {}
        for name, url in urls.items():
            status, doc = post(url, body(rows, fmt))
            if status != 200:
                raise BenchError(f"{name} answered {status} to the {label} payload: {doc!r}")
            if name != "floor":
                answers[name] = doc["predictions"]
        if "api" in answers:
            # The API's own formats must agree with what it answers to mlflow's.
            columns = list(IRIS_FEATURES)
            records = [dict(zip(columns, row, strict=True)) for row in rows]
            native = records[0] if len(records) == 1 else {"records": records}
            for other_fmt, data in (
                ("native", json.dumps(native).encode()),
                (
                    "split" if fmt == "records" else "records",
                    body(rows, "records" if fmt == "split" else "split"),
                ),
            ):
                status, doc = post(urls["api"], data)
                if status != 200 or doc["predictions"] != answers["api"]:
                    raise BenchError(
                        f"api: {label} payload in {other_fmt} format answers differently"
                    )
        for other in [n for n in answers if n != "api"]:
            if "api" not in answers or answers["api"] == answers[other]:
                continue
            diff = [
                i
                for i, (x, y) in enumerate(zip(answers["api"], answers[other], strict=False))
                if x != y
            ]
            raise BenchError(
                f"predictions differ for the {label} payload: api {len(answers['api'])} vs"
                f" {other} {len(answers[other])} answers, first differing rows {diff[:10]}"
            )
        classes = sorted({str(p) for p in next(iter(answers.values()), [])})
        log(
            f"{label} payload: {', '.join(sorted(urls))} agree"
            f" ({len(rows)} rows, classes {classes})"
        )


def check_log_side(urls: dict[str, str], payloads: dict[str, list[list[float]]], fmt: str) -> None:
    """The API with its prediction log answers what the API answers."""
    for label, rows in payloads.items():
        _, want = post(urls["api"], body(rows, fmt))
        status, got = post(urls[logcost.SERVER], body(rows, fmt))
        if status != 200 or got["predictions"] != want["predictions"]:
            raise BenchError(f"{logcost.SERVER} answers the {label} payload differently ({status})")
    log(f"{logcost.SERVER} answers as api does")


def check_shapes(urls: dict[str, str], rows: list[list[float]], shapes: list[str]) -> None:
    """Every (c) body shape answers what the dataframe_split body answers, on each server."""
    for name, url in urls.items():
        if name not in ("api", "mlflow") and not is_with_workers(name):
            continue
        status, want = post(url, body(rows, "split"))
        for shape in shapes:
            sent = MLFLOW_SHAPE.get(shape, shape) if is_mlflow(name) else shape
            status, got = invocost.post(
                shape_url(name, url, shape), shape_body(rows, sent), invocost.content_type(shape)
            )
            if status != 200 or got["predictions"] != want["predictions"]:
                raise BenchError(f"{name} answers the 1000-row {sent} body differently ({status})")
    log(f"(c) body shapes {', '.join(shapes)}: each server answers as to dataframe_split")


def shape_url(server: str, url: str, shape: str | None) -> str:
    """Where `server` takes case (c)'s `shape`: CSV goes to the API's /invocations."""
    return invocost.url(url) if shape == invocost.CSV_SHAPE and not is_mlflow(server) else url


def skips_shape(server: str, shape: str | None) -> bool:
    """The floor reads JSON only, and an --against revision may have no /invocations."""
    return shape == invocost.CSV_SHAPE and (server == "floor" or server.startswith("api@"))


def one_core_limit(rows: list[list[float]], seconds: float) -> dict[str, float]:
    """The estimator's own rows/s in process on one core (a child pinned to one CPU), on the
    same 1000 rows: `predict` on a DataFrame and on a float64 matrix; `limit` is the faster."""
    with tempfile.NamedTemporaryFile("w", suffix=".json") as f:
        json.dump(rows, f)
        f.flush()
        proc = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--one-core-child", f.name,
             "--duration", str(seconds)],
            env=store_env(), cwd=STORE, capture_output=True, text=True, timeout=600,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
    if proc.returncode != 0:
        raise BenchError(f"one-core limit failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    figures: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    figures["limit"] = max(figures["frame"], figures["matrix"])
    figures["limit_cpu"] = max(figures["frame_cpu"], figures["matrix_cpu"])
    log(
        f"in process, one core: predict(DataFrame) {figures['frame']:,.0f} rows/s,"
        f" predict(matrix) {figures['matrix']:,.0f} rows/s"
    )
    return figures


def _one_core_child(rows_file: str, seconds: float) -> None:
    """(In the child) print {"frame", "matrix"}: best rows/s of 5 timed windows each, and
    {"frame_cpu", "matrix_cpu"}: rows per CPU-second (steadier on a shared machine)."""
    import warnings

    import mlflow.sklearn
    import numpy as np
    import pandas as pd

    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    warnings.filterwarnings("ignore", message="X does not have valid feature names")
    rows = json.loads(Path(rows_file).read_text())
    model = mlflow.sklearn.load_model(MODEL_URI)
    frame = pd.DataFrame(rows, columns=list(IRIS_FEATURES))
    inputs = {"frame": frame, "matrix": np.ascontiguousarray(frame.to_numpy(dtype=np.float64))}
    out = {}
    for name, data in inputs.items():
        best = best_cpu = 0.0
        for _ in range(5):
            n, start, cpu = 0, time.perf_counter(), time.process_time()
            while (elapsed := time.perf_counter() - start) < seconds / 10:
                model.predict(data)
                n += 1
            best = max(best, n * len(rows) / elapsed)
            best_cpu = max(best_cpu, n * len(rows) / (time.process_time() - cpu))
        out[name], out[f"{name}_cpu"] = best, best_cpu
    print(json.dumps(out))


def check_v2(
    servers: dict[str, tuple[Server, str]],
    urls: dict[str, str],
    payloads: dict[str, list[list[float]]],
    args: argparse.Namespace,
    model: dict[str, Any],
    tmp: Path,
) -> Path:
    """With --v2: "api (V2)" is the API's process on its V2 infer route, which must answer the
    payloads as /predict does; returns the file of the one-row V2 body."""
    url = v2cost.infer_url(urls["api"], str(model["registered_name"]))
    servers[v2cost.SERVER], urls[v2cost.SERVER] = (servers["api"][0], url), url
    features = list(IRIS_FEATURES)
    v2_bodies = {label: v2cost.body(rows, features, args.v2) for label, rows in payloads.items()}
    problem = v2cost.check(
        urls["api"], url, {k: body(r, args.format) for k, r in payloads.items()}, v2_bodies
    )
    if problem:
        raise BenchError(problem)
    log(f"V2 ({args.v2}) answers every payload as /predict does")
    path = tmp / "1-row-v2.json"
    path.write_bytes(v2_bodies["1-row"])
    return path


def check_invocations(
    servers: dict[str, tuple[Server, str]],
    urls: dict[str, str],
    payloads: dict[str, list[list[float]]],
    fmt: str,
) -> None:
    """With --invocations: "api (/invocations)" is the API's process on POST /invocations,
    which must answer the payloads as /predict does (it is sent the same 1-row file)."""
    url = invocost.url(urls["api"])
    servers[invocost.SERVER], urls[invocost.SERVER] = (servers["api"][0], url), url
    problem = invocost.check(urls["api"], url, {k: body(r, fmt) for k, r in payloads.items()})
    if problem:
        raise BenchError(problem)
    log("/invocations answers every payload as /predict does")


# -- load ------------------------------------------------------------------------------------


# -- CPU accounting: the machine is shared, so say how much CPU others used during a run ----

TICK = os.sysconf("SC_CLK_TCK")


def machine_busy() -> float:
    """CPU seconds all cores spent busy since boot (/proc/stat)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields) - idle) / TICK


def group_cpu(pgid: int) -> float:
    """CPU seconds used so far by the live processes of process group `pgid`."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            rest = stat.read_text().rsplit(")", 1)[1].split()
            if int(rest[2]) == pgid:
                total += int(rest[11]) + int(rest[12])  # utime + stime
    return total / TICK


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(
    binary: str,
    url: str,
    body_file: Path,
    case: Case,
    seconds: float,
    pgid: int,
    content_type: str = invocost.JSON,
) -> dict[str, Any]:
    """One wrk run, plus the cores used by the server, by wrk, and by everything else."""
    before = (machine_busy(), group_cpu(pgid), children_cpu(), time.monotonic())
    result = wrk(binary, url, body_file, case, seconds, content_type)
    after = (machine_busy(), group_cpu(pgid), children_cpu(), time.monotonic())
    busy, server, load, wall = (b - a for a, b in zip(before, after, strict=True))
    result["server_cores"] = server / wall
    result["wrk_cores"] = load / wall
    result["other_cores"] = max(0.0, busy - server - load) / wall
    return result


def wrk(
    binary: str,
    url: str,
    body_file: Path,
    case: Case,
    seconds: float,
    content_type: str = invocost.JSON,
) -> dict[str, Any]:
    cmd = [binary, "-t", str(case.threads), "-c", str(case.connections)]
    cmd += ["-d", f"{max(1, round(seconds))}s", "--timeout", "5s", "-s", str(LUA), url]
    env = {**os.environ, "BENCH_BODY": str(body_file), "BENCH_CONTENT_TYPE": content_type}
    proc = subprocess.run(
        cmd, env=env, capture_output=True, text=True, timeout=seconds + 60, stdin=subprocess.DEVNULL
    )
    match = re.search(r"^BENCH_JSON (\{.*\})$", proc.stdout, re.MULTILINE)
    if proc.returncode != 0 or match is None:
        raise BenchError(
            f"wrk failed ({proc.returncode}): {proc.stdout[-2000:]}{proc.stderr[-2000:]}"
        )
    raw: dict[str, Any] = json.loads(match.group(1))
    secs = raw["duration_us"] / 1e6
    socket_errors = sum(
        raw[k] for k in ("connect_errors", "read_errors", "write_errors", "timeouts")
    )
    return {
        "requests": raw["requests"],
        "seconds": round(secs, 3),
        "rps": raw["requests"] / secs,
        "rows_per_s": raw["requests"] * case.rows / secs,
        "p50_ms": raw["p50_us"] / 1e3,
        "p90_ms": raw["p90_us"] / 1e3,
        "p99_ms": raw["p99_us"] / 1e3,
        "max_ms": raw["max_us"] / 1e3,
        "mean_ms": raw["mean_us"] / 1e3,
        "non_2xx": raw["non_2xx_3xx"],
        "socket_errors": socket_errors,
        "errors": raw["non_2xx_3xx"] + socket_errors,
        "wrk": raw,
    }


def _server_order(server: str) -> float:
    if server in SERVERS:
        return SERVERS.index(server)
    return SERVERS.index("mlflow") + 0.5 if is_mlflow(server) else 0.5  # api@REV, api-wN


def _median(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The round with the median req/s (the lower middle of an even count), with the spread."""
    ranked = sorted(results, key=lambda r: r["rps"])
    chosen = dict(ranked[(len(ranked) - 1) // 2])
    chosen["rounds_rps"] = [round(r["rps"], 1) for r in results]
    return chosen


def _spread(result: dict[str, Any]) -> str:
    """With --rounds: every round's req/s (the row shows the median round)."""
    rounds = result.get("rounds_rps", [])
    return "   rounds: " + " / ".join(f"{x:,.0f}" for x in rounds) if len(rounds) > 1 else ""


def ratios(case: dict[str, dict[str, Any]]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    pairs = [("api", other) for other in ("mlflow", "floor", *filter(against.is_against, case))]
    for many in (s for s in case if s.startswith("api-w")):  # api-wN: to mlflow and mlflow-wN
        pairs += [(many, "mlflow"), (many, "mlflow" + many.removeprefix("api"))]
    for name, other in pairs:
        api, ref = case.get(name), case.get(other)
        if api is None or ref is None:
            continue
        out[f"{name}/{other}"] = {
            "rps": api["rps"] / ref["rps"] if ref["rps"] else float("inf"),
            "p50": api["p50_ms"] / ref["p50_ms"] if ref["p50_ms"] else float("inf"),
            "p99": api["p99_ms"] / ref["p99_ms"] if ref["p99_ms"] else float("inf"),
        }
    return out


def targets(
    results: dict[str, dict[str, dict[str, Any]]], one_core: float | None = None
) -> list[tuple[str, bool | None, str]]:
    """Issues 4's and 13's targets: (target, passed or None when not measured, the figures)."""

    def get(case: str, server: str, key: str) -> float | None:
        value = results.get(case, {}).get(server, {}).get(key)
        return None if value is None else float(value)

    out: list[tuple[str, bool | None, str]] = []

    def at_least(label: str, value: float | None, ref: float | None, factor: float) -> None:
        if value is None or ref is None:
            out.append((label, None, "not measured"))
            return
        ratio = value / ref if ref else float("inf")
        out.append((label, value >= factor * ref, f"{value:,.1f} vs {ref:,.1f} ({ratio:.2f}x)"))

    def at_most(label: str, value: float | None, ref: float | None, factor: float) -> None:
        if value is None or ref is None:
            out.append((label, None, "not measured"))
            return
        ratio = value / ref if ref else float("inf")
        out.append((label, value <= factor * ref, f"{value:.2f} ms vs {ref:.2f} ms ({ratio:.3f}x)"))

    at_least("(b) API req/s >= 12x mlflow", get("b", "api", "rps"), get("b", "mlflow", "rps"), 12)
    at_least(
        "(b) API req/s >= 75% of floor", get("b", "api", "rps"), get("b", "floor", "rps"), 0.75
    )
    at_most(
        "(b) API p99 <= 1/10 of mlflow",
        get("b", "api", "p99_ms"),
        get("b", "mlflow", "p99_ms"),
        0.1,
    )
    at_most(
        "(a) API p50 <= 1/5 of mlflow", get("a", "api", "p50_ms"), get("a", "mlflow", "p50_ms"), 0.2
    )
    for key in (k for k in results if k.startswith("c ")):
        rows = get(key, "api", "rows_per_s")
        at_least(f"({key}) API rows/s >= 5x mlflow", rows, get(key, "mlflow", "rows_per_s"), 5)
        at_least(f"({key}) API rows/s >= 1.3x one-core limit", rows, one_core, 1.3)
        for many in sorted(s for s in results[key] if s.startswith("api-w")):
            rows = get(key, many, "rows_per_s")
            same = "mlflow" + many.removeprefix("api")
            for ref in ("mlflow", same):
                label = f"({key}) {many} rows/s >= 5x {ref}"
                at_least(label, rows, get(key, ref, "rows_per_s"), 5)
            at_least(f"({key}) {many} rows/s >= 1.3x one-core limit", rows, one_core, 1.3)
    api_cases = {c: s["api"] for c, s in results.items() if "api" in s}
    if api_cases:
        bad = {c: (r["non_2xx"], r["socket_errors"]) for c, r in api_cases.items() if r["errors"]}
        detail = ", ".join(f"({c}) {n} non-2xx + {s} socket" for c, (n, s) in bad.items())
        out.append(
            (
                "API: no failed or non-2xx request",
                not bad,
                detail or f"0 in ({','.join(api_cases)})",
            )
        )
    else:
        out.append(("API: no failed or non-2xx request", None, "not measured"))
    return out


# -- report ----------------------------------------------------------------------------------


def machine(wrk_binary: str) -> dict[str, Any]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    versions = {}
    for dist in (
        "mlflow",
        "uvicorn",
        "fastapi",
        "starlette",
        "uvloop",
        "httptools",
        "orjson",
        "scikit-learn",
    ):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[dist] = metadata.version(dist)
    wrk_version = subprocess.run(
        [wrk_binary, "--version"], capture_output=True, text=True, timeout=10
    )
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "versions": versions,
        "wrk": (wrk_version.stdout or wrk_version.stderr).splitlines()[0].strip(),
        "env": {k: v for k, v in os.environ.items() if k.startswith("OPENBLAS_")},
    }


def report(doc: dict[str, Any]) -> str:
    lines: list[str] = []
    m = doc["machine"]
    v = m["versions"]
    lines.append(
        f"machine: {m['cpu']}, {m['cores']} cores ({m['usable_cores']} usable), Linux {m['kernel']}"
    )
    lines.append(
        f"python {m['python']}, mlflow {v.get('mlflow')}, uvicorn {v.get('uvicorn')}, fastapi"
        f" {v.get('fastapi')}, uvloop {v.get('uvloop')}, httptools {v.get('httptools')};"
        f" {m['wrk']}"
    )
    o = doc["options"]
    lines.append(
        f"options: {o['duration']:g}s per case after {o['warmup']:g}s warm-up, body format"
        f" {o['format']}, API/floor workers {doc['setup'].get('api_workers')}, mlflow workers"
        f" {o['mlflow_workers'] or 'default'}; env {m['env'] or '{}'}"
    )
    header = (
        f"{'case':<34}{'server':<12}{'req/s':>10}{'rows/s':>12}"
        f"{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}   cores: server wrk others"
    )
    lines += ["", header, "-" * len(header)]
    for name, case in doc["cases"].items():
        shape = case.get("shape")
        title = (
            f"({name[0]}) {CASES[name[0]].title}" if shape is None else f"(c) 1000 rows, {shape}"
        )
        for server in sorted(case["servers"], key=_server_order):
            r = case["servers"].get(server)
            if r is None:
                continue
            lines.append(
                f"{title:<34}{server:<12}{r['rps']:>10,.0f}{r['rows_per_s']:>12,.0f}"
                f"{r['p50_ms']:>9.2f}{r['p99_ms']:>9.2f}{r['errors']:>8}"
                f"{r['server_cores']:>17.2f}{r['wrk_cores']:>5.2f}{r['other_cores']:>7.2f}"
                + _spread(r)
            )
            title = ""
        for pair, ratio in case["ratios"].items():
            lines.append(
                f"{'':<34}{pair:<12} req/s x{ratio['rps']:.2f}   p50 x{ratio['p50']:.3f}"
                f"   p99 x{ratio['p99']:.3f}"
            )
        apis = [s for s in case["servers"] if s == "api" or s.startswith("api-w")]
        for api in sorted(apis, key=_server_order) if shape and doc.get("one_core") else []:
            limit = doc["one_core"]["limit"]
            api_rows = case["servers"][api]["rows_per_s"]
            per_core = api_rows / max(case["servers"][api]["server_cores"], 1e-9)
            lines.append(
                f"{'':<34}{api + '/one-core':<12} rows/s x{api_rows / limit:.2f}"
                f"   (in-process one-core limit {limit:,.0f} rows/s)"
            )
            lines.append(
                f"{'':<34}{'':<12} per CPU-second: {api} {per_core:,.0f} rows,"
                f" x{per_core / doc['one_core']['limit_cpu']:.2f} the estimator's in process"
            )
        lines.append("")
    if doc.get("one_core"):
        one = doc["one_core"]
        lines.append(
            "one-core limit: the estimator's own predict in process on one core, same 1000 rows:"
            f" DataFrame {one['frame']:,.0f} rows/s, float64 matrix {one['matrix']:,.0f} rows/s"
            f" ({one['frame_cpu']:,.0f} and {one['matrix_cpu']:,.0f} per CPU-second)"
        )
        lines.append("")
    noisy = [
        f"({name}) {server} {r['other_cores']:.2f}"
        for name, case in doc["cases"].items()
        for server, r in case["servers"].items()
        if r["other_cores"] > NOISY_CORES
    ]
    if noisy:
        lines.append(
            "warning: other processes kept more than"
            f" {NOISY_CORES:g} core busy during: {', '.join(noisy)}; those figures are disturbed"
        )
        lines.append("")
    lines.append("targets:")
    for label, passed, detail in doc["targets"]:
        verdict = "n/a " if passed is None else ("PASS" if passed else "FAIL")
        lines.append(f"  {verdict}  {label:<52} {detail}")
    if doc["options"].get("log"):
        lines += ["", *logcost.report_lines(doc["cases"])]
    if doc["options"].get("v2"):
        lines += ["", *v2cost.report_lines(doc["cases"], doc["options"]["v2"])]
    if doc["options"].get("invocations"):
        lines += ["", *invocost.report_lines(doc["cases"])]
    if doc["options"].get("monitoring"):
        lines += ["", *monicost.report_lines(doc["cases"], doc.get("monitoring_scrapes", []))]
    return "\n".join(lines)


# -- main ------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/run.py", description="This API vs mlflow models serve vs a floor app, with wrk."
    )
    parser.add_argument(
        "--duration", type=float, default=10.0, help="seconds measured per case (10)"
    )
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up per case (2)")
    parser.add_argument("--workers", type=int, default=1, help="API and floor workers (1)")
    parser.add_argument(
        "--mlflow-workers", type=int, help="mlflow models serve -w (default: mlflow's)"
    )
    parser.add_argument("--only", default="api,mlflow,floor", help="servers (api,mlflow,floor)")
    parser.add_argument("--cases", default="a,b,c", help="cases to run (a,b,c)")
    parser.add_argument(
        "--format", choices=("split", "records"), default="split",
        help="body: dataframe_split or dataframe_records, the same for every server (split)",
    )  # fmt: skip
    parser.add_argument(
        "--c-shapes", default=",".join(C_SHAPES),
        help=f"body shapes case (c) runs with, once each ({','.join(C_SHAPES)})",
    )  # fmt: skip
    parser.add_argument(
        "--c-workers", type=int, metavar="N",
        help="case (c) also against the API with N workers and mlflow models serve -w N"
        " ('api-wN', 'mlflow-wN'), beside the others (both cores for large requests)",
    )  # fmt: skip
    parser.add_argument("--one-core-child", help=argparse.SUPPRESS)
    parser.add_argument(
        "--log", action="store_true",
        help="case (b) also against the API with its prediction log on, in a fresh"
        " PostgreSQL database (BENCH_POSTGRES_URL's server) dropped afterwards",
    )  # fmt: skip
    parser.add_argument(
        "--v2", nargs="?", const="columns", choices=v2cost.LAYOUTS,
        help="case (b) also through the API's V2 infer route with the same row: one tensor per"
        " feature (columns, the default) or one [1, 4] tensor (matrix); see bench/v2cost.py",
    )  # fmt: skip
    parser.add_argument(
        "--invocations", action="store_true",
        help="case (b) also through the API's POST /invocations (MLflow's scoring protocol) with"
        " the same body as /predict's; see bench/invocost.py",
    )  # fmt: skip
    parser.add_argument(
        "--monitoring", action="store_true",
        help="case (b) also against the API with DRIFT_METRICS=false, and /metrics' size and"
        " scrape time for a 50-feature model; see bench/monicost.py",
    )  # fmt: skip
    parser.add_argument(
        "--rounds", type=int, default=1,
        help="measure every server this many times per case, in alternating order, and report"
        " the median round (1)",
    )  # fmt: skip
    parser.add_argument(
        "--against", metavar="REV",
        help="also serve the API of git revision REV (a temporary worktree, this virtualenv)"
        " beside this one, in every case: 'api@<sha>' (bench/against.py)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    only = {x.strip() for x in args.only.split(",")}
    only -= {logcost.SERVER, v2cost.SERVER, invocost.SERVER, monicost.SERVER}
    if args.monitoring:
        only.add(monicost.SERVER)
    if args.invocations:
        only.add(invocost.SERVER)
    if args.log:
        only.add(logcost.SERVER)
    if args.v2:
        only.add(v2cost.SERVER)
    args.only = [s for s in SERVERS if s in only]
    args.cases = [c for c in CASES if c in {x.strip() for x in args.cases.split(",")}]
    if args.c_workers is not None:
        if args.c_workers < 2 or "c" not in args.cases:
            parser.error("--c-workers N: N >= 2, with case c in --cases")
        for server in ("api", "mlflow"):
            if server in args.only:
                args.only.insert(args.only.index(server) + 1, with_workers(server, args.c_workers))
    args.c_shapes = [c for c in C_SHAPES if c in {x.strip() for x in args.c_shapes.split(",")}]
    if "c" in args.cases and not args.c_shapes:
        parser.error(f"--c-shapes: name at least one of {', '.join(C_SHAPES)}")
    if not args.only or not args.cases:
        parser.error("--only and --cases must name at least one server and one case")
    if args.log and ("api" not in args.only or logcost.CASE not in args.cases):
        parser.error(f"--log compares with the API in case ({logcost.CASE}): keep both")
    if args.v2 and ("api" not in args.only or v2cost.CASE not in args.cases):
        parser.error(f"--v2 compares with the API in case ({v2cost.CASE}): keep both")
    if args.monitoring and ("api" not in args.only or monicost.CASE not in args.cases):
        parser.error(f"--monitoring compares with the API in case ({monicost.CASE}): keep both")
    if args.invocations and ("api" not in args.only or invocost.CASE not in args.cases):
        parser.error(f"--invocations compares with the API in case ({invocost.CASE}): keep both")
    if args.against and "api" not in args.only:
        parser.error("--against compares with the API: keep it in --only")
    if args.duration < 1 or args.warmup < 0 or args.workers < 1 or args.rounds < 1:
        parser.error("--duration >= 1, --warmup >= 0, --workers >= 1 and --rounds >= 1")
    return args


def measure_one(
    args: argparse.Namespace,
    wrk_binary: str,
    servers: dict[str, tuple[Server, str]],
    urls: dict[str, str],
    files: dict[str, Path],
    log_db: logcost.LogDatabase | None,
    server: str,
    case: Case,
    shape: str | None,
    *,
    tally: bool,
) -> dict[str, Any]:
    """One server in one case: warm-up, then the measure (with --log, the log's accounting
    when `tally`: it stops api+log, so only in the last round)."""
    if server == v2cost.SERVER:
        sent = files[v2cost.SERVER]
    elif server == invocost.SERVER or shape is None:
        sent = files["1-row" if case.rows == 1 else "1000-row"]
    else:
        sent = files[MLFLOW_SHAPE.get(shape, shape) if is_mlflow(server) else shape]
    proc = servers[server][0].proc
    url, kind = shape_url(server, urls[server], shape), invocost.content_type(shape)
    if args.warmup > 0:
        wrk(wrk_binary, url, sent, case, args.warmup, kind)
    logged = server == logcost.SERVER and log_db is not None and tally
    if logged and log_db:
        before = logcost.baseline(urls[server], log_db)
    result = measure(wrk_binary, url, sent, case, args.duration, proc.pid, kind)
    if proc.poll() is not None:
        raise BenchError(f"{server} exited ({proc.returncode}) during case ({case.name})")
    if logged and log_db:
        result["log"] = logcost.tally(
            servers[server][0], urls[server], log_db, before, result, case.rows, case.connections
        )
    return result


def run(args: argparse.Namespace) -> int:
    wrk_binary = ensure_wrk()
    model = ensure_model()
    one, many = make_rows()
    payloads = {"1-row": [one], "1000-row": many}
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    doc: dict[str, Any] = {
        "timestamp": stamp,
        "machine": machine(wrk_binary),
        "options": {
            k: getattr(args, k)
            for k in ("duration", "warmup", "workers", "mlflow_workers", "c_workers", "only")
            + ("cases", "format")
        },
        "model": {
            k: model.get(k) for k in ("registered_model_uri", "version", "run_id", "metrics")
        },
        "cases": {},
    }
    doc["options"]["log"] = args.log
    doc["options"]["c_shapes"] = args.c_shapes
    if "c" in args.cases:
        doc["one_core"] = one_core_limit(many, max(args.duration / 2, 2.0))
    doc["options"]["v2"] = args.v2
    doc["options"]["invocations"] = args.invocations
    doc["options"]["monitoring"] = args.monitoring
    doc["options"]["rounds"] = args.rounds
    with contextlib.ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        log_db = stack.enter_context(logcost.log_database()) if args.log else None
        baseline = stack.enter_context(against.checkout(args.against)) if args.against else None
        servers, doc["setup"] = start_servers(
            stack, args.only, args.workers, args.mlflow_workers, log_db.url if log_db else None,
            baseline, args.c_workers,
        )  # fmt: skip
        if baseline is not None:
            doc["options"]["against"] = {"rev": args.against, "commit": baseline.commit}
            args.only.insert(args.only.index("api") + 1, baseline.server)
        urls = {name: url for name, (_, url) in servers.items()}
        check_predictions(
            {k: v for k, v in urls.items() if k != logcost.SERVER}, payloads, args.format
        )
        if "c" in args.cases:
            check_shapes(urls, many, args.c_shapes)
        if log_db:
            check_log_side(urls, payloads, args.format)
        files = {}
        for label, rows in payloads.items():
            files[label] = Path(tmp) / f"{label}.json"
            files[label].write_bytes(body(rows, args.format))
        for shape in {*args.c_shapes, *(MLFLOW_SHAPE.get(x, x) for x in args.c_shapes)}:
            files[shape] = Path(tmp) / f"c-{shape}.json"
            files[shape].write_bytes(shape_body(many, shape))
        if args.v2:
            files[v2cost.SERVER] = check_v2(servers, urls, payloads, args, model, Path(tmp))
        if args.invocations:
            check_invocations(servers, urls, payloads, args.format)
        runs = [(n, n, None) for n in args.cases if n != "c"]
        runs += [(f"c {shape}", "c", shape) for shape in args.c_shapes if "c" in args.cases]
        for key, name, shape in runs:
            case = CASES[name]
            rounds: dict[str, list[dict[str, Any]]] = {}
            for round_ in range(args.rounds):
                # Alternate the order, so that no server is always measured first or last.
                order = args.only if round_ % 2 == 0 else args.only[::-1]
                for server in order:
                    if server == logcost.SERVER and name != logcost.CASE:
                        continue
                    if server == v2cost.SERVER and name != v2cost.CASE:
                        continue
                    if server == invocost.SERVER and name != invocost.CASE:
                        continue
                    if server == monicost.SERVER and name != monicost.CASE:
                        continue
                    if skips_shape(server, shape):
                        continue
                    if is_with_workers(server) and name != "c":
                        continue
                    last = round_ == args.rounds - 1
                    result = measure_one(args, wrk_binary, servers, urls, files, log_db,
                                         server, case, shape, tally=last)  # fmt: skip
                    rounds.setdefault(server, []).append(result)
                    log(
                        f"({key}) {server}: {result['rps']:,.0f} req/s, p50"
                        f" {result['p50_ms']:.2f} ms, p99 {result['p99_ms']:.2f} ms,"
                        f" {result['errors']} errors; cores: server {result['server_cores']:.2f},"
                        f" wrk {result['wrk_cores']:.2f}, others {result['other_cores']:.2f}"
                    )
            measured = {server: _median(results) for server, results in rounds.items()}
            for server, results in rounds.items():
                if "log" in results[-1]:  # the log's accounting: from the last round
                    measured[server]["log"] = results[-1]["log"]
                    measured[server]["db_cores"] = results[-1]["db_cores"]
            doc["cases"][key] = {
                "case": vars(case),
                "shape": shape,
                "servers": measured,
                "ratios": ratios(measured),
            }
    doc["targets"] = targets(
        {c: v["servers"] for c, v in doc["cases"].items()}, doc.get("one_core", {}).get("limit")
    )
    doc["log_targets"] = logcost.targets(doc["cases"]) if args.log else []
    doc["v2_targets"] = v2cost.targets(doc["cases"]) if args.v2 else []
    doc["invocations_targets"] = invocost.targets(doc["cases"]) if args.invocations else []
    doc["monitoring_targets"] = monicost.targets(doc["cases"]) if args.monitoring else []
    if args.monitoring:
        doc["monitoring_scrapes"] = monicost.scrape_cost(_serving)
    out = RESULTS / f"{stamp}.json"
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print(report(doc))
    print(f"\nresults: {out.relative_to(ROOT)}")
    verdicts = [
        p
        for _, p, _ in doc["targets"]
        + doc["log_targets"]
        + doc["v2_targets"]
        + doc["invocations_targets"]
        + doc["monitoring_targets"]
    ]
    return 1 if any(passed is False for passed in verdicts) else 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.one_core_child:
        _one_core_child(args.one_core_child, args.duration)
        return 0

    def terminate(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)  # unwinds through the ExitStack: servers get stopped

    signal.signal(signal.SIGTERM, terminate)
    try:
        return run(args)
    except (BenchError, against.AgainstError) as exc:
        log(f"error: {exc}")
        return 2
    except KeyboardInterrupt:
        log("interrupted")
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
