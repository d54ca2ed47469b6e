"""A core of its own for each process (`app.process.cores`, PIN_CORES): `python -m app` given two
cores pins its worker and model process, or its two workers, one to each, keeps doing so
across a reload, and pins nothing when told not to or when its processes are not as many as
its cores."""

from __future__ import annotations

import json
import os
import re
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.app.conftest import IRIS_EXAMPLE, TrainedModel
from tests.servers import Server, free_port, python_env, running

KEY = "pin-cores-test-key-0123456789"
AVAILABLE = sorted(os.sched_getaffinity(0))
if len(AVAILABLE) < 2:
    pytest.skip("pinning needs two cores to give the service", allow_module_level=True)
A, B = AVAILABLE[:2]
BODY = json.dumps(
    {"records": [{k: v + i % 7 / 10 for k, v in IRIS_EXAMPLE.items()} for i in range(400)]}
).encode()  # > 16 KiB: a model process's


def call(port: int, path: str, body: bytes | None = None) -> Any:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=body,
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"},
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.load(answer)


@contextmanager
def service(trained: TrainedModel, tmp_path: Path, **env: str) -> Iterator[tuple[Server, int]]:
    """`python -m app` on cores A and B only (as a container given two CPUs sees them)."""
    port = free_port()
    settings = {
        "MLFLOW_TRACKING_URI": trained.tracking_uri,
        "MODEL_URI": trained.alias_uri,
        "API_KEY": KEY,
        **env,
    }
    environ = python_env(settings, drop=("MLFLOW_REGISTRY_URI", "PROMETHEUS_MULTIPROC_DIR"))
    args = ["taskset", "-c", f"{A},{B}", sys.executable, "-m", "app", "--port", str(port)]
    with running(args, environ, tmp_path / "app.log") as server:
        server.wait_http(f"http://127.0.0.1:{port}/readyz", timeout=60)
        yield server, port


def model_processes(port: int, count: int, timeout: float = 60.0) -> list[dict[str, Any]]:
    """/model-info's model processes, once `count` of them serve."""
    deadline = time.monotonic() + timeout
    while len(shown := call(port, "/model-info")["model_processes"]) != count:
        assert time.monotonic() < deadline, shown
        time.sleep(0.1)
    return list(shown)


def cores_of(pid: int) -> set[int]:
    return os.sched_getaffinity(pid)


def threads_cores(pid: int) -> list[set[int]]:
    """The cores each thread of `pid` may run on."""
    return [os.sched_getaffinity(int(task.name)) for task in Path(f"/proc/{pid}/task").iterdir()]


def test_a_worker_and_its_model_process_get_a_core_each(
    trained: TrainedModel, tmp_path: Path
) -> None:
    with service(trained, tmp_path) as (server, port):  # 1 worker, MODEL_PROCESSES unset: 1
        (child,) = model_processes(port, 1)
        worker = server.proc.pid
        assert cores_of(worker) == {A}
        assert cores_of(child["pid"]) == {B} and child["core"] == B
        assert len(call(port, "/predict", BODY)["predictions"]) == 400
        # Its threads run there too: the event loop's, the model threads, the model process's
        # reader, libuv's. Only two idle ones started on import, before pinning, may not.
        threads = threads_cores(worker)
        assert threads.count({A}) >= 5 and len(threads) - threads.count({A}) <= 2, threads
        server.wait_output(f"worker 0 pinned to core {A}, its model processes to {B}")

        # A reload starts the model's new process on the same core (the worker itself has
        # one core by now: the plan is the one made at start).
        assert call(port, "/admin/reload?force=true", b"")["status"] == "reloaded"
        deadline = time.monotonic() + 60
        while (fresh := model_processes(port, 1)[0])["pid"] == child["pid"]:
            assert time.monotonic() < deadline, "no new model process"
            time.sleep(0.1)
        assert cores_of(fresh["pid"]) == {B} and fresh["core"] == B
        assert cores_of(worker) == {A}


def test_nothing_is_pinned_when_told_not_to_or_not_one_process_a_core(
    trained: TrainedModel, tmp_path: Path
) -> None:
    for env in ({"PIN_CORES": "false"}, {"MODEL_PROCESSES": "0"}):
        with service(trained, tmp_path, **env) as (server, port):
            shown = model_processes(port, 0 if "MODEL_PROCESSES" in env else 1)
            assert cores_of(server.proc.pid) == {A, B}, env
            assert all(cores_of(p["pid"]) == {A, B} and p["core"] is None for p in shown), env
            assert "pinned" not in server.output()


def test_processes_outnumbering_cores_take_them_in_turn_when_asked(
    trained: TrainedModel, tmp_path: Path
) -> None:
    with service(trained, tmp_path, PIN_CORES="true", MODEL_PROCESSES="2") as (server, port):
        shown = model_processes(port, 2)
        assert cores_of(server.proc.pid) == {A}
        assert [(cores_of(p["pid"]), p["core"]) for p in shown] == [({B}, B), ({A}, A)]


def test_two_workers_get_a_core_each(trained: TrainedModel, tmp_path: Path) -> None:
    with service(trained, tmp_path, WORKERS="2") as (server, port):  # no model process
        log = server.wait_output("Application startup complete", count=2)
        pids = [int(p) for p in re.findall(r"Started server process \[(\d+)\]", log)]
        assert sorted(cores_of(pid).pop() for pid in pids) == [A, B]
        assert all(len(cores_of(pid)) == 1 for pid in pids)
        assert cores_of(server.proc.pid) == {A, B}  # the supervisor is not pinned
        assert call(port, "/model-info")["model_processes"] == []
        assert "worker 0 pinned to core" in log and "worker 1 pinned to core" in log
