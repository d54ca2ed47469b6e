"""A real kubectl for rendering deploy/k8s: skips locally without one, fails when CI=true."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import IN_CI
from tests.deploy import manifests


@pytest.fixture(scope="session")
def kubectl() -> str:
    path = manifests.kubectl_path()
    if path is None:
        message = (
            "no kubectl that renders kustomizations on PATH "
            "(`../shared/docker-offline/setup --kubectl` installs one)"
        )
        if IN_CI:
            pytest.fail(message + " (CI=true: the deploy tests must run)")
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def rendered(kubectl: str) -> dict[Path, list[manifests.Object]]:
    """Every stack under deploy/k8s, rendered once: {kustomization folder: objects}."""
    return {path: manifests.render(kubectl, path) for path in manifests.stacks()}


@pytest.fixture(scope="session")
def base(rendered: dict[Path, list[manifests.Object]]) -> list[manifests.Object]:
    return rendered[manifests.DEPLOY]


@pytest.fixture(scope="session")
def kserve(rendered: dict[Path, list[manifests.Object]]) -> list[manifests.Object]:
    return rendered[manifests.DEPLOY / "kserve"]
