"""A `docker compose` project of this repository, run on a real engine for the compose tests.

A fresh copy of the project (the files git tracks or would track, so no .env, .venv or local
store), its own compose project name, its own .env made from .env.example with new passwords
and a free host port for every `*_HOST_PORT`, so it never meets the machine's own PostgreSQL on
5432 or a stack the user runs. Commands run in that copy with a clean environment: only the
copy's .env feeds compose's interpolation.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from tests.servers import ROOT, free_port
from tests.stack import compose

T = TypeVar("T")
# Variables of the caller's environment the docker CLI itself reads; nothing else goes through.
DOCKER_CLIENT_VARIABLES = (
    "DOCKER_HOST",
    "DOCKER_CONTEXT",
    "DOCKER_CONFIG",
    "DOCKER_CERT_PATH",
    "DOCKER_TLS_VERIFY",
)
# .env values the test draws afresh (the quick start: "then change the passwords").
SECRETS = ("POSTGRES_PASSWORD", "MINIO_ROOT_PASSWORD", "API_KEY", "MODEL_CACHE_KEY")
STANDIN_LABEL = "docker-offline.standin"
# Compose 2.26 starts log lines with a terminal "erase line" even with --no-color.
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def engine_problem() -> str | None:
    """Why `docker compose` cannot run here, or None when an engine answers."""
    if shutil.which("docker") is None:
        return "no `docker` CLI on PATH"
    try:
        info = subprocess.run(
            ["docker", "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if info.returncode != 0:
            return f"no Docker engine answers: {info.stderr.strip()[:300]}"
        version = subprocess.run(
            ["docker", "compose", "version"], capture_output=True, text=True, timeout=30
        )
    except subprocess.TimeoutExpired as exc:
        return f"`{' '.join(map(str, exc.cmd))}` did not answer within {exc.timeout}s"
    if version.returncode != 0:
        return "Docker Compose v2 (`docker compose`) is not installed"
    return None


def copy_project(dest: Path) -> Path:
    """The project's files as a fresh clone would have them, plus files not committed yet."""
    listing = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    for name in filter(None, listing.stdout.split("\0")):
        source = ROOT / name
        if source.is_file():  # a tracked file deleted in the working tree is not copied
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return dest


def env_file_from_example(example: Path) -> tuple[str, dict[str, str]]:
    """.env text from .env.example: new secrets, a free port for each *_HOST_PORT."""
    values: dict[str, str] = {}
    lines = []
    for line in example.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.lstrip().startswith("#"):
            key = key.strip()
            if key in SECRETS:
                value = "t" + secrets.token_hex(12)
            elif key.endswith("_HOST_PORT"):
                value = str(free_port())
            values[key] = value
            line = f"{key}={value}"
        lines.append(line)
    return "\n".join(lines) + "\n", values


@dataclass(frozen=True)
class Event:
    """One container event of the project, as `docker events` reports it."""

    service: str
    action: str  # start, die, health_status: healthy, ...
    nanos: int
    exit_code: str | None


class EventLog:
    """`docker events` for the project's containers, recorded from before `up` onwards."""

    def __init__(self, project: str, path: Path) -> None:
        self.path = path
        self._out = open(path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                "docker",
                "events",
                "--format",
                "{{json .}}",
                "--filter",
                "type=container",
                "--filter",
                f"label=com.docker.compose.project={project}",
            ],
            stdout=self._out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    def events(self) -> list[Event]:
        out: list[Event] = []
        for line in self.path.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                raw = json.loads(line)
                attributes = raw.get("Actor", {}).get("Attributes", {})
                service = attributes.get("com.docker.compose.service")
                if service:
                    action = raw.get("Action") or raw.get("status", "")
                    code = attributes.get("exitCode")
                    out.append(Event(service, action, int(raw["timeNano"]), code))
        return sorted(out, key=lambda e: e.nanos)

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
        self._out.close()


