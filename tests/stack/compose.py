"""docker-compose.yaml as data: loaded and interpolated the way `docker compose` does it.

Shared by the static checks (tests/stack) and the end-to-end test (tests/integration), which
runs the same commands with the same environment as local processes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yaml"
FLEET_FILE = ROOT / "docker-compose.fleet.yaml"
"""The overlay that runs API_REPLICAS replicas behind a load balancer."""
ENV_EXAMPLE = ROOT / ".env.example"

# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error}, $VAR; $$ is a literal $.
_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)"
    r"|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
    r"|(?P<named>[A-Za-z_][A-Za-z0-9_]*))"
)


class MissingVariable(KeyError):
    """A ${VAR:?message} whose variable is unset or empty."""


def read_env_file(path: Path = ENV_EXAMPLE) -> dict[str, str]:
    """KEY=VALUE lines of a .env file; blank lines and # comments skipped."""
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise ValueError(f"{path}: not KEY=VALUE: {line!r}")
        values[key.strip()] = value.strip().strip("'\"")
    return values


def variables(text: str) -> set[str]:
    """Names of the variables a string refers to."""
    return {m["braced"] or m["named"] for m in _VARIABLE.finditer(text) if not m["escaped"]}


def required_variables(text: str) -> set[str]:
    """Names of the variables referred to as ${VAR:?...} or ${VAR?...}."""
    return {m["braced"] for m in _VARIABLE.finditer(text) if m["op"] in (":?", "?")}


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """Substitute variables as Compose does; raises MissingVariable for an unmet ${VAR:?}."""

    def substitute(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        name = match["braced"] or match["named"]
        op, arg = match["op"], match["arg"] or ""
        value = env.get(name)
        if op in (":-", ":?"):
            present = bool(value)
        else:
            present = value is not None
        if present:
            return str(value)
        if op in (":-", "-"):
            return arg
        if op in (":?", "?"):
            raise MissingVariable(f"{name}: {arg}")
        return ""

    return _VARIABLE.sub(substitute, text)


def _resolve(node: Any, env: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, list):
        return [_resolve(item, env) for item in node]
    if isinstance(node, dict):
        return {key: _resolve(value, env) for key, value in node.items()}
    return node


class _ComposeLoader(yaml.SafeLoader):
    """YAML with Compose's merge tags: `!reset` and `!override` read as the value they carry
    (what an overlay puts in place of the base file's)."""


for _tag in ("!reset", "!override"):
    _ComposeLoader.add_constructor(
        _tag,
        lambda loader, node: (
            loader.construct_sequence(node)
            if isinstance(node, yaml.SequenceNode)
            else loader.construct_mapping(node)
            if isinstance(node, yaml.MappingNode)
            else loader.construct_scalar(node)
        ),
    )


def raw(path: Path = COMPOSE_FILE) -> dict[str, Any]:
    """The compose file as YAML data (anchors and merge keys resolved), not interpolated."""
    data = yaml.load(path.read_text(), Loader=_ComposeLoader)
    assert isinstance(data, dict), f"{path} is not a mapping"
    return data


def load(path: Path = COMPOSE_FILE, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The compose file interpolated with `env` (default: the values of .env.example)."""
    return _resolve(raw(path), read_env_file() if env is None else env)


def environment(service: Mapping[str, Any]) -> dict[str, str]:
    """A service's `environment`, whether written as a mapping or as a KEY=VALUE list."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        pairs = (item.partition("=") for item in env)
        return {key: value for key, _, value in pairs}
    return {key: "" if value is None else str(value) for key, value in env.items()}


def command(service: Mapping[str, Any]) -> list[str]:
    """A service's `command` as an argument list (this project writes them as lists)."""
    cmd = service.get("command")
    assert isinstance(cmd, list), f"command must be a list, got {cmd!r}"
    return [str(arg) for arg in cmd]


def healthcheck(service: Mapping[str, Any]) -> list[str]:
    """The argv of a service's `healthcheck.test` (["CMD", ...] form)."""
    test = service["healthcheck"]["test"]
    assert isinstance(test, list) and test[0] == "CMD", f"healthcheck not in CMD form: {test!r}"
    return [str(arg) for arg in test[1:]]


def depends_on(service: Mapping[str, Any]) -> dict[str, str]:
    """{dependency: condition} of a service (the short list form means service_started)."""
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: (spec or {}).get("condition", "service_started") for name, spec in deps.items()}
