"""The benchmark's floor: what the API's server stack costs with no model behind it.

A FastAPI app whose `POST /predict` reads the body, parses it with orjson and answers a
constant JSON document; `GET /ping` answers 200. It is served the way `python -m app` serves
the API (uvicorn, default loop and HTTP implementation, access log off, no proxy headers, no
server header), so the difference between the two is what the API does per request.

    python bench/floor_app.py --host 127.0.0.1 --port P [--workers N]

With N > 1 workers the listening socket is bound here with `proto=IPPROTO_TCP` and handed to
uvicorn's own supervisor: sockets bound by `uvicorn --workers N` leave TCP_NODELAY off on
accepted connections (uvicorn #3149), which would make the floor ~40 ms slow per keep-alive
request and no floor at all.
"""

from __future__ import annotations

import argparse
import signal
import socket
from pathlib import Path

import orjson
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, Response
from uvicorn.supervisors import Multiprocess

ANSWER = b'{"predictions":[0],"model":{"name":"floor","version":"0"}}'

app = FastAPI(title="bench-floor")


@app.post("/predict")
async def predict(request: Request) -> Response:
    orjson.loads(await request.body())
    return Response(ANSWER, media_type="application/json")


@app.get("/ping")
async def ping() -> PlainTextResponse:
    return PlainTextResponse("\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="floor_app.py", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)

    options = {
        "host": args.host,
        "port": args.port,
        "log_level": "warning",
        "access_log": False,
        "proxy_headers": False,
        "server_header": False,
    }
    if args.workers <= 1:
        server = uvicorn.Server(uvicorn.Config(app, **options))
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: None)
        server.run()
        return 0 if server.started else 1

    config = uvicorn.Config(
        "floor_app:app", app_dir=str(Path(__file__).parent), workers=args.workers, **options
    )
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    Multiprocess(config, sockets=[sock]).run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
