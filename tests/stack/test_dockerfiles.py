"""Both Dockerfiles pass hadolint, run as non-root from pinned slim bases, bake in no secrets,
need no frontend image, and install what their service needs from the lock (requirements/*.txt,
exported from uv.lock with hashes), the project itself without dependencies."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.stack import compose
from tests.stack.dockerfile import parse
from tests.stack.images import needed

ROOT = compose.ROOT
DOCKERFILES = [ROOT / "Dockerfile.api", ROOT / "Dockerfile.mlflow"]
HADOLINT = Path(sys.executable).with_name("hadolint")
PINNED_PYTHON = re.compile(r"^python:3\.11\.\d+-slim(-\w+)?$")
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|ACCESS_KEY|API_KEY|CACHE_KEY", re.IGNORECASE)


def hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(HADOLINT), "--no-color", str(path)], capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_passes_hadolint(path: Path) -> None:
    result = hadolint(path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_flags_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install mlflow\nCMD mlflow server\n")
    result = hadolint(bad)
    assert result.returncode != 0
    assert {"DL3007", "DL3013"} <= set(re.findall(r"DL\d{4}", result.stdout)), result.stdout


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_bases_are_pinned_slim_python_311(path: Path) -> None:
    stages = parse(path)
    names = {s.name for s in stages if s.name}
    external = [s.base for s in stages if s.base not in names]
    assert external, f"{path.name} has no FROM"
    for base in external:
        assert PINNED_PYTHON.match(base), f"{path.name}: base {base} is not a pinned slim 3.11"


def test_no_dockerfile_names_a_frontend_image() -> None:
    """A `# syntax=` line makes BuildKit pull that frontend image before anything else: a build
    that needs a registry even when every base image is present."""
    found = [p for p in ROOT.glob("**/Dockerfile*") if ".venv" not in p.parts]
    assert set(DOCKERFILES) <= set(found)
    for path in found:
        for line in path.read_text().splitlines():
            assert not re.match(r"#\s*syntax\s*=", line.strip(), re.I), f"{path.name}: {line}"


def test_the_images_to_provide_are_the_pulled_ones_and_the_bases() -> None:
    """What .ci/run asks ../shared/docker-offline/setup for: every image compose would pull,
    every Dockerfile base, none of the images the stack builds itself."""
    images = needed()
    services = compose.raw()["services"]
    assert services["postgres"]["image"] in images
    assert services["minio"]["image"] in images
    assert compose.raw(compose.FLEET_FILE)["services"]["lb"]["image"] in images
    bases = {s.base for path in DOCKERFILES for s in parse(path)} - {"base"}
    assert bases and bases <= set(images)
    assert not {s["image"] for s in services.values() if "build" in s} & set(images)
    assert len(images) == len(set(images))


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_every_final_stage_runs_as_non_root(path: Path) -> None:
    stages = parse(path)
    by_name = {s.name: s for s in stages if s.name}
    # Stages another stage builds on are intermediate; the rest are build targets.
    parents = {s.base for s in stages}
    targets = [s for s in stages if s.name not in parents]
    assert targets
    for stage in targets:
        user = stage.user(by_name).split(":")[0]
        assert user not in ("root", "0"), f"{path.name} stage {stage.name} runs as {user}"


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_no_secret_is_baked_in(path: Path) -> None:
    for stage in parse(path):
        for op, arg in stage.instructions:
            if op in ("ENV", "ARG"):
                assert not SECRET_NAME.search(arg), f"{path.name}: {op} {arg}"
            if op in ("COPY", "ADD"):
                assert ".env" not in arg.split(), f"{path.name}: {op} {arg}"


def test_dockerignore_keeps_credentials_and_local_state_out() -> None:
    lines = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    # An allow-list: everything excluded, then the few paths the images need re-included.
    assert lines[0] == "*"
    included = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    assert included == {
        "pyproject.toml",
        "README.md",
        "requirements",
        "app",
        "trainer",
        "model_serving",
    }
    copied = {
        src.rstrip("/")
        for stage in parse(ROOT / "Dockerfile.api")
        for op, arg in stage.instructions
        if op == "COPY"
        for src in arg.split()[:-1]
    }
    assert copied <= included, f"COPY of paths .dockerignore excludes: {copied - included}"


def pins(requirements: str) -> dict[str, str]:
    """Package -> version of an exported lock file; fails on a line pinned without hashes."""
    text = (ROOT / "requirements" / requirements).read_text()
    entries = re.findall(
        r"^([A-Za-z0-9_.\[\]-]+)==([^\s;]+)([^\n]*\\\n(?:\s+--hash=\S+.*\n)+)?", text, re.M
    )
    unhashed = [name for name, _, hashes in entries if "--hash=sha256:" not in hashes]
    assert entries and not unhashed, f"{requirements}: pinned without hashes: {unhashed}"
    return {name.lower(): version for name, version, _ in entries}


def test_api_image_installs_the_base_dependencies_and_trainer_image_the_extra() -> None:
    stages = {s.name: s for s in parse(ROOT / "Dockerfile.api")}
    assert parse(ROOT / "Dockerfile.api")[-1].name == "api", "api must be the default target"

    def installs(stage: str) -> list[str]:
        """The pip installs that make the stage, its parent stages' first."""
        inherited = installs(stages[stage].base) if stages[stage].base in stages else []
        commands = (c.strip() for run in stages[stage].runs() for c in run.split("&&"))
        return inherited + [c for c in commands if "pip install" in c]

    api_installs, trainer_installs = installs("api"), installs("trainer")
    lock = "pip install --no-cache-dir --no-deps --require-hashes -r requirements/{}.txt"
    assert api_installs == [lock.format("api"), "pip install --no-cache-dir --no-deps ."]
    assert trainer_installs == [*api_installs, lock.format("trainer")]

    api, trainer = pins("api.txt"), pins("trainer.txt")
    assert "mlflow-skinny" in api and "psycopg2-binary" in api
    # No MLflow server or SQL-store dependencies in the API image; only the Postgres driver,
    # which the prediction log writes with.
    assert not {"mlflow", "sqlalchemy", "alembic"} & set(api)
    assert "mlflow" in trainer
    # The trainer image adds to the API's packages; it never installs another version of one.
    assert {name: trainer[name] for name in api} == api

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    base = [re.split(r"[\s<>=!~;\[]", dep, maxsplit=1)[0] for dep in project["dependencies"]]
    assert {name.lower() for name in base} <= set(api), "a base dependency missing from the lock"


