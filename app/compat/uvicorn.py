"""uvicorn's httptools protocol, which `app.server.protocol` subclasses, and its server's exit
hook, which `app.server.drain` overrides.

The tuned protocol overrides `connection_made`, `connection_lost` and `on_headers_complete`
and reads the protocol's `connections` (the server's open connections), `cycle` (the request
being answered, with its `keep_alive`) and `pipeline` (requests queued behind it). Without
them, the server runs uvicorn's own protocol: Nagle stays on for a shared socket, every
answer takes two writes, and workers no longer even out their connections.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import logging
from types import ModuleType
from typing import Any

from app.compat._warn import fallback

logger = logging.getLogger(__name__)

MODULE = "uvicorn.protocols.http.httptools_impl"
NEEDS = {
    "HttpToolsProtocol": (
        "def connection_made",
        "def connection_lost",
        "def on_headers_complete",
        "self.connections",
        "self.cycle",
        "self.pipeline",
    ),
    "RequestResponseCycle": ("self.keep_alive",),
}
"""What the tuned protocol uses, by class, as it reads in uvicorn's source."""


def probe(module: ModuleType | None = None) -> str | None:
    """What the tuned protocol relies on that this uvicorn lacks; None: nothing."""
    try:
        module = module or importlib.import_module(MODULE)
    except ImportError as exc:
        return f"its httptools protocol cannot be imported ({exc})"
    for name, needles in NEEDS.items():
        cls = getattr(module, name, None)
        if not isinstance(cls, type):
            return f"{MODULE}.{name} is gone"
        try:
            source = inspect.getsource(cls)
        except (OSError, TypeError):
            return f"{name}'s source cannot be read"
        missing = [needle for needle in needles if needle not in source]
        if missing:
            return f"{name} has no {', '.join(missing)}"
    return None


@functools.cache
def httptools_protocol() -> type[Any] | None:
    """uvicorn's HttpToolsProtocol when the tuned protocol can build on it; else None, with
    one warning (the server then asks uvicorn for its own protocol)."""
    problem = probe()
    if problem is not None:
        cost = "Nagle on keep-alive answers, two writes per answer, no connection balancing"
        fallback(logger, "uvicorn", problem, cost)
        return None
    cls: type[Any] = importlib.import_module(MODULE).HttpToolsProtocol
    return cls


SERVER_NEEDS = ("def handle_exit(self, sig", "self.should_exit = True")
"""What the draining server (`app.server.drain`) uses of `uvicorn.Server`: the method its
signal handlers call, which asks the main loop to stop by setting `should_exit`."""


def server_probe(server: type[Any] | None = None) -> str | None:
    """What draining relies on that this uvicorn's `Server` lacks; None: nothing."""
    if server is None:
        server = importlib.import_module("uvicorn").Server
    try:
        source = inspect.getsource(server)
    except (OSError, TypeError):
        return "Server's source cannot be read"
    missing = [needle for needle in SERVER_NEEDS if needle not in source]
    return f"Server has no {', '.join(missing)}" if missing else None


@functools.cache
def drains() -> bool:
    """Whether SIGTERM can start a drain; else False, with one warning (SIGTERM then stops
    the server at once, as uvicorn does)."""
    problem = server_probe()
    if problem is not None:
        fallback(logger, "uvicorn", problem, "no drain: SIGTERM stops accepting at once")
        return False
    return True
