"""What the project's containers may do, read back from a real engine: the api, the trainer
and the trainer image's one-shot jobs run on a read-only root filesystem with no capabilities
and no way to gain privileges, writing only where the compose file gives them a tmpfs or a
volume; and a process inside really is held to that.

The containers are created (`docker compose create --build`), not started with the stack:
their settings are the engine's record of them, and `docker compose run --no-deps` runs a
command in a container made from the same service definition."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

from tests.compose.stack import Stack

pytestmark = pytest.mark.compose

LOCKED_DOWN = ("api", "trainer", "create-bucket", "seed-db")
USER = "10001:10001"  # Dockerfile.api's user
WRITABLE = {
    "api": {"/tmp", "/var/cache/model-serving"},
    "trainer": {"/tmp", "/home/app"},
}


def inspect(stack: Stack, service: str) -> dict[str, Any]:
    container = stack.ps()[service]["ID"]
    result = subprocess.run(
        ["docker", "inspect", container], capture_output=True, text=True, timeout=60, check=True
    )
    (found,) = json.loads(result.stdout)
    return dict(found)


@pytest.fixture(scope="module")
def created(stack: Stack) -> Stack:
    stack.compose("create", "--build", *LOCKED_DOWN, timeout=1800)
    return stack


@pytest.mark.parametrize("service", LOCKED_DOWN)
def test_the_engine_runs_the_projects_containers_locked_down(created: Stack, service: str) -> None:
    container = inspect(created, service)
    host = container["HostConfig"]
    assert host["ReadonlyRootfs"] is True
    assert host["CapDrop"] == ["ALL"] and not host["CapAdd"]
    assert "no-new-privileges:true" in host["SecurityOpt"]
    assert host["Privileged"] is False
    assert container["Config"]["User"] == USER  # the image's, non-root
    mounts = {m["Destination"] for m in container["Mounts"]}
    writable = set(host.get("Tmpfs") or {}) | mounts
    expected = WRITABLE.get(service, WRITABLE["trainer"])  # the trainer image's jobs alike
    assert writable == expected


# What a process in the container may do: `run --no-deps` makes a container of the service.
_PROBE = """
import json, os, sys, tempfile
def writes(folder):
    try:
        tempfile.TemporaryFile(dir=folder).close()
        return True
    except OSError:
        return False
status = dict(line.split(":", 1) for line in open("/proc/self/status"))
print(json.dumps({
    "writes": {p: writes(p) for p in ["/", "/src", "/usr/local/lib", "/etc", *sys.argv[1:]]},
    "uid": os.getuid(),
    "cap_eff": status["CapEff"].strip(),
    "cap_bnd": status["CapBnd"].strip(),
    "no_new_privs": status["NoNewPrivs"].strip(),
}))
"""


@pytest.mark.parametrize("service", ["api", "trainer"])
def test_a_process_inside_writes_only_where_it_is_given_room_and_has_no_capabilities(
    created: Stack, service: str
) -> None:
    writable = sorted(WRITABLE[service])
    result = created.compose(
        "run", "--rm", "--no-deps", "--no-TTY", service, "python", "-c", _PROBE, *writable,
        timeout=300,
    )  # fmt: skip
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["writes"] == {
        "/": False, "/src": False, "/usr/local/lib": False, "/etc": False,
        **dict.fromkeys(writable, True),
    }  # fmt: skip
    assert seen["uid"] == 10001
    assert seen["cap_eff"] == seen["cap_bnd"] == "0000000000000000"
    assert seen["no_new_privs"] == "1"
