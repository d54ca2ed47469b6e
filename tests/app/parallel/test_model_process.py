"""Model processes (`app.parallel.model_process`): a second interpreter beside the worker takes a
share of the large /predict bodies. Its answers must be the worker's, byte for byte, whatever the
body; the worker must serve on if it dies, and it must end with its model and with the service."""

from __future__ import annotations

import json
import logging
import os
import random
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.dataplane import INLINE_BYTES, DataPlane
from app.parallel.model_process import ModelProcess
from app.serving.served import ServedModel
from tests.app.conftest import IRIS_EXAMPLE, AppFactory
from tests.app.formats.test_decoders import (
    FEATURES,
    MAX_ROWS,
    PATH,
    answers_with_decoders_on_and_off,
    body_bytes,
)

KEY = "model-process-test-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}


def serving(client: TestClient) -> ServedModel:
    plane: DataPlane = client.app.lanes[PATH].plane  # type: ignore[attr-defined]
    return plane.slot.serving()


def model_processes(client: TestClient, timeout: float = 60.0) -> tuple[ModelProcess, ...]:
    """The model processes of the model serving now, once they have started."""
    deadline = time.monotonic() + timeout
    while not (started := serving(client).model_processes):
        assert time.monotonic() < deadline, "no model process started"
        time.sleep(0.05)
    return started


def running(pid: int) -> bool:
    """Whether `pid` is a live process (not gone, not a zombie left unreaped)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def large_body(rng: random.Random) -> bytes:
    while len(body := body_bytes(rng, FEATURES)) <= INLINE_BYTES:
        pass
    return body


@pytest.fixture(scope="module")
def served(serve: AppFactory) -> Iterator[TestClient]:
    with serve(
        max_request_rows=MAX_ROWS, max_body_bytes=64 * 1024, model_processes=1, api_key=KEY
    ) as client:
        model_processes(client)
        yield client


def test_large_bodies_get_the_same_answers_from_the_model_process(served: TestClient) -> None:
    """Every large body, valid or not (wrong types, names, widths, truncated, not UTF-8...), is
    answered byte for byte as by the worker's general path; the valid ones by the process."""
    (process,) = model_processes(served)
    before = process.answered
    rng = random.Random("model-process")
    bodies = (large_body(rng) for _ in range(300))
    statuses = answers_with_decoders_on_and_off(served, PATH, bodies, auth=AUTH)
    assert statuses.get(200, 0) > 60 and statuses.get(422, 0) > 60, statuses
    assert process.answered - before == statuses[200], "a valid large body missed the process"
    shown = served.get("/model-info", headers=AUTH).json()["model_processes"]
    # In process (no `python -m app`), nothing pins: see tests/app/process/test_cores.py.
    expected = {"pid": process.pid, "running": True, "requests": process.answered, "core": None}
    assert shown == [expected]


def test_the_worker_serves_on_when_its_model_process_dies(
    served: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    (process,) = model_processes(served)
    body = json.dumps({"dataframe_records": [IRIS_EXAMPLE] * 250}).encode()
    assert len(body) > INLINE_BYTES
    first = served.post(PATH, content=body, headers=AUTH)
    assert first.status_code == 200, first.text
    with caplog.at_level(logging.WARNING, logger="app.parallel.model_process"):
        os.kill(process.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while process.alive and time.monotonic() < deadline:
            time.sleep(0.02)
    assert not process.alive
    assert "large requests are served in this process alone" in caplog.text
    again = [served.post(PATH, content=body, headers=AUTH) for _ in range(3)]
    assert [(a.status_code, a.content) for a in again] == [(first.status_code, first.content)] * 3
    assert served.get("/readyz").status_code == 200
    # A reload brings up a new process, for the new model, and ends the old one's.
    reload = served.post("/admin/reload?force=true", headers=AUTH)
    assert reload.status_code == 200, reload.text
    (fresh,) = model_processes(served)
    assert fresh is not process and fresh.alive and running(fresh.pid)
    assert served.post(PATH, content=body, headers=AUTH).content == first.content
    assert fresh.answered == 1
    assert not running(process.pid)


def test_model_processes_end_with_the_service(serve: AppFactory) -> None:
    with serve(model_processes=2) as client:
        started = model_processes(client)
        assert len(started) == 2 and len({h.pid for h in started}) == 2
        assert all(running(h.pid) for h in started)
    assert not any(running(h.pid) for h in started)


def model_process_children() -> set[int]:
    """This test process's child processes that run `app.parallel.model_process`."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            command = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[1]) == os.getpid() and b"app.parallel.child" in command and fields[0] != "Z":
            found.add(int(stat.parent.name))
    return found


def test_no_model_process_unless_asked_or_useful(serve: AppFactory) -> None:
    cores = len(os.sched_getaffinity(0))
    for overrides in ({"model_processes": 0}, {"model_processes": None, "workers": cores}):
        before = model_process_children()
        with serve(**overrides) as client:
            # Started, one would be a child within a second of ready (see the tests above).
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline:
                assert model_process_children() <= before, overrides
                time.sleep(0.1)
            assert serving(client).model_processes == ()
    with serve(model_processes=1) as client:  # the probe sees one that is asked for
        model_processes(client)
        assert model_process_children() - before
