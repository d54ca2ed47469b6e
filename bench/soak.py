"""Soak: a bounded mixed load on the API, with a model reload in the middle.

    .venv/bin/python bench/soak.py [--duration 60] [--connections 64] [--workers 1]

Starts the API (`python -m app`, API_KEY set) on the bench store's `models:/sk_model@champion`
(made by bench/run.py's trainer call if missing), then for `--duration` seconds keeps
`--connections` concurrent clients busy with a mix of single records (50%), 50-row batches
(30%) and invalid requests (20%: a string for a number, a missing field, NaN, not JSON, a
wrong content type). Halfway through it trains a new version, moves the alias and calls
`POST /admin/reload`. It reports failed valid requests (must be 0), invalid requests that were
not refused with a 4xx, latency percentiles per kind, the versions that answered, and the
server's memory (RSS of its process group) after warm-up and at the end. Exit 1 if any valid
request failed or any invalid one was not refused. Only 127.0.0.1 is ever contacted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import HOST, MODEL_URI, RESULTS, STORE, BenchError, ensure_model, log, store_env  # noqa: E402

from tests.servers import Server, free_port  # noqa: E402

KEY = "soak-admin-key-" + os.urandom(8).hex()
RECORD = {"sepal_length": 6.7, "sepal_width": 3.3, "petal_length": 5.7, "petal_width": 2.1}
INVALID = [
    (json.dumps({**RECORD, "sepal_width": "wide"}), "application/json"),
    (json.dumps({k: v for k, v in RECORD.items() if k != "petal_width"}), "application/json"),
    ('{"sepal_length": NaN, "sepal_width": 3.3, "petal_length": 5.7, "petal_width": 2.1}',
     "application/json"),
    ("{not json", "application/json"),
    (json.dumps(RECORD), "text/plain"),
]  # fmt: skip


def rss_mib(pgid: int) -> float:
    """Resident memory of every process in the group, MiB."""
    total = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            if os.getpgid(int(pid)) != pgid:
                continue
            with open(f"/proc/{pid}/status") as status:
                for line in status:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except (OSError, ProcessLookupError):
            continue
    return total / 1024


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Tally:
    def __init__(self) -> None:
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.status: dict[str, Counter[str]] = defaultdict(Counter)
        self.versions: Counter[str] = Counter()
        self.failed_valid: list[str] = []
        self.unrefused_invalid: list[str] = []


async def client(
    http: httpx.AsyncClient, url: str, deadline: float, tally: Tally, rng: random.Random
) -> None:
    batch = json.dumps({"records": [RECORD] * 50})
    single = json.dumps(RECORD)
    while time.monotonic() < deadline:
        draw = rng.random()
        if draw < 0.5:
            kind, body, ctype = "single", single, "application/json"
        elif draw < 0.8:
            kind, body, ctype = "batch", batch, "application/json"
        else:
            kind = "invalid"
            body, ctype = rng.choice(INVALID)
        start = time.perf_counter()
        try:
            response = await http.post(url, content=body, headers={"Content-Type": ctype})
            status = str(response.status_code)
        except httpx.HTTPError as exc:
            response, status = None, type(exc).__name__
        tally.latency[kind].append(time.perf_counter() - start)
        tally.status[kind][status] += 1
        if kind == "invalid":
            if not status.startswith("4"):
                tally.unrefused_invalid.append(status)
        elif status != "200" or response is None:
            tally.failed_valid.append(f"{kind}: {status}")
        else:
            tally.versions[str(response.json()["model"]["version"])] += 1


async def reload_midway(base: str, at: float, report: dict[str, Any]) -> None:
    await asyncio.sleep(at)
    env = store_env()
    args = ["train", "--register", "--alias", "champion", "--C", "0.5", "--json"]
    start = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "trainer", *args, env=env, cwd=STORE,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    if proc.returncode != 0:
        report["reload"] = {"error": f"trainer failed: {err.decode()[-500:]}"}
        return
    trained = json.loads(out.decode().strip().splitlines()[-1])
    async with httpx.AsyncClient(timeout=60) as http:
        t0 = time.monotonic()
        answer = await http.post(f"{base}/admin/reload", headers={"Authorization": f"Bearer {KEY}"})
    report["reload"] = {
        "new_version": trained["version"],
        "status": answer.status_code,
        "answer": answer.json(),
        "train_seconds": round(t0 - start, 1),
        "reload_seconds": round(time.monotonic() - t0, 2),
    }


async def soak(base: str, server: Server, args: argparse.Namespace) -> dict[str, Any]:
    tally = Tally()
    limits = httpx.Limits(
        max_connections=args.connections, max_keepalive_connections=args.connections
    )
    async with httpx.AsyncClient(limits=limits, timeout=30) as http:
        # Warm-up, then the memory baseline.
        warm = time.monotonic() + 3
        await asyncio.gather(*(client(http, f"{base}/predict", warm, Tally(), random.Random(i))
                               for i in range(args.connections)))  # fmt: skip
        rss_start = rss_mib(server.proc.pid)
        report: dict[str, Any] = {}
        deadline = time.monotonic() + args.duration
        started = time.monotonic()
        tasks = [
            client(http, f"{base}/predict", deadline, tally, random.Random(1000 + i))
            for i in range(args.connections)
        ]
        await asyncio.gather(*tasks, reload_midway(base, args.duration / 2, report))
        elapsed = time.monotonic() - started
    rss_end = rss_mib(server.proc.pid)
    total = sum(sum(c.values()) for c in tally.status.values())
    return {
        "duration_s": round(elapsed, 1),
        "connections": args.connections,
        "workers": args.workers,
        "requests": total,
        "requests_per_s": round(total / elapsed, 1),
        "by_kind": {
            kind: {
                "count": sum(tally.status[kind].values()),
                "statuses": dict(tally.status[kind]),
                "p50_ms": round(percentile(lat, 0.5) * 1000, 2),
                "p99_ms": round(percentile(lat, 0.99) * 1000, 2),
                "max_ms": round(max(lat) * 1000, 2),
            }
            for kind, lat in sorted(tally.latency.items())
        },
        "failed_valid": len(tally.failed_valid),
        "failed_valid_examples": tally.failed_valid[:10],
        "invalid_not_refused": len(tally.unrefused_invalid),
        "versions_answering": dict(tally.versions),
        "rss_mib_after_warmup": round(rss_start, 1),
        "rss_mib_end": round(rss_end, 1),
        "rss_growth_mib": round(rss_end - rss_start, 1),
        **report,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/soak.py", description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load (60)")
    parser.add_argument("--connections", type=int, default=64, help="concurrent clients (64)")
    parser.add_argument("--workers", type=int, default=1, help="API worker processes (1)")
    args = parser.parse_args(argv)
    if not 1 <= args.duration <= 3600 or not 1 <= args.connections <= 1024:
        parser.error("--duration must be 1..3600 s and --connections 1..1024")
    try:
        ensure_model()
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    RESULTS.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {**store_env(), "MODEL_URI": MODEL_URI, "API_KEY": KEY, "PREDICT_PUBLIC": "true"}
    command = [sys.executable, "-m", "app", "--host", HOST, "--port", str(port)]
    command += ["--workers", str(args.workers)]
    server = Server(command, env, RESULTS / "soak-api.log", STORE)
    try:
        base = f"http://{HOST}:{port}"
        server.wait_http(f"{base}/readyz", timeout=120)
        log(f"soak: {args.connections} connections for {args.duration:g}s against {base}")
        result = asyncio.run(soak(base, server, args))
    finally:
        code = server.stop()
        with contextlib.suppress(Exception):
            log(f"API stopped (exit {code})")
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    (RESULTS / f"soak-{stamp}.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    reload_ok = result.get("reload", {}).get("status") == 200
    ok = result["failed_valid"] == 0 and result["invalid_not_refused"] == 0 and reload_ok
    print(
        f"\nsoak: {result['requests']} requests ({result['requests_per_s']}/s), "
        f"{result['failed_valid']} failed valid, {result['invalid_not_refused']} invalid not "
        f"refused, reload {'ok' if reload_ok else 'FAILED'} "
        f"(versions answering: {result['versions_answering']}), "
        f"RSS {result['rss_mib_after_warmup']} -> {result['rss_mib_end']} MiB: "
        + ("PASS" if ok else "FAIL")
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
