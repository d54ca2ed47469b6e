"""The load balancer's cost: the compose stack's one API, direct, against a fleet of 2 replicas
behind HAProxy (docker-compose.fleet.yaml), at case (b) of bench/run.py, in one run.

    .venv/bin/python bench/fleetcost.py [--duration 10] [--rounds 3]

It brings up a fresh copy of the compose stack on the Docker engine (as the compose tests do:
its own project name, .env and free host ports), drives the API at 127.0.0.1:API_HOST_PORT
with wrk (1 row a request, 32 connections), then scales it to the fleet with API_REPLICAS=2
(the balancer takes the same port) and drives it again; with --rounds N, alternately, N times
each. Every answer must be 2xx. It prints both side by side, and takes the stack down with its
volumes at the end, whatever happens.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
import run  # noqa: E402  (bench/, this script's folder; puts the repository on sys.path)

from tests.compose.stack import Stack, engine_problem  # noqa: E402

FLEET = ("-f", "docker-compose.yaml", "-f", "docker-compose.fleet.yaml")
REPLICAS = 2
CASE = run.CASES["b"]


def _drive(wrk: str, url: str, body: Path, seconds: float, warmup: float) -> dict[str, Any]:
    run.wrk(wrk, url, body, CASE, warmup)
    busy = run.machine_busy()
    started = time.monotonic()
    result = run.wrk(wrk, url, body, CASE, seconds)
    result["machine_cores"] = (run.machine_busy() - busy) / (time.monotonic() - started)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/fleetcost.py", description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds measured (10)")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up (2)")
    parser.add_argument("--rounds", type=int, default=1, help="measures of each, alternated (1)")
    args = parser.parse_args(argv)
    problem = engine_problem()
    if problem:
        print(f"bench/fleetcost.py: {problem}", file=sys.stderr)
        return 2
    wrk = run.ensure_wrk()
    results: dict[str, list[dict[str, Any]]] = {"1 API, direct": [], f"{REPLICAS} replicas": []}
    with tempfile.TemporaryDirectory() as tmp:
        stack = Stack(Path(tmp))
        body = Path(tmp) / "1-row.json"
        body.write_bytes(run.body([[5.9, 3.0, 5.1, 1.8]], "split"))
        with (stack.dir / ".env").open("a") as env:
            env.write(f"API_REPLICAS={REPLICAS}\n")
        url = stack.url("API_HOST_PORT") + "/predict"
        try:
            run.log("compose up (the stack with one API)")
            stack.compose("up", "--detach", "--build", "--wait", timeout=1800)
            for round_ in range(args.rounds):
                for name in results if round_ % 2 == 0 else list(results)[::-1]:
                    files = FLEET if name != "1 API, direct" else ()
                    run.log(f"round {round_ + 1}: {name}")
                    # Back to the single stack, the balancer goes (an orphan) with the replicas.
                    orphans = () if files else ("--remove-orphans",)
                    stack.compose(*files, "up", "--detach", "--wait", *orphans, timeout=600)
                    result = _drive(wrk, url, body, args.duration, args.warmup)
                    results[name].append(result)
                    run.log(
                        f"{name}: {result['rps']:,.0f} req/s, p50 {result['p50_ms']:.2f} ms,"
                        f" p99 {result['p99_ms']:.2f} ms, {result['errors']} errors"
                    )
        finally:
            stack.down()
    print(f"\n(b) {CASE.title}, {args.duration:g} s after {args.warmup:g} s of warm-up, median of"
          f" {args.rounds} round(s):")  # fmt: skip
    print(f"  {'':<16} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'cores':>6}")
    medians = {}
    for name, rounds in results.items():
        m = {k: statistics.median(r[k] for r in rounds) for k in ("rps", "p50_ms", "p99_ms")}
        m["errors"] = sum(r["errors"] for r in rounds)
        m["cores"] = statistics.median(r["machine_cores"] for r in rounds)
        medians[name] = m
        print(
            f"  {name:<16} {m['rps']:>8,.0f} {m['p50_ms']:>8.2f} {m['p99_ms']:>8.2f}"
            f" {m['errors']:>7} {m['cores']:>6.2f}"
        )
    direct, fleet = medians.values()
    print(f"  fleet / direct: req/s {fleet['rps'] / direct['rps']:.2f}x,"
          f" p99 {fleet['p99_ms'] / direct['p99_ms']:.2f}x")  # fmt: skip
    return 1 if any(m["errors"] for m in medians.values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
