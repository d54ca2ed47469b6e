"""On the library versions the lock installs, every compatibility module finds what the
service relies on: an upgrade that takes something away fails here, by name, before it
makes the service slower."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest

from app.compat import fastapi as fastapi_compat
from app.compat import sklearn as sklearn_compat
from app.compat import starlette as starlette_compat
from app.compat import uvicorn as uvicorn_compat


@pytest.mark.parametrize(
    "module", [uvicorn_compat, fastapi_compat, starlette_compat, sklearn_compat]
)
def test_the_locked_versions_have_everything_relied_on(module: Any) -> None:
    assert module.probe() is None


def test_the_locked_uvicorn_server_can_drain() -> None:
    class Bare:
        def handle_exit(self, sig: int, frame: Any) -> None:
            pass

    assert uvicorn_compat.server_probe() is None
    assert uvicorn_compat.server_probe(Bare) == "Server has no self.should_exit = True"


def test_each_probe_names_what_a_library_lacks() -> None:
    class Bare:
        def fit(self) -> None:
            pass

    assert uvicorn_compat.probe(ModuleType("empty")) == (
        "uvicorn.protocols.http.httptools_impl.HttpToolsProtocol is gone"
    )
    assert sklearn_compat.probe(Bare) == "SVC has no _dense_predict"
