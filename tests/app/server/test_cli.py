"""`python -m app` as a real process: serving, settings errors, giving up, clean shutdown."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.app.conftest import IRIS_EXAMPLE, TrainedModel
from tests.servers import ROOT, free_port, python_env, run_cli, running

MLFLOW_VARS = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")


def _post(url: str, body: Any) -> Any:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def _app(
    args: list[str], env: dict[str, str], cwd: Path = ROOT
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        env=env, cwd=cwd, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


@pytest.mark.parametrize("uri_attr", ["runs_uri", "alias_uri"])
def test_served_predictions_equal_pyfunc(
    trained: TrainedModel,
    reference: Any,
    iris_records: list[dict[str, float]],
    tmp_path: Path,
    uri_attr: str,
) -> None:
    port = free_port()
    uri = getattr(trained, uri_attr)
    env = python_env(
        {"MLFLOW_TRACKING_URI": trained.tracking_uri, "MODEL_URI": uri}, drop=MLFLOW_VARS
    )
    with running(
        [sys.executable, "-m", "app", "--port", str(port)], env, tmp_path / "app.log"
    ) as server:
        server.wait_http(f"http://127.0.0.1:{port}/readyz", timeout=60)
        body = _post(f"http://127.0.0.1:{port}/predict", {"records": iris_records})
        info = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/model-info"))
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(20) == 0, server.output()
    assert body["predictions"] == reference(iris_records)
    assert info["run_id"] == trained.run_id
    assert info["uri"] == uri


def test_sigterm_drains_unready_answering_then_exits_0(
    trained: TrainedModel, tmp_path: Path
) -> None:
    """With DRAIN_SECONDS, SIGTERM turns /readyz 503 at once while /predict keeps answering,
    on a connection already open and on a new one; the process exits 0 after the drain."""
    port, drain = free_port(), 3.0
    env = python_env(
        {
            "MLFLOW_TRACKING_URI": trained.tracking_uri,
            "MODEL_URI": trained.alias_uri,
            "DRAIN_SECONDS": str(drain),
        },
        drop=MLFLOW_VARS,
    )
    body = json.dumps(IRIS_EXAMPLE)
    headers = {"Content-Type": "application/json"}
    with running([sys.executable, "-m", "app", "--port", str(port)], env, tmp_path / "a.log") as s:
        s.wait_http(f"http://127.0.0.1:{port}/readyz", timeout=60)
        open_before = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        open_before.request("POST", "/predict", body, headers)
        assert open_before.getresponse().read()
        signalled = time.monotonic()
        s.proc.send_signal(signal.SIGTERM)
        s.wait_output("SIGTERM: draining for 3 s", timeout=5)
        with pytest.raises(urllib.error.HTTPError) as unready:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5)
        assert unready.value.code == 503
        assert "draining" in json.load(unready.value)["error"]["message"]
        answers = [_post(f"http://127.0.0.1:{port}/predict", IRIS_EXAMPLE)["predictions"]]
        open_before.request("POST", "/predict", body, headers)
        kept = open_before.getresponse()
        answers.append(json.loads(kept.read())["predictions"])
        assert time.monotonic() - signalled < drain, "the answers came after the drain"
        assert s.proc.poll() is None
        assert s.proc.wait(drain + 20) == 0, s.output()
        stopped = time.monotonic() - signalled
        log = s.output()
    assert kept.status == 200 and answers == [[2], [2]]
    assert stopped >= drain
    assert "drained: no new connections" in log


def test_run_id_and_model_name_work_as_in_the_seed(trained: TrainedModel, tmp_path: Path) -> None:
    port = free_port()
    env = python_env(
        {
            "MLFLOW_TRACKING_URI": trained.tracking_uri,
            "RUN_ID": trained.run_id,
            "MODEL_NAME": "sk_model",
        },
        drop=(*MLFLOW_VARS, "MODEL_URI"),
    )
    with running([sys.executable, "-m", "app", "--port", str(port)], env, tmp_path / "a.log") as s:
        s.wait_http(f"http://127.0.0.1:{port}/readyz", timeout=60)
        body = _post(f"http://127.0.0.1:{port}/predict", IRIS_EXAMPLE)
    assert body["model"]["uri"] == trained.runs_uri


# struct tcp_info (linux/tcp.h): tcpi_data_segs_in, the segments received that carried data.
_DATA_SEGS_IN = 152


def _data_segments_in(conn: socket.socket) -> int:
    info = conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
    return int(struct.unpack_from("I", info, _DATA_SEGS_IN)[0])


def _exchange(conn: socket.socket, request: bytes) -> tuple[int, bytes]:
    """Send one request on a keep-alive connection; the answer's status and body."""
    conn.sendall(request)
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += conn.recv(1 << 16)
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    fields = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:])}
    while len(body) < int(fields["content-length"]):
        body += conn.recv(1 << 16)
    return int(lines[0].split()[1]), body