def test_compose_builds_targets_that_exist() -> None:
    stages = {s.name for s in parse(ROOT / "Dockerfile.api")}
    for name, service in compose.raw()["services"].items():
        build = service.get("build")
        if not build:
            continue
        dockerfile = ROOT / build.get("dockerfile", "Dockerfile")
        assert dockerfile.is_file(), f"{name}: {dockerfile.name} does not exist"
        if "target" in build:
            assert dockerfile.name == "Dockerfile.api" and build["target"] in stages, name


def test_mlflow_image_installs_its_server_from_the_lock() -> None:
    (stage,) = parse(ROOT / "Dockerfile.mlflow")
    (install,) = [r for r in stage.runs() if "pip install" in r]
    assert install.split("&&")[0].split() == [
        "pip",
        "install",
        "--no-cache-dir",
        "--no-deps",
        "--require-hashes",
        "-r",
        "/tmp/requirements.txt",
    ]
    copies = [arg.split() for op, arg in stage.instructions if op == "COPY"]
    assert ["requirements/trainer.txt", "/tmp/requirements.txt"] in copies
    packages = pins("trainer.txt")
    assert packages.keys() >= {"mlflow", "psycopg2-binary", "boto3"}
    # The image's tag names the MLflow it runs.
    tag = compose.raw()["services"]["mlflow-server"]["image"].rsplit(":", 1)[1]
    assert packages["mlflow"] == tag
