"""The V2 infer lane's cost per request against /predict's, in process.

    .venv/bin/python bench/v2profile.py [--reps 20000] [--rounds 7] [--layout columns|matrix]
    valgrind --tool=callgrind --instr-atstart=no .venv/bin/python bench/v2profile.py \
        --callgrind predict --reps 2000

Builds the real app (`create_app`) on bench/run.py's model, runs its lifespan, and drives its
ASGI callable (the middleware and the lanes, as uvicorn does, without the sockets) with case
(b)'s exact bodies: /predict's one-row dataframe_split and the same row as a V2 body
(bench/v2cost.py `body()`), one request at a time. Both answers are checked to carry the same
prediction first.

Without --callgrind it prints the median in-process microseconds per request of each lane over
interleaved rounds, and their ratio. With --callgrind LANE (under valgrind as above) it turns
instrumentation on only around REPS requests of that lane (`callgrind_control -i on|off`), so
the instructions the profile counts, divided by REPS, are that lane's per request.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

import run
import v2cost

PORT = 8000


def scope(path: str, body: bytes, method: str) -> dict[str, Any]:
    """What uvicorn hands the app for wrk's request."""
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "server": ("127.0.0.1", PORT),
        "client": ("127.0.0.1", 50000),
        "scheme": "http",
        "method": method,
        "root_path": "",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [
            (b"host", f"127.0.0.1:{PORT}".encode()),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
        "state": {},
    }


async def call(app: Any, path: str, body: bytes, method: str = "POST") -> tuple[int, bytes]:
    message = {"type": "http.request", "body": body, "more_body": False}
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return message

    async def send(msg: dict[str, Any]) -> None:
        sent.append(msg)

    await app(scope(path, body, method), receive, send)
    return sent[0]["status"], sent[-1].get("body", b"")


async def drive(args: argparse.Namespace) -> None:
    from app.api.application import create_app
    from app.settings import Settings

    info = run.ensure_model()
    env = run.store_env()
    os.environ["MLFLOW_TRACKING_URI"] = env["MLFLOW_TRACKING_URI"]
    app = create_app(Settings(model_uri=run.MODEL_URI), tracking_uri=env["MLFLOW_TRACKING_URI"])
    one, _ = run.make_rows()
    lanes = {
        "predict": ("/predict", run.body([one], "split")),
        "v2": (
            v2cost.infer_url("/predict", info["registered_name"]),
            v2cost.body([one], list(run.IRIS_FEATURES), args.layout),
        ),
    }
    async with app.router.lifespan_context(app):
        while True:
            status, _ = await call(app, "/readyz", b"", "GET")
            if status == 200:
                break
            await asyncio.sleep(0.05)
        predict = json.loads((await call(app, *lanes["predict"]))[1])["predictions"]
        status, answer = await call(app, *lanes["v2"])
        assert status == 200 and json.loads(answer)["outputs"][0]["data"] == predict, answer
        for lane in lanes.values():  # warm-up
            for _ in range(2000):
                await call(app, *lane)
        if args.callgrind:
            path, body = lanes[args.callgrind]
            pid = str(os.getpid())
            subprocess.run(["callgrind_control", "-i", "on", pid], check=True, capture_output=True)
            for _ in range(args.reps):
                await call(app, path, body)
            subprocess.run(["callgrind_control", "-i", "off", pid], check=True, capture_output=True)
            return
        times: dict[str, list[float]] = {name: [] for name in lanes}
        for _ in range(args.rounds):
            for name, (path, body) in lanes.items():
                start = time.perf_counter()
                for _ in range(args.reps):
                    await call(app, path, body)
                times[name].append((time.perf_counter() - start) / args.reps * 1e6)
    p, v = (statistics.median(times[n]) for n in ("predict", "v2"))
    print(f"in process, one request at a time, median of {args.rounds} rounds x {args.reps}:")
    print(f"  /predict {p:6.1f} us   V2 ({args.layout}) {v:6.1f} us   V2/predict {v / p:.3f}")


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench/v2profile.py", description=__doc__)
    parser.add_argument("--reps", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--layout", choices=v2cost.LAYOUTS, default="columns")
    parser.add_argument("--callgrind", choices=("predict", "v2"))
    args = parser.parse_args()
    try:
        import uvloop  # the server's loop

        runner: Any = uvloop.run
    except ImportError:
        runner = asyncio.run
    runner(drive(args))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
