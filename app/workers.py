"""Which workers have their model, when a supervisor runs several (WORKERS > 1).

Each worker marks itself ready with a file `ready-<pid>` in the folder the workers share
(PROMETHEUS_MULTIPROC_DIR, made by the supervisor) once its model serves, and removes it when
it stops; /readyz answers ready only when every worker has marked itself (live pids only).
In a single process there is no folder and nothing to count.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

SHARED_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"


def _marker() -> Path | None:
    folder = os.environ.get(SHARED_DIR_ENV)
    return Path(folder) / f"ready-{os.getpid()}" if folder else None


def mark_ready(ready: bool) -> None:
    marker = _marker()
    if marker is None:
        return
    if ready:
        marker.touch()
    else:
        marker.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, 0)
        return True
    return False


def ready_workers() -> int | None:
    """How many live workers have their model (None: not under a supervisor)."""
    folder = os.environ.get(SHARED_DIR_ENV)
    if not folder:
        return None
    pids = [p.name.removeprefix("ready-") for p in Path(folder).glob("ready-*")]
    return sum(1 for pid in pids if pid.isdigit() and _alive(int(pid)))