@pytest.mark.skipif(not hasattr(socket, "TCP_INFO"), reason="needs Linux's TCP_INFO")
def test_every_answer_leaves_in_one_segment(trained: TrainedModel, tmp_path: Path) -> None:
    """Status line, headers and body reach the client in one TCP segment, not two (uvicorn
    writes the headers and the body separately; with Nagle off that was two segments an
    answer, which the client's kernel and the network pay for at every request)."""
    port = free_port()
    env = python_env(
        {"MLFLOW_TRACKING_URI": trained.tracking_uri, "MODEL_URI": trained.alias_uri},
        drop=MLFLOW_VARS,
    )

    def post(body: bytes) -> bytes:
        head = b"POST /predict HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        return head + b"Content-Length: %d\r\n\r\n%s" % (len(body), body)

    requests = [
        post(json.dumps(IRIS_EXAMPLE).encode()),
        post(b'{"records": [{"sepal_length": "x"}]}'),
        b"GET /model-info HTTP/1.1\r\nHost: t\r\n\r\n",
    ]
    with running([sys.executable, "-m", "app", "--port", str(port)], env, tmp_path / "a.log") as s:
        s.wait_http(f"http://127.0.0.1:{port}/readyz", timeout=60)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
            answers = [_exchange(conn, r) for _ in range(10) for r in requests]
            segments = _data_segments_in(conn)
            # The last answer before a close is written, then the connection closed.
            conn.sendall(b"GET /model-info HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            last = b"".join(iter(lambda: conn.recv(1 << 16), b""))
    assert last.startswith(b"HTTP/1.1 200") and last.endswith(b"}"), last[-200:]
    assert [status for status, _ in answers] == [200, 422, 200] * 10
    assert json.loads(answers[0][1])["model"]["uri"] == trained.alias_uri
    assert segments == len(answers), f"{segments} segments for {len(answers)} answers"


def test_embedded_default_store_trains_and_serves_from_one_folder(tmp_path: Path) -> None:
    env = python_env(drop=(*MLFLOW_VARS, "MODEL_URI", "RUN_ID"))
    trained = run_cli(
        "trainer", "train", "--register", "--alias", "champion", "--json", env=env, cwd=tmp_path
    )
    assert trained.returncode == 0, trained.stderr
    assert (tmp_path / ".mlflow" / "mlflow.db").is_file()
    port = free_port()
    env["MODEL_URI"] = "models:/sk_model@champion"
    with running(
        [sys.executable, "-m", "app", "--port", str(port)], env, tmp_path / "a.log", cwd=tmp_path
    ) as s:
        s.wait_http(f"http://127.0.0.1:{port}/readyz", timeout=60)
        body = _post(f"http://127.0.0.1:{port}/predict", IRIS_EXAMPLE)
    assert body["predictions"] == [2]
    assert {p.name for p in tmp_path.iterdir()} <= {".mlflow", "data.csv", "a.log"}


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({}, "MODEL_URI"),
        ({"MODEL_URI": "runs:/abc/sk_model", "RUN_ID": "abc"}, "either MODEL_URI or RUN_ID"),
        ({"MODEL_URI": "runs:/abc/sk_model", "MODEL_LOAD_TIMEOUT": "soon"}, "MODEL_LOAD_TIMEOUT"),
    ],
)
def test_bad_settings_exit_2_with_one_line(env: dict[str, str], needle: str) -> None:
    result = _app([], python_env(env, drop=("MODEL_URI", "RUN_ID")))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: invalid settings")
    assert needle in lines[0]


def _unreachable_tracking_env(load_timeout: str) -> dict[str, str]:
    """The app's environment with a tracking server that nothing answers for."""
    return python_env(
        {
            "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{free_port()}",
            "MODEL_URI": "models:/sk_model@champion",
            "MODEL_LOAD_TIMEOUT": load_timeout,
        },
        drop=MLFLOW_VARS,
    )


