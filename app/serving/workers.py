"""The workers under one supervisor (WORKERS > 1): which have their model, and reloading all.

The workers share a folder (PROMETHEUS_MULTIPROC_DIR, made by the supervisor). In it each
worker keeps two markers, removed when it stops:
- `ready-<pid>` once its model serves: /readyz answers ready only when every worker has it
  (live pids only);
- `worker-<pid>` while it handles SIGHUP, i.e. while it can take part in a reload.

A reload asked of one worker (POST /admin/reload) reaches all of them: that worker writes a
request `reload-<id>.json`, sends SIGHUP to every other live worker, reloads itself meanwhile,
and waits for each sibling's answer `reload-<id>-<pid>.json` (up to REQUEST_TIMEOUT). The
client hears every worker's result. A SIGHUP with no request pending (an operator's, sent to
the supervisor and passed on to each worker) reloads that worker alone, as in one process.
In a single process there is no folder and nothing to count or ask.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.errors import ReloadFailed, ServiceError
from app.monitoring.metrics import SHARED_DIR_ENV

if TYPE_CHECKING:
    from app.serving.slot import ModelSlot

_POLL = 0.02
"""Seconds between looks for the siblings' answers."""

Reload = Callable[[bool], Awaitable[dict[str, Any]]]
"""Reload this worker (force?) and say how it went: a result entry (see `result_entry`)."""


def _folder() -> Path | None:
    folder = os.environ.get(SHARED_DIR_ENV)
    return Path(folder) if folder else None


def _mark(prefix: str, on: bool) -> None:
    folder = _folder()
    if folder is None:
        return
    marker = folder / f"{prefix}-{os.getpid()}"
    if on:
        marker.touch()
    else:
        marker.unlink(missing_ok=True)


def mark_ready(ready: bool) -> None:
    _mark("ready", ready)


def mark_reloadable(reloadable: bool) -> None:
    _mark("worker", reloadable)


def _alive(pid: int) -> bool:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, 0)
        return True
    return False


def _live_pids(folder: Path, prefix: str) -> list[int]:
    pids = [p.name.removeprefix(f"{prefix}-") for p in folder.glob(f"{prefix}-*")]
    return sorted(int(pid) for pid in pids if pid.isdigit() and _alive(int(pid)))


def ready_workers() -> int | None:
    """How many live workers have their model (None: not under a supervisor)."""
    folder = _folder()
    return None if folder is None else len(_live_pids(folder, "ready"))


def _write(path: Path, data: dict[str, Any]) -> None:
    """All or nothing: a reader never sees half a file."""
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    partial.write_text(json.dumps(data))
    partial.replace(path)


def _read(path: Path) -> dict[str, Any] | None:
    with contextlib.suppress(OSError, ValueError):
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else None
    return None


def result_entry(status: str, *, model: dict[str, Any] | None = None, error: str = "") -> dict:
    """One worker's part of a reload's answer."""
    entry: dict[str, Any] = {"pid": os.getpid(), "status": status}
    if model is not None:
        entry["model"] = model
    if error:
        entry["error"] = error
    return entry


async def reload_all(reload: Reload, force: bool, deadline: float) -> list[dict[str, Any]] | None:
    """Reload this worker and every sibling; each one's result entry, this worker's first.

    None when not under a supervisor (the caller's own result is the answer). A sibling that
    does not answer within `deadline` seconds is reported as such."""
    folder = _folder()
    if folder is None:
        return None
    me = os.getpid()
    siblings = [pid for pid in _live_pids(folder, "worker") if pid != me]
    request_id = uuid.uuid4().hex
    request = folder / f"reload-{request_id}.json"
    _write(request, {"force": force, "from": me})
    try:
        for pid in siblings:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGHUP)
        entries = [await reload(force)]
        entries += await _answers(folder, request_id, siblings, deadline)
    finally:
        request.unlink(missing_ok=True)
        for answer in folder.glob(f"reload-{request_id}-*.json"):
            answer.unlink(missing_ok=True)
    return entries


async def _answers(
    folder: Path, request_id: str, pids: list[int], deadline: float
) -> list[dict[str, Any]]:
    answers: dict[int, dict[str, Any]] = {}
    give_up = time.monotonic() + deadline
    while len(answers) < len(pids) and time.monotonic() < give_up:
        for pid in pids:
            if pid not in answers:
                answer = _read(folder / f"reload-{request_id}-{pid}.json")
                if answer is not None:
                    answers[pid] = answer
                elif not _alive(pid):
                    answers[pid] = {"pid": pid, "status": "failed", "error": "worker exited"}
        await asyncio.sleep(_POLL)
    return [
        answers.get(pid)
        or {"pid": pid, "status": "failed", "error": f"no answer within {deadline:g} s"}
        for pid in pids
    ]


async def answer_requests(reload: Reload) -> bool:
    """On SIGHUP: carry out each sibling's pending reload request and answer it.

    False when no request is pending at all (an operator's SIGHUP: reload alone)."""
    folder = _folder()
    if folder is None:
        return False
    pending = sorted(p for p in folder.glob("reload-*.json") if p.stem.count("-") == 1)
    me = os.getpid()
    for path in pending:
        request = _read(path)
        answer = path.with_name(f"{path.stem}-{me}.json")
        if request is None or request.get("from") == me or answer.exists():
            continue
        _write(answer, await reload(bool(request.get("force"))))
    return bool(pending)


async def reload_worker(slot: ModelSlot, force: bool) -> dict[str, Any]:
    """Reload this worker's model: its result entry, failures included."""
    try:
        result = await slot.reload(force=force)
    except ServiceError as exc:  # ReloadFailed, or NotReady before the first load
        return result_entry("failed", error=exc.message)
    finally:
        await slot.reload_companion(force)
    return result_entry(result["status"], model=result["model"])


async def reload_everywhere(slot: ModelSlot, force: bool) -> dict[str, Any]:
    """POST /admin/reload: this worker's result, and with several workers every worker's.

    ReloadFailed (502) when any worker failed or did not answer; each keeps its old model."""
    own: dict[str, Any] = {}

    async def mine(force: bool) -> dict[str, Any]:
        try:
            own.update(await slot.reload(force=force))
        except ServiceError as exc:
            own["error"] = exc
            return result_entry("failed", error=exc.message)
        finally:
            shadow = await slot.reload_companion(force)
            if shadow is not None:
                own["shadow"] = shadow
        return result_entry(own["status"], model=own["model"])

    entries = await reload_all(mine, force, slot.settings.request_timeout)
    if entries is None:  # one process
        shadow = await slot.reload_companion(force)
        result: dict[str, Any] = await slot.reload(force=force)
        return result if shadow is None else {**result, "shadow": shadow}
    failed = [e for e in entries if e["status"] == "failed"]
    if failed:
        raise ReloadFailed(
            f"reload failed in {len(failed)} of {len(entries)} workers: "
            + "; ".join(f"worker {e['pid']}: {e['error']}" for e in failed),
            [{"loc": ["workers", e["pid"]], "msg": e["error"]} for e in failed],
        )
    changed = any(e["status"] == "reloaded" for e in entries)
    return {**own, "status": "reloaded" if changed else "unchanged", "workers": entries}
