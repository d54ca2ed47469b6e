"""The fleet (docker-compose.fleet.yaml) on a real engine: API replicas behind HAProxy, under load
from a client that goes through the balancer as users do, while the alias moves, a replica is
killed and another one stopped.

The same compose project as test_stack.py (conftest: one stack for the session), scaled up with
the overlay after its steps: what changes is the api service (3 replicas, no host port) and the
balancer in front; the data, the registry and Prometheus are the ones the steps before used.
Each answer names the replica that gave it (HAProxy's `X-Served-By`, its server slot) and
carries the client's own request id, which the prediction log keeps.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.compose.stack import Stack, wait_for
from tests.iris import IRIS_EXAMPLE  # class 2
from tests.monitoring import prometheus as prom
from tests.stack import compose

pytestmark = pytest.mark.compose

FLEET = ("-f", "docker-compose.yaml", "-f", "docker-compose.fleet.yaml")
UP_S = 1800  # image builds included, when this module runs alone
LOAD_S = 60.0  # a replica's model load, on a machine shared with the rest of the stack


def fleet(stack: Stack, *args: str, timeout: float = 600) -> Any:
    return stack.compose(*FLEET, *args, timeout=timeout)


def overlay(stack: Stack) -> dict[str, Any]:
    return compose.load(stack.dir / "docker-compose.fleet.yaml", stack.settings)


def api_setting(stack: Stack, name: str) -> float:
    return float(compose.environment(overlay(stack)["services"]["api"])[name])


@dataclass(frozen=True)
class Answer:
    sent: float  # monotonic, when the request went out
    at: float  # monotonic, when the answer came
    request_id: str
    status: int  # 0: no HTTP answer at all
    version: str | None
    replica: str | None  # the balancer's server slot (X-Served-By)
    error: str = ""


class Load:
    """Clients posting one row to /predict through the balancer, over and over, each request
    with its own X-Request-ID; every answer recorded."""

    def __init__(self, stack: Stack, clients: int = 2) -> None:
        self.url = stack.url("API_HOST_PORT") + "/predict"
        self.answers: list[Answer] = []
        self.done = threading.Event()
        self.threads = [
            threading.Thread(target=self._run, args=(n,), daemon=True) for n in range(clients)
        ]
        self._lock = threading.Lock()

    def _run(self, client_number: int) -> None:
        n = 0
        with httpx.Client(timeout=30) as client:
            while not self.done.is_set():
                n += 1
                sent = time.monotonic()
                rid = f"fleet-{client_number}-{n}-{time.monotonic_ns()}"
                try:
                    got = client.post(self.url, json=IRIS_EXAMPLE, headers={"X-Request-ID": rid})
                    body = got.json()
                    ok = got.status_code == 200 and body["predictions"] == [2]
                    answer = Answer(
                        sent, time.monotonic(), rid, got.status_code if ok else -got.status_code,
                        body["model"]["version"] if ok else None,
                        got.headers.get("X-Served-By"), "" if ok else got.text[:300],
                    )  # fmt: skip
                except (httpx.HTTPError, ValueError, KeyError) as exc:
                    answer = Answer(sent, time.monotonic(), rid, 0, None, None, repr(exc))
                with self._lock:
                    self.answers.append(answer)
                self.done.wait(0.005)

    def seen(self) -> list[Answer]:
        with self._lock:
            return list(self.answers)

    def replicas(self, since: float = 0.0) -> set[str]:
        return {a.replica for a in self.seen() if a.status == 200 and a.at >= since and a.replica}

    def failed(self) -> list[Answer]:
        return [a for a in self.seen() if a.status != 200]


@contextmanager
def load(stack: Stack) -> Iterator[Load]:
    running = Load(stack)
    for thread in running.threads:
        thread.start()
    try:
        wait_for("answers through the balancer", lambda: running.replicas() or None, 30)
        yield running
    finally:
        running.done.set()
        for thread in running.threads:
            thread.join(30)


def assert_none_failed(stack: Stack, answers: Load, step: str) -> None:
    failed = answers.failed()
    total = len(answers.seen())
    stack.figures[step] = f"{len(failed)} of {total} requests failed"
    assert not failed, f"{len(failed)} of {total} requests failed: {failed[:5]}"


# -- the replicas and where they are ------------------------------------------------------------


def containers(stack: Stack) -> list[dict[str, Any]]:
    """The api service's containers (stopped ones too)."""
    out = fleet(stack, "ps", "--all", "--format", "json", "api").stdout.strip()
    rows = json.loads(out) if out.startswith("[") else [json.loads(x) for x in out.splitlines()]
    return [row for row in rows if row["Service"] == "api"]