def test_model_that_cannot_load_exits_1_with_one_clear_line(tmp_path: Path) -> None:
    env = _unreachable_tracking_env("2")
    result = _app(["--port", str(free_port())], env, cwd=tmp_path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    fatal = [line for line in result.stderr.splitlines() if "CRITICAL" in line]
    assert len(fatal) == 1
    assert "giving up: model models:/sk_model@champion not loaded after 2s" in fatal[0]


def _count(metrics: str, prefix: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines() if line.startswith(prefix)
    )


def test_two_workers_serve_and_metrics_add_up_across_them(
    trained: TrainedModel, tmp_path: Path
) -> None:
    port = free_port()
    env = python_env(
        {
            "MLFLOW_TRACKING_URI": trained.tracking_uri,
            "MODEL_URI": trained.alias_uri,
            "API_KEY": "workers-see-the-real-key-123",
            "PREDICT_PUBLIC": "true",
        },
        drop=(*MLFLOW_VARS, "PROMETHEUS_MULTIPROC_DIR"),
    )
    args = [sys.executable, "-m", "app", "--port", str(port), "--workers", "2"]
    with running(args, env, tmp_path / "app.log") as server:
        server.wait_http(f"http://127.0.0.1:{port}/readyz", timeout=60)
        server.wait_output("model loaded: ", count=2)  # /readyz answered for one worker
        for _ in range(40):
            body = _post(f"http://127.0.0.1:{port}/predict", {"records": [IRIS_EXAMPLE] * 3})
            assert body["predictions"] == [2, 2, 2]
        reload = urllib.request.Request(
            f"http://127.0.0.1:{port}/admin/reload",
            method="POST",
            headers={"Authorization": "Bearer workers-see-the-real-key-123"},
        )
        with urllib.request.urlopen(reload, timeout=30) as answer:
            assert json.load(answer)["status"] == "unchanged"  # the worker knows the real key
        scrape = urllib.request.Request(
            f"http://127.0.0.1:{port}/metrics",
            headers={"Authorization": "Bearer workers-see-the-real-key-123"},
        )
        metrics = urllib.request.urlopen(scrape).read().decode()
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(40) == 0, server.output()
        log = server.output()
    pids = set(re.findall(r"INFO:     Started server process \[(\d+)\]", log))
    assert len(pids) == 2, "two worker processes served"
    assert _count(metrics, 'http_requests_total{method="POST",route="/predict",status="200"}') == 40
    assert _count(metrics, "predicted_rows_total") == 120


def _admin_reload(port: int, key: str, force: bool) -> tuple[int, Any]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/admin/reload?force={str(force).lower()}",
        method="POST",
        headers={"Authorization": f"Bearer {key}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.load(answer)
    except urllib.error.HTTPError as refused:
        return refused.code, json.load(refused)


def test_admin_reload_answers_with_every_workers_result(
    trained: TrainedModel, tmp_path: Path
) -> None:
    port, key = free_port(), "reload-every-worker-key-123"
    env = python_env(
        {
            "MLFLOW_TRACKING_URI": trained.tracking_uri,
            "MODEL_URI": trained.alias_uri,
            "API_KEY": key,
            "REQUEST_TIMEOUT": "3",
        },
        drop=(*MLFLOW_VARS, "PROMETHEUS_MULTIPROC_DIR"),
    )
    args = [sys.executable, "-m", "app", "--port", str(port), "--workers", "2"]
    with running(args, env, tmp_path / "app.log") as server:
        server.wait_http(f"http://127.0.0.1:{port}/readyz", timeout=60)
        log = server.wait_output("Application startup complete", count=2)
        pids = sorted(int(p) for p in re.findall(r"Started server process \[(\d+)\]", log))
        status, body = _admin_reload(port, key, force=True)
        assert status == 200, body
        assert body["status"] == "reloaded"
        assert sorted(w["pid"] for w in body["workers"]) == pids
        assert {w["status"] for w in body["workers"]} == {"reloaded"}
        assert all(w["model"]["version"] == body["model"]["version"] for w in body["workers"])
        server.wait_output("reloaded: ", count=2)  # each worker loaded the model again

        # A worker that cannot answer (stopped) is named, and the others still reloaded.
        answering = {w["pid"] for w in _admin_reload(port, key, force=False)[1]["workers"]}
        assert answering == set(pids)
        silent = pids[0]
        os.kill(silent, signal.SIGSTOP)
        try:
            # Only the other worker can take the connection; it reports its silent sibling.
            status, body = _admin_reload(port, key, force=True)
        finally:
            os.kill(silent, signal.SIGCONT)
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(40) == 0, server.output()
    assert status == 502, body
    assert body["error"]["message"] == (
        f"reload failed in 1 of 2 workers: worker {silent}: no answer within 3 s"
    )
    assert body["error"]["details"] == [{"loc": ["workers", silent], "msg": "no answer within 3 s"}]


def test_workers_that_cannot_load_stop_the_service_with_exit_1(tmp_path: Path) -> None:
    env = _unreachable_tracking_env("1")
    result = _app(["--port", str(free_port()), "--workers", "2"], env, cwd=tmp_path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "giving up: model models:/sk_model@champion not loaded after 1s" in result.stderr


def test_an_early_sighup_does_not_kill_the_workers(trained: TrainedModel, tmp_path: Path) -> None:
    port = free_port()
    env = python_env(
        {"MLFLOW_TRACKING_URI": trained.tracking_uri, "MODEL_URI": trained.alias_uri},
        drop=(*MLFLOW_VARS, "PROMETHEUS_MULTIPROC_DIR"),
    )
    args = [sys.executable, "-m", "app", "--port", str(port), "--workers", "2"]
    started = "Application startup complete"  # uvicorn's, once a worker's app handles SIGHUP
    with running(args, env, tmp_path / "app.log") as server:
        early = server.wait_output("with 2 workers", timeout=20)
        server.proc.send_signal(signal.SIGHUP)  # workers are still importing
        assert started not in early, "the SIGHUP was meant to come before any app started"
        server.wait_http(f"http://127.0.0.1:{port}/readyz", timeout=60)
        server.wait_output("model loaded: ", count=2)  # /readyz answered for one worker
        server.proc.send_signal(signal.SIGHUP)  # now a reload: unchanged
        # Each worker reloads once, for the second SIGHUP: the first one was ignored.
        server.wait_output("SIGHUP reload: unchanged", count=2)
        body = _post(f"http://127.0.0.1:{port}/predict", IRIS_EXAMPLE)
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(40) == 0, server.output()
        log = server.output()
    assert body["predictions"] == [2]
    assert log.count("SIGHUP reload") == 2, log


def test_workers_even_out_keep_alive_connections_that_landed_on_one(
    trained: TrainedModel, tmp_path: Path
) -> None:
    """Four keep-alive connections that all landed on one worker (the other was busy when
    they came) end up two on each: the loaded worker answers one request at a time with
    `Connection: close`, and the client's new connection goes to the idle worker. Every
    answer is a full 200 meanwhile, and once even, nothing is closed any more."""
    port = free_port()
    env = python_env(
        {"MLFLOW_TRACKING_URI": trained.tracking_uri, "MODEL_URI": trained.alias_uri},
        drop=(*MLFLOW_VARS, "PROMETHEUS_MULTIPROC_DIR"),
    )
    body = json.dumps(IRIS_EXAMPLE)
    headers = {"Content-Type": "application/json"}
    # http.client's connection, as a pool keeps them: it reconnects by itself after an
    # answer that says `Connection: close`.
    pool = [http.client.HTTPConnection("127.0.0.1", port, timeout=10) for _ in range(4)]

    def predict(conn: http.client.HTTPConnection) -> bool:
        """One prediction on `conn`: whether the answer closed the connection."""
        conn.request("POST", "/predict", body, headers)
        answer = conn.getresponse()
        assert (answer.status, json.loads(answer.read())["predictions"]) == (200, [2])
        return answer.getheader("connection") == "close"

    args = [sys.executable, "-m", "app", "--port", str(port), "--workers", "2"]
    with running(args, env, tmp_path / "app.log") as server:
        server.wait_http(f"http://127.0.0.1:{port}/readyz", timeout=60)
        log = server.wait_output("model loaded: ", count=2)
        pids = sorted(int(p) for p in re.findall(r"Started server process \[(\d+)\]", log))
        os.kill(pids[0], signal.SIGSTOP)  # busy: it cannot accept meanwhile
        try:
            for conn in pool:
                conn.connect()
            deadline = time.monotonic() + 10
            while server.read_connections(port, pids[1]) < 4 and time.monotonic() < deadline:
                time.sleep(0.01)
            landed = [server.read_connections(port, pid) for pid in pids]
        finally:
            os.kill(pids[0], signal.SIGCONT)
        closed = 0
        deadline = time.monotonic() + 20
        while [server.read_connections(port, pid) for pid in pids] != [2, 2]:
            assert time.monotonic() < deadline, "the workers never evened out"
            closed += sum(predict(conn) for conn in pool)
        steady = sum(predict(conn) for _ in range(50) for conn in pool)
        held = [server.read_connections(port, pid) for pid in pids]
        for conn in pool:
            conn.close()
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(40) == 0, server.output()
    assert landed == [0, 4]
    assert closed >= 2  # two moved at least: one connection per close, reconnects may return
    assert (steady, held) == (0, [2, 2])
    assert _count(metrics, "http_connections_rebalanced_total") == closed