class Stack:
    """The copy, its .env and its compose project."""

    def __init__(self, workdir: Path) -> None:
        self.project = f"ms-compose-{secrets.token_hex(4)}"
        self.dir = copy_project(workdir / "project")
        env_text, self.settings = env_file_from_example(self.dir / ".env.example")
        (self.dir / ".env").write_text(env_text)
        self.logs_dir = workdir / "logs"
        self.logs_dir.mkdir()
        self.env = {k: os.environ[k] for k in DOCKER_CLIENT_VARIABLES if k in os.environ}
        self.env.update(
            PATH=os.environ.get("PATH", "/usr/bin:/bin"),
            HOME=os.environ.get("HOME", "/root"),
            LANG="C.UTF-8",
            COMPOSE_PROJECT_NAME=self.project,
        )
        self.events = EventLog(self.project, workdir / "events.jsonl")
        self.timings: dict[str, float] = {}  # seconds, reported at the end of the session
        self.figures: dict[str, str] = {}  # what the fleet's steps counted, reported likewise

    # -- where things are --------------------------------------------------------------------

    def url(self, port_setting: str) -> str:
        return f"http://127.0.0.1:{self.settings[port_setting]}"

    def file(self) -> dict[str, Any]:
        """The copy's compose file, interpolated with the copy's .env."""
        return compose.load(self.dir / "docker-compose.yaml", self.settings)

    def started_services(self) -> set[str]:
        """What `docker compose up` starts: every service outside a profile."""
        return {n for n, s in self.file()["services"].items() if not s.get("profiles")}

    # -- commands ----------------------------------------------------------------------------

    def compose(self, *args: str, timeout: float = 300, check: bool = True) -> Any:
        """`docker compose ARGS` in the copy; with check, a failure shows compose's output."""
        result = subprocess.run(
            ["docker", "compose", *args],
            cwd=self.dir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        if check:
            assert result.returncode == 0, (
                f"docker compose {' '.join(args)}: exit {result.returncode}\n"
                f"{result.stdout[-3000:]}\n{result.stderr[-6000:]}"
            )
        return result

    def shell(self, commands: list[str], timeout: float = 600) -> list[str]:
        """Run commands as printed (one bash, in order, in the copy); the stdout of each.

        A command that fails stops the script and fails the test with its output."""
        marker = f"--- {secrets.token_hex(8)} ---"
        script = "set -e\n" + "".join(f"echo '{marker}'\n{cmd}\n" for cmd in commands)
        result = subprocess.run(
            ["bash", "-c", script],
            cwd=self.dir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        outputs = result.stdout.split(marker + "\n")[1:]
        assert result.returncode == 0, (
            f"`{commands[len(outputs) - 1]}` exit {result.returncode}\n"
            f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
        return outputs

    def ps(self) -> dict[str, dict[str, Any]]:
        """Every container of the project, stopped ones too, by service."""
        out = self.compose("ps", "--all", "--format", "json").stdout.strip()
        rows = json.loads(out) if out.startswith("[") else [json.loads(x) for x in out.splitlines()]
        return {row["Service"]: row for row in rows}

    def container_logs(self) -> str:
        """The logs of every container of the project, timestamped (what a failure shows)."""
        result = self.compose("logs", "--no-color", "--timestamps", timeout=120, check=False)
        return ANSI_ESCAPE.sub("", result.stdout + result.stderr)

    def output_of(self, service: str) -> list[str]:
        """The lines a service's container wrote (its last run)."""
        result = self.compose("logs", "--no-color", "--no-log-prefix", service, timeout=120)
        return ANSI_ESCAPE.sub("", result.stdout).splitlines()

    def keep_logs(self, name: str) -> tuple[Path, str]:
        text = self.container_logs()
        path = self.logs_dir / (re.sub(r"[^\w.-]", "_", name) + ".log")
        path.write_text(text)
        return path, text

    def leftovers(self) -> dict[str, list[str]]:
        """Containers, networks and volumes that still carry the project's label."""
        label = f"label=com.docker.compose.project={self.project}"
        found = {}
        for kind, listing in (
            ("containers", ["ps", "--all"]),
            ("networks", ["network", "ls"]),
            ("volumes", ["volume", "ls"]),
        ):
            result = subprocess.run(
                ["docker", *listing, "--quiet", "--filter", label],
                capture_output=True,
                text=True,
                timeout=60,
                check=True,
            )
            found[kind] = result.stdout.split()
        return found

    def image_is_standin(self, image: str) -> bool:
        """Whether `image` is one of ../shared/docker-offline's stand-ins (no registry here)."""
        result = subprocess.run(
            ["docker", "image", "inspect", "--format", "{{json .Config.Labels}}", image],
            capture_output=True,
            text=True,
            timeout=60,
        )
        labels = json.loads(result.stdout or "null") if result.returncode == 0 else None
        return bool(labels and labels.get(STANDIN_LABEL))

    def down(self) -> None:
        """`docker compose down -v` of this project, whatever state it is in."""
        self.compose("down", "--volumes", "--remove-orphans", "--timeout", "20", check=False)
        self.events.stop()


LAST = "compose_last_step"


def last_step(test: Callable[..., None]) -> Callable[..., None]:
    """A step that runs after every other compose test (conftest orders them): `down -v`."""
    setattr(test, LAST, True)
    return test


def wait_for(what: str, probe: Callable[[], T | None], timeout: float, interval: float = 0.5) -> T:
    """Poll `probe` until it returns something other than None; fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = probe()
        except Exception as exc:  # the last error is part of the failure message
            value, last = None, exc
        if value is not None:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f}s (last error: {last!r})")
        time.sleep(interval)


def manual_blocks(section: str) -> Iterator[list[str]]:
    """The ```sh blocks of a section of the operations page (docs/operations.md), each as its
    commands (continuations joined)."""
    text = (ROOT / "docs" / "operations.md").read_text()
    start = text.index(f"\n## {section}\n")
    end = text.find("\n## ", start + 1)
    body = text[start : end if end != -1 else len(text)]
    for block in re.findall(r"```sh\n(.*?)```", body, re.S):
        lines = (line.strip() for line in re.sub(r"\\\n\s*", " ", block).splitlines())
        yield [line for line in lines if line and not line.startswith("#")]
