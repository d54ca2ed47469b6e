"""Where the API's time goes in bench case (c): parse, predict, HTTP.

    .venv/bin/python bench/profile_c.py [--shape dataframe_records] [--seconds 8]
    .venv/bin/python bench/profile_c.py --parse

With --parse it only times, in process, the parse of the 1000-row body of each shape (and of
one record) to the model's matrix: the compiled decoder against the general path (orjson,
app.formats.payload, app.model.schema), interleaved, median of 7 rounds.

Starts the API on bench/run.py's model, drives it with wrk as case (c) does (1000-row bodies of one
shape, 4 connections, 2 threads), samples it with py-spy (`pip install py-spy`; as root or with
ptrace allowed) and prints the share of the samples in each part: parse (JSON to the model's matrix:
app.formats.decoders, app.formats.payload, app.model.schema, parse_json), predict (the model call:
app.model.fastpath, scikit-learn, mlflow), HTTP and the rest (uvicorn, the event loop, the lane,
encoding the answer). Shares are of the samples where a thread was working (see IDLE), of the worker
and of its model processes (`app.parallel.model_process`, sampled with py-spy's --subprocesses),
each shown apart too."""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import run

PARTS = (
    ("parse", ("decoders.py", "payload.py", "schema.py", "parse_json", "orjson", "msgspec")),
    ("predict", ("fastpath.py", "sklearn", "mlflow_model.py", "_libsvm", "batching.py:timed")),
)


# Leaves where a thread waits: py-spy (without --native, which needs stopping the process)
# samples them as running. The event loop's own C code (uvloop: epoll and socket I/O) has no
# Python frame either, so it is counted here too: the HTTP share is a lower bound.
IDLE = ("Condition.wait", "Event.wait", "(queue.py:171)", "(concurrent/futures/thread.py:81)",
        "Runner.run (asyncio/runners.py:118)")  # fmt: skip


def part(stack: str) -> str | None:
    if stack.split(";")[-1].startswith(IDLE) or stack.endswith(IDLE):
        return None
    for name, marks in PARTS:
        if any(mark in stack for mark in marks):
            return name
    return "HTTP and the rest"


def parse_times() -> None:
    """Print the in-process parse time of each body, decoder vs general path."""
    from app.dataplane import parse_json
    from app.formats.payload import normalize
    from app.model.schema import InputSchema

    spec = [{"name": name, "type": "double"} for name in run.IRIS_FEATURES]
    schema = InputSchema.from_signature(spec)
    assert schema.decoder is not None
    one, many = run.make_rows()
    bodies = {shape: run.shape_body(many, shape) for shape in run.C_SHAPES}
    bodies["one record"] = json.dumps(dict(zip(run.IRIS_FEATURES, one, strict=True))).encode()

    def general(body: bytes) -> object:
        return schema.parse(
            normalize(parse_json(body), 10_000), booleans=b"true" in body or b"false" in body
        )

    def decoder(body: bytes) -> object:
        assert schema.decoder is not None
        return schema.decoder.decode(body, 10_000)

    for name, body in bodies.items():
        reps = 200 if len(body) > 1000 else 5000
        times: dict[str, list[float]] = {"general": [], "decoder": []}
        for _ in range(7):
            for way, parse in (("general", general), ("decoder", decoder)):
                start = time.perf_counter()
                for _ in range(reps):
                    parse(body)
                times[way].append((time.perf_counter() - start) / reps * 1e6)
        old, new = (statistics.median(times[w]) for w in ("general", "decoder"))
        print(f"{name:<18} general {old:8.1f} us   decoder {new:8.1f} us   x{old / new:.1f}")


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench/profile_c.py", description=__doc__)
    parser.add_argument("--shape", choices=run.C_SHAPES, default="dataframe_records")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--verbose", action="store_true", help="top stacks of the rest")
    parser.add_argument("--parse", action="store_true", help="in-process parse times only")
    args = parser.parse_args()
    if args.parse:
        parse_times()
        return 0
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    wrk = run.ensure_wrk()
    run.ensure_model()
    _, many = run.make_rows()
    with tempfile.TemporaryDirectory() as tmp:
        body = Path(tmp) / "body.json"
        body.write_bytes(run.shape_body(many, args.shape))
        port = run.free_port()
        cmd = [sys.executable, "-m", "app", "--host", run.HOST, "--port", str(port)]
        env = {**run.store_env(), "MODEL_URI": run.MODEL_URI}
        server = run.Server(cmd, env, Path(tmp) / "api.log", run.STORE)
        try:
            server.wait_http(f"http://{run.HOST}:{port}/readyz", timeout=120)
            url = f"http://{run.HOST}:{port}/predict"
            run.wrk(wrk, url, body, run.CASES["c"], 2)  # warm-up
            load = threading.Thread(
                target=run.wrk, args=(wrk, url, body, run.CASES["c"], args.seconds + 2)
            )
            load.start()
            raw = Path(tmp) / "stacks.txt"
            spied = subprocess.run(
                [spy, "record", "--pid", str(server.proc.pid), "--rate", "250", "--nonblocking",
                 "--subprocesses", "--duration", str(round(args.seconds)), "--format", "raw",
                 "--output", str(raw)],
                check=False, capture_output=True, text=True, timeout=args.seconds + 60,
            )  # fmt: skip
            load.join()
            if spied.returncode != 0:
                print(f"py-spy failed: {spied.stderr[-2000:]}", file=sys.stderr)
                return 2
        finally:
            server.stop()
        counts: Counter[str] = Counter()
        by_process: Counter[tuple[str, str]] = Counter()
        leaves: Counter[str] = Counter()
        skipped = 0
        for line in raw.read_text(errors="replace").splitlines():
            stack, _, count = line.rpartition(" ")
            if not count.isdigit():  # py-spy sometimes writes a garbled frame (--subprocesses)
                skipped += 1
                continue
            n = int(count)
            name = part(stack)
            if name is None:
                continue
            counts[name] += n
            by_process["model process" if "app.parallel.child" in stack else "worker", name] += n
            if name == "HTTP and the rest":
                leaves[";".join(stack.split(";")[-3:])] += n
        if skipped:
            print(f"skipped {skipped} garbled line(s) of py-spy's output", file=sys.stderr)
        if args.verbose:
            for leaf, n in leaves.most_common(25):
                print(f"{n:6} {leaf}", file=sys.stderr)
    total = sum(counts.values()) or 1
    print(f"case (c), {args.shape}: {total} samples of running threads")
    for name in ("parse", "predict", "HTTP and the rest"):
        print(f"  {name:<18} {100 * counts[name] / total:5.1f}%")
    for process in ("worker", "model process"):
        shares = [f"{name} {100 * by_process[process, name] / total:.1f}%" for name in counts]
        print(f"  of which in the {process}: {', '.join(shares)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