def inspect(container: str) -> dict[str, Any]:
    result = subprocess.run(
        ["docker", "inspect", container], capture_output=True, text=True, timeout=60, check=True
    )
    found: dict[str, Any] = json.loads(result.stdout)[0]
    return found


def slots(stack: Stack, replicas: int) -> dict[str, str]:
    """{balancer slot: container id} of the replicas, from /model-info through the balancer:
    each answer names its slot (X-Served-By) and its host (the container's hostname)."""
    by_hostname = {inspect(c["ID"])["Config"]["Hostname"]: c["ID"] for c in containers(stack)}
    found: dict[str, str] = {}
    with httpx.Client(base_url=stack.url("API_HOST_PORT"), timeout=30) as client:
        for _ in range(20 * replicas):
            answer = client.get("/model-info")
            assert answer.status_code == 200, answer.text
            found[answer.headers["X-Served-By"]] = by_hostname[answer.json()["host"]]
            if len(found) == replicas:
                break
    return found


def logged_rows(stack: Stack) -> Counter[str]:
    """Rows in the prediction log, by request id."""
    result = stack.compose(
        "exec", "-T", "postgres", "psql", "-U", stack.settings["POSTGRES_USER"],
        "-d", "predictions", "-tAc", "SELECT request_id FROM prediction_log",
    )  # fmt: skip
    return Counter(result.stdout.split())


def assert_logged(stack: Stack, answers: list[Answer], what: str) -> Counter[str]:
    """Every one of `answers` has its row in the prediction log (writes are batched: wait);
    the log's rows of those requests."""
    wanted = {a.request_id for a in answers}
    assert wanted, f"{what}: no answers to look for"

    def all_in() -> Counter[str] | None:
        rows = logged_rows(stack)
        return rows if not wanted - rows.keys() else None

    try:
        rows = wait_for(f"{what}: their rows in the prediction log", all_in, 60, interval=2)
    except AssertionError:
        missing = wanted - logged_rows(stack).keys()
        raise AssertionError(f"{what}: {len(missing)} of {len(wanted)} not logged") from None
    theirs = Counter({rid: rows[rid] for rid in wanted})
    stack.figures[what] = f"{len(wanted)} answered, {theirs.total()} rows in the log"
    return theirs


# -- 1. the fleet up -----------------------------------------------------------------------------


def test_f1_replicas_serve_through_the_balancer_and_prometheus_scrapes_each(stack: Stack) -> None:
    replicas = int(overlay(stack)["services"]["api"]["deploy"]["replicas"])
    assert replicas == 3  # API_REPLICAS' default
    started = time.monotonic()
    fleet(stack, "up", "--detach", "--build", "--wait", timeout=UP_S)
    stack.timings["fleet up"] = time.monotonic() - started

    running = containers(stack)
    assert len(running) == replicas
    assert all((c["State"], c["Health"]) == ("running", "healthy") for c in running), running
    found = slots(stack, replicas)
    assert len(found) == replicas, f"/model-info through the balancer reached only {found}"
    assert set(found.values()) == {c["ID"] for c in running}

    # The README's curl, unchanged: the balancer is where the single API was.
    with httpx.Client(base_url=stack.url("API_HOST_PORT"), timeout=30) as client:
        answer = client.post("/predict", json=IRIS_EXAMPLE)
    assert answer.status_code == 200 and answer.json()["predictions"] == [2]

    # Prometheus finds every replica by DNS and scrapes it directly, not the balancer.
    addresses = {
        network["IPAddress"]
        for c in running
        for network in inspect(c["ID"])["NetworkSettings"]["Networks"].values()
    }

    def scraped() -> set[str] | None:
        targets = prom.targets(stack.url("PROMETHEUS_HOST_PORT"))
        hosts = {t["labels"]["instance"].rsplit(":", 1)[0] for t in targets}
        up = all(t["health"] == "up" for t in targets)
        return hosts if hosts == addresses and up else None

    wait_for("Prometheus scraping every replica", scraped, 60, interval=1)


# -- 2. a roll-out -------------------------------------------------------------------------------


