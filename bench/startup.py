"""Time to ready: this API from its model cache, from the registry, and
`mlflow models serve`, on the same model, side by side.

    .venv/bin/python bench/startup.py [--repeat 5]

In one run it
1. makes (or reuses) bench/run.py's reference model, models:/sk_model@champion in the SQLite
   store under bench/.store/;
2. fills a model cache: starts the API once with MODEL_CACHE_DIR set (a temporary folder; its
   entries signed with a MODEL_CACHE_KEY drawn for the run) and
   waits until the cache holds a whole entry (`*/*/entry.json`), then stops it;
3. `--repeat` times, one of each in turn (after one untimed round):
   - "cache": the API with the same MODEL_URI and MODEL_CACHE_DIR and MLFLOW_TRACKING_URI
     pointing at a loopback port nothing listens on (connection refused), so it serves the
     cached copy; `/readyz` must say `"source": "cache"`;
   - "registry": the same, with MLFLOW_TRACKING_URI the bench store; `"source": "registry"`;
   - "mlflow": `mlflow models serve --env-manager local` on the same MODEL_URI, until `/ping`;
   each timed from just before the process is spawned to the first 200 of its readiness URL,
   polled every 10 ms (also the first answer of any status: when it listened), then stopped;
4. prints the median, min and max of each, the machine, the CPU others used meanwhile, and
   the target (cache <= 2 s) with PASS/FAIL; writes bench/results/startup-<timestamp>.json.

Every process it starts runs in its own process group on a free 127.0.0.1 port and is stopped
(SIGTERM, then SIGKILL) before the next one starts. Exit status: 0 when the target passed,
1 when it failed, 2 on a setup error.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import secrets
import statistics
import sys
import tempfile
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import (  # noqa: E402
    HOST,
    MODEL_URI,
    NOISY_CORES,
    RESULTS,
    ROOT,
    STORE,
    BenchError,
    ensure_model,
    group_cpu,
    log,
    machine_busy,
    store_env,
)

from tests.servers import Server, free_port  # noqa: E402

TARGET_SECONDS = 2.0
CACHE_KEY = secrets.token_hex(16)
POLL = 0.01
KINDS = ("cache", "registry", "mlflow")
TITLES = {
    "cache": "API, from the cache (registry unreachable)",
    "registry": "API, from the registry",
    "mlflow": "mlflow models serve",
}


def self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def probe(url: str) -> tuple[int | None, bytes]:
    """GET `url`: (status, body), or (None, b"") when nothing answered."""
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError:
        return None, b""


def time_to_ready(
    name: str, args: list[str], env: dict[str, str], ready_path: str, port: int, timeout: float
) -> dict[str, Any]:
    """Spawn the server, poll `ready_path` every 10 ms until 200, stop it; the timings."""
    url = f"http://{HOST}:{port}{ready_path}"
    logs = RESULTS / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    busy0, own0 = machine_busy(), self_cpu()
    start = time.monotonic()
    server = Server(args, env, logs / f"startup-{name}.log", STORE)
    listening: float | None = None
    try:
        while True:
            status, answer = probe(url)
            now = time.monotonic()
            if status is not None and listening is None:
                listening = now - start
            if status == 200:
                ready = now - start
                break
            if server.proc.poll() is not None:
                raise BenchError(
                    f"{name} exited ({server.proc.returncode}) before {url} answered 200:\n"
                    + server.output()[-3000:]
                )
            if now - start > timeout:
                raise BenchError(f"{name}: {url} not 200 after {timeout:g}s (last {status})")
            time.sleep(POLL)
        server_cpu = group_cpu(server.proc.pid)
        busy, own = machine_busy() - busy0, self_cpu() - own0
    finally:
        server.stop()
    return {
        "ready_s": ready,
        "listening_s": listening,
        "server_cpu_s": server_cpu,
        "other_cores": max(0.0, busy - server_cpu - own) / ready,
        "answer": answer.decode(errors="replace"),
    }


def fill_cache(env: dict[str, str], cache: Path) -> None:
    """Start the API once from the registry with the cache on; wait for a whole entry."""
    port = free_port()
    args = [sys.executable, "-m", "app", "--host", HOST, "--port", str(port)]
    server = Server(args, env, RESULTS / "logs" / "startup-fill.log", STORE)
    try:
        server.wait_http(f"http://{HOST}:{port}/readyz", timeout=120)
        deadline = time.monotonic() + 60
        while not list(cache.glob("*/*/entry.json")):
            if time.monotonic() > deadline:
                raise BenchError(f"no cache entry under {cache} 60s after ready")
            time.sleep(0.05)
    finally:
        server.stop()
    entry = next(cache.glob("*/*/entry.json"))
    log(f"cache filled: {entry.parent.relative_to(cache)}")


def cache_env(cache: Path) -> dict[str, str]:
    """The cache's settings: its folder, and a key of this run's own to sign its entries."""
    return {"MODEL_CACHE_DIR": str(cache), "MODEL_CACHE_KEY": CACHE_KEY}


def commands(cache: Path) -> dict[str, tuple[list[str], dict[str, str], str]]:
    """Per kind: the command (with {port}), its environment, its readiness path."""
    base = {**store_env(), "MODEL_URI": MODEL_URI, **cache_env(cache)}
    nowhere = free_port()  # nothing listens there: the registry is unreachable
    api = [sys.executable, "-m", "app", "--host", HOST, "--port", "{port}"]
    mlflow = str(Path(sys.executable).with_name("mlflow"))
    serve = [mlflow, "models", "serve", "-m", MODEL_URI, "--env-manager", "local"]
    return {
        "cache": (api, {**base, "MLFLOW_TRACKING_URI": f"http://{HOST}:{nowhere}"}, "/readyz"),
        "registry": (api, base, "/readyz"),
        "mlflow": ([*serve, "-h", HOST, "-p", "{port}"], store_env(), "/ping"),
    }


def check_source(kind: str, answer: str) -> None:
    if kind == "mlflow":
        return
    source = json.loads(answer).get("source")
    if source != kind:
        raise BenchError(f"{kind} start: /readyz says source {source!r}, not {kind!r}")


def summary(runs: list[dict[str, Any]]) -> dict[str, float]:
    ready = [r["ready_s"] for r in runs]
    listening = [r["listening_s"] for r in runs if r["listening_s"] is not None]
    return {
        "median_s": statistics.median(ready),
        "min_s": min(ready),
        "max_s": max(ready),
        "listening_median_s": statistics.median(listening) if listening else float("nan"),
        "server_cpu_median_s": statistics.median(r["server_cpu_s"] for r in runs),
        "other_cores_max": max(r["other_cores"] for r in runs),
    }


def report(doc: dict[str, Any]) -> str:
    m = doc["machine"]
    lines = [
        f"machine: {m['cpu']}, {m['cores']} cores ({m['usable_cores']} usable), Linux"
        f" {m['kernel']}",
        f"python {m['python']}, mlflow {m['mlflow']}; model {doc['model_uri']} (version"
        f" {doc['model_version']}, SQLite store); {doc['repeat']} timed starts of each after"
        " one untimed round, polled every 10 ms",
        "",
    ]
    header = (
        f"{'start':<44}{'median s':>9}{'min s':>8}{'max s':>8}"
        f"{'listening s':>13}{'CPU s':>8}{'others':>8}"
    )
    lines += [header, "-" * len(header)]
    for kind in KINDS:
        s = doc["summary"][kind]
        lines.append(
            f"{TITLES[kind]:<44}{s['median_s']:>9.2f}{s['min_s']:>8.2f}{s['max_s']:>8.2f}"
            f"{s['listening_median_s']:>13.2f}{s['server_cpu_median_s']:>8.2f}"
            f"{s['other_cores_max']:>8.2f}"
        )
    lines.append("")
    lines.append(
        "(listening: first answer of any status; CPU: the server's, median; others: most cores"
        " other processes kept busy during one start)"
    )
    noisy = [k for k in KINDS if doc["summary"][k]["other_cores_max"] > NOISY_CORES]
    if noisy:
        lines.append(
            f"warning: other processes kept more than {NOISY_CORES:g} core busy during some"
            f" {', '.join(noisy)} starts; those figures are disturbed"
        )
    cache = doc["summary"]["cache"]["median_s"]
    verdict = "PASS" if doc["passed"] else "FAIL"
    lines += [
        "",
        "target:",
        f"  {verdict}  API ready from the cache <= {TARGET_SECONDS:g} s   median {cache:.2f} s,"
        f" max {doc['summary']['cache']['max_s']:.2f} s",
    ]
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    import platform
    from importlib import metadata

    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "mlflow": metadata.version("mlflow"),
    }


def run(repeat: int) -> int:
    model = ensure_model()
    (RESULTS / "logs").mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    runs: dict[str, list[dict[str, Any]]] = {k: [] for k in KINDS}
    with tempfile.TemporaryDirectory(prefix="bench-cache-") as tmp:
        cache = Path(tmp)
        fill_cache({**store_env(), "MODEL_URI": MODEL_URI, **cache_env(cache)}, cache)
        plan = commands(cache)
        for round_ in range(repeat + 1):
            for kind in KINDS:
                args, env, ready = plan[kind]
                port = free_port()
                args = [a.replace("{port}", str(port)) for a in args]
                timeout = 300.0 if kind == "mlflow" else 120.0
                result = time_to_ready(kind, args, env, ready, port, timeout)
                check_source(kind, result["answer"])
                counted = "untimed" if round_ == 0 else f"{round_}/{repeat}"
                log(
                    f"{kind} ({counted}): ready in {result['ready_s']:.2f}s (listening at"
                    f" {result['listening_s']:.2f}s), server CPU {result['server_cpu_s']:.2f}s,"
                    f" others {result['other_cores']:.2f} core"
                )
                if round_:
                    runs[kind].append(result)
    doc: dict[str, Any] = {
        "timestamp": stamp,
        "machine": machine(),
        "model_uri": MODEL_URI,
        "model_version": model.get("version"),
        "repeat": repeat,
        "runs": runs,
        "summary": {k: summary(v) for k, v in runs.items()},
    }
    doc["passed"] = doc["summary"]["cache"]["median_s"] <= TARGET_SECONDS
    out = RESULTS / f"startup-{stamp}.json"
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print(report(doc))
    print(f"\nresults: {out.relative_to(ROOT)}")
    return 0 if doc["passed"] else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/startup.py", description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="timed starts of each (5)")
    args = parser.parse_args(argv)
    if not 1 <= args.repeat <= 50:
        parser.error("--repeat must be 1..50")
    try:
        return run(args.repeat)
    except BenchError as exc:
        log(f"error: {exc}")
        return 2
    except KeyboardInterrupt:
        log("interrupted")
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
