"""docker-compose.yaml validates against the Compose specification's JSON schema (offline copy).

The schema is the one check-jsonschema vendors from compose-spec/compose-spec; the same check
from a shell: `check-jsonschema --builtin-schema vendor.compose-spec docker-compose.yaml`.
"""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from check_jsonschema.builtin_schemas import get_builtin_schema

from tests.stack import compose


@pytest.fixture(scope="module")
def validator() -> jsonschema.protocols.Validator:
    schema = get_builtin_schema("vendor.compose-spec")
    assert schema.get("title") == "Compose Specification"
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def errors(validator: jsonschema.protocols.Validator, document: Any) -> list[str]:
    found = validator.iter_errors(document)
    return [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in found]


def test_compose_file_matches_the_compose_spec(validator: jsonschema.protocols.Validator) -> None:
    assert errors(validator, compose.raw()) == []


def test_compose_file_interpolated_with_env_example_still_matches(
    validator: jsonschema.protocols.Validator,
) -> None:
    # What `docker compose up` sees after `cp .env.example .env`.
    assert errors(validator, compose.load()) == []


def _broken_variants() -> list[tuple[str, Any]]:
    good = compose.raw()
    variants = []

    bad = copy.deepcopy(good)
    bad["services"]["api"]["depends_on"]["trainer"]["condition"] = "service_finished"
    variants.append(("unknown depends_on condition", bad))

    bad = copy.deepcopy(good)
    bad["services"]["mlflow-server"]["healthcheck"]["retry"] = 5
    variants.append(("misspelt healthcheck key", bad))

    bad = copy.deepcopy(good)
    bad["services"]["postgres"]["ports"] = "5432:5432"
    variants.append(("ports not a list", bad))

    bad = copy.deepcopy(good)
    bad["service"] = bad.pop("services")
    variants.append(("misspelt top-level key", bad))

    bad = copy.deepcopy(good)
    bad["services"]["minio"]["image"] = ["quay.io/minio/minio"]
    variants.append(("image not a string", bad))
    return variants


@pytest.mark.parametrize(("what", "document"), _broken_variants(), ids=lambda v: str(v)[:40])
def test_a_broken_compose_file_is_rejected(
    validator: jsonschema.protocols.Validator, what: str, document: Any
) -> None:
    assert errors(validator, document), f"schema accepted a compose file with {what}"


def test_check_jsonschema_cli_agrees(tmp_path: Path) -> None:
    """The command-line check a person would run, on the real file and on a broken copy."""
    cli = [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec"]
    ok = subprocess.run([*cli, str(compose.COMPOSE_FILE)], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr

    broken = compose.raw()
    broken["services"]["api"]["restart"] = ["always"]
    path = tmp_path / "docker-compose.yaml"
    path.write_text(yaml.safe_dump(broken))
    bad = subprocess.run([*cli, str(path)], capture_output=True, text=True)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "restart" in bad.stdout


def test_fleet_overlay_matches_the_compose_spec(validator: jsonschema.protocols.Validator) -> None:
    assert errors(validator, compose.load(compose.FLEET_FILE)) == []