def test_f2_moving_the_alias_rolls_every_replica_forward_without_a_failed_request(
    stack: Stack,
) -> None:
    interval = api_setting(stack, "MODEL_RELOAD_INTERVAL")
    with httpx.Client(base_url=stack.url("API_HOST_PORT"), timeout=30) as client:
        before = client.get("/model-info").json()["version"]
    after = str(int(before) + 1)
    with load(stack) as answers:
        replicas = wait_for("answers from every replica", lambda: (
            r if len(r := answers.replicas()) == 3 else None
        ), 30)  # fmt: skip
        fleet(stack, "run", "--rm", "trainer", "python", "-m", "trainer", "train",
              "--register", "sk_model", "--alias", "champion")  # fmt: skip
        moved = time.monotonic()  # the alias moved before the trainer returned

        def rolled() -> bool | None:
            new = {a.replica for a in answers.seen() if a.version == after}
            return True if new >= replicas else None

        wait_for(f"every replica answering version {after}", rolled, interval + LOAD_S)
        stack.timings["fleet roll-out"] = time.monotonic() - moved
    assert_none_failed(stack, answers, "roll-out")
    # A request sent once a replica has answered with the new version gets the new one too
    # (the two clients' requests overlap: one sent before the swap may come back after).
    for replica in replicas:
        theirs = [a for a in answers.seen() if a.replica == replica]
        assert theirs[0].version == before
        first_new = min(a.at for a in theirs if a.version == after)
        later = {a.version for a in theirs if a.sent > first_new}
        assert later == {after}, f"{replica} answered {before} again"


# -- 3. a replica killed -------------------------------------------------------------------------


def test_f3_a_killed_replica_fails_no_request_and_rejoins_once_loaded(stack: Stack) -> None:
    with load(stack) as answers:
        by_slot = slots(stack, 3)
        victim_slot, victim = sorted(by_slot.items())[0]
        subprocess.run(["docker", "kill", victim], check=True, capture_output=True, timeout=60)
        killed = time.monotonic()
        # Its requests in flight are sent again to the others; the checks take it out.
        wait_for("answers from the two others only", lambda: (
            len(answers.replicas(since=killed + 3)) == 2 or None
        ), 30)  # fmt: skip
        # Started again, it gets traffic only once its /readyz answers 200 (model loaded).
        subprocess.run(["docker", "start", victim], check=True, capture_output=True, timeout=60)
        restarted = time.monotonic()
        wait_for("the killed replica healthy again", lambda: (
            inspect(victim)["State"]["Health"]["Status"] == "healthy" or None
        ), LOAD_S)  # fmt: skip
        healthy = time.monotonic()
        wait_for("three replicas answering again", lambda: (
            len(answers.replicas(since=healthy)) == 3 or None
        ), 30)  # fmt: skip
        stack.timings["killed replica back"] = healthy - restarted
    assert_none_failed(stack, answers, "replica killed")
    survivors = [a for a in answers.seen() if a.replica and a.replica != victim_slot]
    assert_logged(stack, survivors, "the survivors' answers")


# -- 4. every replica replaced ------------------------------------------------------------------


def test_f4_the_rollout_script_replaces_every_replica_without_a_failed_request(
    stack: Stack,
) -> None:
    """`docker compose up -d` with a changed setting recreates every replica at once;
    deploy/compose/rollout.sh replaces them one at a time (docs/operations.md)."""
    old = {c["ID"] for c in containers(stack)}
    with load(stack) as answers:
        started = time.monotonic()
        stack.shell([f"deploy/compose/rollout.sh {' '.join(FLEET)}"])
        stack.timings["fleet replaced"] = time.monotonic() - started
        new = containers(stack)
        wait_for("answers from the new replicas", lambda: (
            len(answers.replicas(since=time.monotonic() - 1)) == 3 or None
        ), 30)  # fmt: skip
    assert_none_failed(stack, answers, "every replica replaced")
    assert len(new) == 3 and not {c["ID"] for c in new} & old
    assert all((c["State"], c["Health"]) == ("running", "healthy") for c in new), new


# -- 5. a replica stopped ------------------------------------------------------------------------


def test_f5_a_stopped_replica_drains_fails_no_request_and_logs_every_row(stack: Stack) -> None:
    drain = api_setting(stack, "DRAIN_SECONDS")
    with load(stack) as answers:
        by_slot = wait_for("three replicas again", lambda: (
            s if len(s := slots(stack, 3)) == 3 else None
        ), LOAD_S)  # fmt: skip
        victim_slot, victim = sorted(by_slot.items())[-1]
        wait_for("answers from the replica to stop", lambda: (
            victim_slot in answers.replicas() or None
        ), 30)  # fmt: skip
        stopping = time.monotonic()
        subprocess.run(["docker", "stop", victim], check=True, capture_output=True, timeout=120)
        stopped = time.monotonic()
        answers.done.wait(2)  # the survivors answer on
    assert_none_failed(stack, answers, "replica stopped")
    state = inspect(victim)["State"]
    assert (state["Status"], state["ExitCode"]) == ("exited", 0), state
    assert stopped - stopping >= drain, "the replica stopped before its drain was over"
    its = [a for a in answers.seen() if a.replica == victim_slot]
    assert its and max(a.at for a in its) <= stopped
    rows = assert_logged(stack, its, "the stopped replica's answers")
    assert set(rows.values()) == {1}, "a row written twice"
    assert_logged(stack, answers.seen(), "every answer of the stop")


