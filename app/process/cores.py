"""A core of its own for each of the service's processes (PIN_CORES).

When the service's processes (WORKERS workers, each with its model processes) are exactly as
many as the cores it may run on, each is pinned to one: worker i to the (i * (1 + M))-th core
of its CPU set, its M model processes to the cores after it. Left free, the scheduler can
run a process and the one it just woke (the worker writing a body into its model process's
pipe, the client writing a request) on one core while the other idles; pinned, each keeps its
core and its caches (docs/performance.md has the measurements).

Threads inherit their creator's core: a worker pins itself before its app starts any. The
plan is made once per process, from the CPU set it started with (the worker's own shrinks to
one core once pinned). Elsewhere than Linux (no sched_setaffinity) nothing is pinned.
"""

from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass

logger = logging.getLogger(__name__)


@functools.cache
def available() -> tuple[int, ...]:
    """The cores this process could run on when first asked (before it pinned itself)."""
    getaffinity = getattr(os, "sched_getaffinity", None)
    if getaffinity is None:
        return tuple(range(os.cpu_count() or 1))
    return tuple(sorted(getaffinity(0)))


@dataclass(frozen=True)
class Plan:
    """The core of one worker and of each of its model processes (None: not pinned)."""

    worker: int | None = None
    model_processes: tuple[int, ...] = ()


def plan(pin: bool | None, workers: int, model_processes: int, index: int) -> Plan:
    """Worker `index`'s plan. `pin`: True pins always (cores taken in turn when processes
    outnumber them), False never, None when processes and cores are as many, and over one."""
    cores = available()
    processes = workers * (1 + model_processes)
    pinnable = hasattr(os, "sched_setaffinity") and len(cores) > 1
    if not pinnable or pin is False or (pin is None and processes != len(cores)):
        return Plan()
    first = index * (1 + model_processes)
    return Plan(
        cores[first % len(cores)],
        tuple(cores[(first + 1 + k) % len(cores)] for k in range(model_processes)),
    )


def pin(pid: int, core: int | None, what: str) -> bool:
    """Pin process `pid` (0: this one, from the calling thread on) to `core`; False (and a
    warning) when the system refuses."""
    if core is None:
        return False
    try:
        os.sched_setaffinity(pid, {core})
    except OSError as exc:
        logger.warning("could not pin %s to core %d: %s", what, core, exc)
        return False
    return True


_own = Plan()


def pin_worker(pin_cores: bool | None, workers: int, model_processes: int, index: int) -> None:
    """Pin this worker as `plan` says (before it starts threads) and keep the plan, for its
    model processes (`model_process_core`)."""
    global _own
    _own = plan(pin_cores, workers, model_processes, index)
    if pin(0, _own.worker, f"worker {index}"):
        cores = ", ".join(str(core) for core in _own.model_processes)
        logger.info(
            "worker %d pinned to core %d%s", index, _own.worker,
            f", its model processes to {cores}" if cores else "",
        )  # fmt: skip


def model_process_core(k: int) -> int | None:
    """The core of this worker's k-th model process, or None (not pinned)."""
    return _own.model_processes[k] if k < len(_own.model_processes) else None
