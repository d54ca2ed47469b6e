"""Start and stop real server processes for tests: free ports, process groups, readiness."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

ROOT = Path(__file__).resolve().parent.parent
INHERITED_NEVER = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
T = TypeVar("T")


def wait_for(condition: Callable[[], T | None], timeout: float = 30.0, what: str = "") -> T:
    """Poll `condition` until it returns a true value, and return that value; fail after
    `timeout` seconds saying `what` was awaited."""
    deadline = time.monotonic() + timeout
    while True:
        if value := condition():
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"not within {timeout}s: {what or 'condition not met'}")
        time.sleep(0.02)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def python_env(
    extra: Mapping[str, str] | None = None, *, drop: Sequence[str] = ()
) -> dict[str, str]:
    """The test process's environment plus `extra`, minus `drop`, for a project subprocess.

    MLflow's own URI variables are never inherited: `mlflow.set_tracking_uri()` and
    `set_registry_uri()` in the test process write them to its environment."""
    dropped = {*drop, *INHERITED_NEVER}
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


class Server:
    """A subprocess in its own process group, its output captured to a log file."""

    def __init__(self, args: Sequence[str], env: Mapping[str, str], log: Path, cwd: Path) -> None:
        self.args = list(args)
        self.log_path = log
        self._log = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            self.args,
            env=dict(env),
            cwd=cwd,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def wait_output(self, text: str, count: int = 1, timeout: float = 60.0) -> str:
        """Wait until the output holds `text` `count` times (fail if the process ends first);
        the output then."""

        def seen() -> str:
            output = self.output()
            assert self.proc.poll() is None or output.count(text) >= count, (
                f"{self.args[:3]} exited {self.proc.returncode} before printing {text!r}:\n"
                + output[-4000:]
            )
            return output if output.count(text) >= count else ""

        return wait_for(seen, timeout, f"{text!r} {count} times in {self.log_path}")

    def read_connections(self, port: int, pid: int | None = None) -> int:
        """Connections to TCP `port` that a process of this server's group (or the process
        `pid` alone) has accepted and read all that was sent on so far (Linux /proc). One
        still in the listen backlog is held by no process; one not read yet has bytes in its
        receive queue."""
        drained = set()
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            with contextlib.suppress(FileNotFoundError):
                for line in Path(table).read_text().splitlines()[1:]:
                    fields = line.split()
                    local, state, queues, inode = fields[1], fields[3], fields[4], fields[9]
                    established, unread = state == "01", int(queues.split(":")[1], 16)
                    if established and int(local.rsplit(":", 1)[1], 16) == port and not unread:
                        drained.add(f"socket:[{inode}]")
        held = 0
        procs = [Path(f"/proc/{pid}")] if pid is not None else Path("/proc").iterdir()
        for proc in procs:
            if not proc.name.isdigit():
                continue
            try:
                if os.getpgid(int(proc.name)) != self.proc.pid:
                    continue
                fds = list((proc / "fd").iterdir())
            except OSError:  # gone meanwhile
                continue
            for fd in fds:
                with contextlib.suppress(OSError):
                    held += os.readlink(fd) in drained
        return held

    def wait_http(self, url: str, timeout: float = 60.0, status: int = 200) -> None:
        """Wait until GET `url` answers `status`; fail with the server's log if it dies."""
        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.args[:3]} exited {self.proc.returncode} before {url} was up:\n"
                    + self.output()[-4000:]
                )
            try:
                with urllib.request.urlopen(url, timeout=2) as resp:
                    if resp.status == status:
                        return
                    last = resp.status
            except urllib.error.HTTPError as exc:
                last = exc.code
                if exc.code == status:
                    return
            except OSError as exc:
                last = exc
            time.sleep(0.2)
        raise TimeoutError(
            f"{url} not answering {status} after {timeout}s (last: {last}):\n"
            + self.output()[-4000:]
        )

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM the whole process group, SIGKILL it if it lingers; returns the exit code."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
        # Children that outlived the leader (mlflow server's workers) share its group.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self._log.close()
        return self.proc.returncode


@contextlib.contextmanager
def running(
    args: Sequence[str], env: Mapping[str, str], log: Path, cwd: Path = ROOT
) -> Iterator[Server]:
    server = Server(args, env, log, cwd)
    try:
        yield server
    finally:
        server.stop()


def run_cli(
    module: str, *args: str, env: Mapping[str, str], cwd: Path = ROOT, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run `python -m module args...` to completion, capturing text output."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        env=dict(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