# -- 6. the prediction log's database restarted --------------------------------------------------


def replica_metric(container: str, name: str) -> float:
    """The sum of a metric's samples in one replica's own /metrics (not through the balancer)."""
    script = (
        "import os, urllib.request as r; key = os.environ.get('API_KEY', ''); print(r.urlopen("
        "r.Request('http://127.0.0.1:8000/metrics', headers={'Authorization': 'Bearer ' + key}"
        " if key else {})).read().decode())"
    )
    result = subprocess.run(
        ["docker", "exec", container, "python", "-c", script],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    lines = result.stdout.splitlines()
    return sum(float(line.rsplit(" ", 1)[1]) for line in lines if line.startswith(name + " "))


def test_f6_postgres_restarted_under_load_fails_no_request_and_writes_no_row_twice(
    stack: Stack,
) -> None:
    running = [c["ID"] for c in containers(stack) if c["State"] == "running"]
    dropped_before = sum(replica_metric(c, "prediction_log_rows_dropped_total") for c in running)
    with load(stack) as answers:
        fleet(stack, "restart", "postgres")
        wait_for("postgres healthy again", lambda: (
            inspect(stack.ps()["postgres"]["ID"])["State"]["Health"]["Status"] == "healthy" or None
        ), 60)  # fmt: skip
        answers.done.wait(2)
    assert_none_failed(stack, answers, "postgres restarted")
    dropped = sum(replica_metric(c, "prediction_log_rows_dropped_total") for c in running)
    dropped -= dropped_before
    # The replicas' queues held the rows while the database was away; none was dropped, so
    # every answer's row is in the log, once (a batch retried after a failed write is not
    # written again).
    assert dropped == 0
    rows = assert_logged(stack, answers.seen(), "every answer across the restart")
    twice = {rid: n for rid, n in rows.items() if n != 1}
    assert not twice, f"{len(twice)} requests' rows written more than once"
    stack.figures["postgres restarted"] += f", {dropped:.0f} rows dropped"


# -- 7. monitoring over the fleet ------------------------------------------------------------------


def test_f7_the_recorded_psi_and_live_accuracy_add_up_over_every_replica(stack: Stack) -> None:
    url = stack.url("PROMETHEUS_HOST_PORT")

    def right_and_all(version: str) -> tuple[float, float]:
        counts = {
            s["metric"]["outcome"]: float(s["value"][1])
            for s in prom.query(url, f'model_serving:feedback_rows:6h{{version="{version}"}}')
        }
        return counts.get("right", 0.0), sum(counts.values())

    with load(stack) as answers:
        answers.done.wait(5)
    labelled = [a for a in answers.seen() if a.status == 200][-60:]
    (version,) = {a.version for a in labelled}
    assert version is not None
    before = right_and_all(version)
    # Labels come after the fact: once the answering replica has written the rows to the log,
    # where any other replica finds them (before that, another replica answers 404 "yet").
    ids = {a.request_id for a in labelled}
    wait_for("the labelled requests in the log", lambda: ids <= set(logged_rows(stack)) or None, 60)
    with httpx.Client(base_url=stack.url("API_HOST_PORT"), timeout=30) as client:
        for answer in labelled:  # through the balancer: most land on another replica
            sent = client.post("/feedback", json={"request_id": answer.request_id, "labels": [2]})
            assert sent.status_code == 200, sent.text

    def recorded() -> list[dict[str, Any]] | None:
        psi = prom.query(url, f'feature_drift_psi{{version="{version}"}}')
        return psi if len(psi) == 4 and right_and_all(version)[1] >= before[1] + 60 else None

    psi = wait_for("the fleet's recorded PSI and labelled rows", recorded, 90)
    assert {s["metric"]["feature"] for s in psi} == {
        "sepal_length", "sepal_width", "petal_length", "petal_width",
    }  # fmt: skip
    assert all(0 <= float(s["value"][1]) < float("inf") for s in psi)
    # Every feedback scored once, and right, wherever it landed.
    right, total = right_and_all(version)
    assert (right - before[0], total - before[1]) == (60, 60)
    (accuracy,) = prom.query(url, f'live_accuracy{{version="{version}"}}')
    assert float(accuracy["value"][1]) == right / total
    # The rows were counted by several replicas; the recorded series are one per version.
    counting = prom.query(url, f'count by (instance) (drift_bin_rows_total{{version="{version}"}})')
    assert len(counting) >= 2, counting
