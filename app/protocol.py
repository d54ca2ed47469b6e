"""uvicorn's httptools HTTP protocol, with two changes for small keep-alive answers.

- TCP_NODELAY on every connection. uvicorn leaves it unset on a socket shared by several
  workers (uvicorn #3149), which delays each small keep-alive answer by ~40 ms (Nagle and
  delayed ACK); setting it here fixes it for any worker count.
- One write per answer. uvicorn writes the status line and headers when the app sends
  `http.response.start`, and the body on `http.response.body`: two `send()` system calls and,
  with Nagle off, two TCP segments for every answer. `CoalescingTransport` holds what is
  written during one turn of the event loop and writes it at the end of that turn, in one
  call: an answer sent without a pause in between (every JSON answer here) leaves as one
  segment. At 32 connections of one-row requests that is ~13% more answers a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


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


class ServingHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with Nagle off and one write per answer."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().connection_made(CoalescingTransport(transport))
