"""The benchmark's floor: what the API's server stack costs with no model behind it.

A FastAPI app whose `POST /predict` reads the body, parses it with orjson and answers a
constant JSON document; `GET /ping` answers 200. It is built and served the way `python -m
app` serves the API: `POST /predict` taken from the ASGI server ahead of FastAPI's layers (as
the API's fast lane does), uvicorn with the same HTTP protocol class (TCP_NODELAY and one write
per answer on every connection), access log off, no proxy headers, no server header. So the
difference between the two is what the API does per request.

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
import sys
from pathlib import Path

import orjson
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, Response
from starlette.types import Receive, Scope, Send
from uvicorn.supervisors import Multiprocess

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from app.server.protocol import ServingHttpProtocol  # noqa: E402

ANSWER = b'{"predictions":[0],"model":{"name":"floor","version":"0"}}'
HEADERS = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(ANSWER))]


class FloorApp(FastAPI):
    """FastAPI with POST /predict answered straight from the ASGI server, like the API's."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/predict" and scope["method"] == "POST":
            chunks, more = [], True
            while more:
                message = await receive()
                chunks.append(message.get("body", b""))
                more = message.get("more_body", False)
            orjson.loads(b"".join(chunks))
            await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
            await send({"type": "http.response.body", "body": ANSWER})
            return
        await super().__call__(scope, receive, send)


app = FloorApp(title="bench-floor")


@app.post("/predict")
async def predict(request: Request) -> Response:
    """Documentation only: FloorApp answers POST /predict before routing."""
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
        "http": ServingHttpProtocol,
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

    sys.path.insert(0, str(Path(__file__).resolve().parent))  # workers import floor_app
    config = uvicorn.Config("floor_app:app", workers=args.workers, **options)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    Multiprocess(config, sockets=[sock]).run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
