"""uvicorn's httptools HTTP protocol, with two changes for small keep-alive answers.

- TCP_NODELAY on every connection. uvicorn leaves it unset on a socket shared by several
  workers, so each small keep-alive answer waits on Nagle's algorithm and the client's
  delayed ACK; setting it here fixes it for any worker count.
- One write per answer. uvicorn writes the status line and headers when the app sends
  `http.response.start`, and the body on `http.response.body`: two `send()` system calls and,
  with Nagle off, two TCP segments for every answer. `CoalescingTransport` holds what is
  written during one turn of the event loop and writes it at the end of that turn, in one
  call: an answer sent without a pause in between (every JSON answer here) leaves as one
  segment.

With several workers, `BalancedHttpProtocol` also evens out the keep-alive connections between
them (`ConnectionBalance`). Both build on uvicorn's internals through `app.compat.uvicorn`;
where it lacks them, `http_protocol` hands uvicorn its own protocol instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import MutableSequence
from typing import Any, ClassVar

from prometheus_client import Counter

from app.compat.uvicorn import httptools_protocol

# uvicorn's protocol, or a stand-in base when it lacks what the tuned one needs (then
# `http_protocol` never hands the tuned classes to uvicorn).
_Base: Any = httptools_protocol() or asyncio.Protocol


class CoalescingTransport(asyncio.Transport):
    """A transport whose writes within one turn of the event loop go out as one write.

    Everything else is the wrapped transport's. Held bytes are written before the transport
    closes, so nothing written is lost or reordered."""

    def __init__(self, transport: asyncio.Transport) -> None:
        super().__init__()
        self._transport = transport
        self._held: list[bytes | bytearray | memoryview] = []
        self._loop = asyncio.get_running_loop()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        held = self._held
        held.append(data)
        if len(held) == 1:
            self._loop.call_soon(self._flush)

    def writelines(self, list_of_data: Any) -> None:
        for data in list_of_data:
            self.write(data)

    def _flush(self) -> None:
        held = self._held
        if held:
            self._held = []
            if self._transport.is_closing():
                return  # the peer has gone: nobody to write to
            self._transport.write(held[0] if len(held) == 1 else b"".join(held))

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def abort(self) -> None:
        self._held = []
        self._transport.abort()

    def write_eof(self) -> None:
        self._flush()
        self._transport.write_eof()

    def can_write_eof(self) -> bool:
        return self._transport.can_write_eof()

    def get_write_buffer_size(self) -> int:
        held = sum(len(data) for data in self._held)
        return held + self._transport.get_write_buffer_size()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._transport.set_write_buffer_limits(high, low)

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()

    def is_reading(self) -> bool:
        return self._transport.is_reading()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._transport.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._transport.get_protocol()


class ServingHttpProtocol(_Base):
    """uvicorn's httptools protocol with Nagle off and one write per answer."""

    def connection_made(self, transport: asyncio.Transport) -> None:
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().connection_made(CoalescingTransport(transport))


class ConnectionBalance:
    """Evens out keep-alive connections between the workers sharing one listening socket.

    The worker whose event loop wakes first accepts every connection waiting, so a client
    that opens a few keep-alive connections at once (a pool, a load balancer, wrk) often
    lands them all on one worker and keeps them there while the others idle. Accepting in
    turn fixes that on the accept path but costs clients that open a connection per request
    much of their throughput.

    So a worker holding at least GAP more open connections than its least loaded sibling
    answers one request with `Connection: close` (at most one per INTERVAL); the client opens
    a new connection, which the sibling, idle, is the likely one to accept. The answer is
    complete and the close is announced in it: HTTP clients reconnect for the next request
    without an error or a retry. Balanced workers (or ones that differ by one) never close
    anything, and a client that closes its connections anyway loses nothing.

    `loads` is shared memory, one slot per worker: its open connections. Each connection
    handed back counts in `handed_back` (http_connections_rebalanced_total: a steady rate
    means a worker that does not accept, e.g. stopped)."""

    GAP = 2
    INTERVAL = 0.1
    """Seconds between two connections handed back by one worker: the count moves by one
    per close, and the client's new connection must land before the next look."""

    def __init__(self, loads: MutableSequence[int], index: int, handed_back: Counter) -> None:
        self._loads = loads
        self._index = index
        self._next = 0.0
        self._handed_back = handed_back

    def count(self, connections: int) -> None:
        """This worker now holds `connections` open connections."""
        self._loads[self._index] = connections

    def hand_back(self) -> bool:
        """Whether to close the connection after the request now starting."""
        now = time.monotonic()
        if now < self._next or self._loads[self._index] - min(self._loads) < self.GAP:
            return False
        self._next = now + self.INTERVAL
        self._handed_back.inc()
        return True


class BalancedHttpProtocol(ServingHttpProtocol):
    """A worker's protocol: counts its connections and hands one back when it holds too many
    (`ConnectionBalance`). `balanced_protocol` makes one per worker."""

    balance: ClassVar[ConnectionBalance]

    def connection_made(self, transport: asyncio.Transport) -> None:
        super().connection_made(transport)
        self.balance.count(len(self.connections))

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self.balance.count(len(self.connections))

    def on_headers_complete(self) -> None:
        previous = self.cycle
        super().on_headers_complete()
        cycle = self.cycle
        if (
            cycle is not previous  # a request (not an upgrade) starts
            and cycle.keep_alive
            and not self.pipeline  # none queued behind it that the close would drop
            and self.balance.hand_back()
        ):
            cycle.keep_alive = False  # uvicorn says `connection: close` and closes after it


def http_protocol(loads: MutableSequence[int] | None, index: int) -> type[Any] | str:
    """What uvicorn serves worker `index`'s connections with: the tuned protocol (balanced
    between workers sharing `loads`, when there are), or uvicorn's own ("auto") on a
    uvicorn the tuned one cannot build on (`app.compat.uvicorn`)."""
    if httptools_protocol() is None:
        return "auto"
    return ServingHttpProtocol if loads is None else balanced_protocol(loads, index)


def balanced_protocol(loads: MutableSequence[int], index: int) -> type[BalancedHttpProtocol]:
    """The protocol class for worker `index` of those sharing `loads`. Its counter is in no
    registry: with workers, /metrics reads every metric from the shared folder."""
    handed_back = Counter(
        "http_connections_rebalanced",
        "Keep-alive connections a worker closed after an answer, holding more than a sibling.",
        registry=None,
    )
    balance = ConnectionBalance(loads, index, handed_back)
    return type("BalancedHttpProtocol", (BalancedHttpProtocol,), {"balance": balance})
