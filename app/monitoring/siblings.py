"""The other workers of this host, for POST /feedback: each worker answers its siblings on a
Unix socket in the folder they share (PROMETHEUS_MULTIPROC_DIR), so a request another worker
answered is found, and scored once, without a database."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Any, Protocol

import orjson

from app.monitoring.metrics import SHARED_DIR_ENV

logger = logging.getLogger(__name__)

SIBLING_TIMEOUT = 2.0
"""Seconds a worker waits for a sibling's answer."""
_SOCKET = "feedback-{pid}.sock"


class Answers(Protocol):
    """What a worker knows of its own requests (`app.monitoring.feedback.Recent`)."""

    def answer(self, op: str, request_id: str, rows: int) -> dict[str, Any]: ...


class Siblings:
    """The other workers of this host, asked over Unix sockets in the folder they share."""

    def __init__(self, recent: Answers) -> None:
        self.recent = recent
        folder = os.environ.get(SHARED_DIR_ENV)
        self.folder = Path(folder) if folder else None
        self._server: asyncio.Server | None = None
        self._path: Path | None = None

    async def start(self) -> None:
        if self.folder is None:
            return
        self._path = self.folder / _SOCKET.format(pid=os.getpid())
        self._path.unlink(missing_ok=True)
        self._server = await asyncio.start_unix_server(self._serve, path=str(self._path))

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        if self._path is not None:
            self._path.unlink(missing_ok=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            ask = orjson.loads(await asyncio.wait_for(reader.readline(), SIBLING_TIMEOUT))
            answer = self.recent.answer(str(ask["op"]), str(ask["id"]), int(ask["rows"]))
            writer.write(orjson.dumps(answer, default=str) + b"\n")
            await writer.drain()
        except (OSError, ValueError, KeyError, TypeError, TimeoutError) as exc:
            logger.warning("feedback: a sibling's question went unanswered: %s", exc)
        finally:
            writer.close()

    async def ask(self, op: str, request_id: str, rows: int) -> dict[str, Any]:
        """The first sibling's answer that found the request (or that scored it), else
        `unknown`. A sibling that is gone or slow is passed over."""
        if self.folder is None:
            return {"state": "unknown"}
        answers = await asyncio.gather(
            *(self._ask(path, op, request_id, rows) for path in self._others())
        )
        for state in ("found", "scored"):
            for answer in answers:
                if answer.get("state") == state:
                    return answer
        return {"state": "unknown"}

    def _others(self) -> list[Path]:
        assert self.folder is not None
        mine = _SOCKET.format(pid=os.getpid())
        return [p for p in self.folder.glob(_SOCKET.format(pid="*")) if p.name != mine]

    async def _ask(self, path: Path, op: str, request_id: str, rows: int) -> dict[str, Any]:
        question = orjson.dumps({"op": op, "id": request_id, "rows": rows}) + b"\n"
        try:
            async with asyncio.timeout(SIBLING_TIMEOUT):
                reader, writer = await asyncio.open_unix_connection(str(path))
                try:
                    writer.write(question)
                    await writer.drain()
                    answer = orjson.loads(await reader.readline())
                finally:
                    writer.close()
        except (OSError, ValueError, TimeoutError):
            return {}
        return answer if isinstance(answer, dict) else {}
