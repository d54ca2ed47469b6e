"""The local model cache: the API starts without its registry, and never serves a bad copy."""

from __future__ import annotations

import hashlib
import json
import pickle
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from app.api.application import create_app
from app.model.cache import SIGNATURE_FILE, ModelCache, sign
from app.settings import Settings
from tests.app.conftest import IRIS_EXAMPLE, wait_ready
from tests.servers import ROOT, Server, free_port, python_env, run_cli, wait_for

ALIAS_URI = "models:/sk_model@champion"
CACHE_KEY = "cache-key-for-tests-0123456789"


def _train(store: Path) -> dict[str, Any]:
    result = run_cli(
        "trainer", "train", "--register", "--alias", "champion", "--json",
        env=python_env({"MLFLOW_TRACKING_URI": f"sqlite:///{store}/mlflow.db"}), cwd=store,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    out: dict[str, Any] = json.loads(result.stdout)
    return out


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store of this module's own (its tests move the alias)."""
    folder = tmp_path_factory.mktemp("cache-store")
    _train(folder)
    return folder


@pytest.fixture(scope="module")
def cached(store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache folder holding version 1, stored by an app that loaded it from the registry."""
    cache = tmp_path_factory.mktemp("cache")
    settings = Settings(model_uri=ALIAS_URI, model_cache_dir=cache, model_cache_key=CACHE_KEY)
    with TestClient(create_app(settings, tracking_uri=f"sqlite:///{store}/mlflow.db")) as client:
        wait_ready(client)
        assert client.get("/readyz").json()["source"] == "registry"
        wait_for(lambda: list(cache.glob("*/*/entry.json")))
    return cache


def _unreachable_app(cache: Path, port: int, **overrides: Any) -> TestClient:
    settings = Settings(
        model_uri=ALIAS_URI, model_cache_dir=cache, model_cache_key=CACHE_KEY, **overrides
    )
    return TestClient(create_app(settings, tracking_uri=f"http://127.0.0.1:{port}"))


def test_an_entry_holds_the_files_and_identity_of_what_was_served(cached: Path) -> None:
    (entry_file,) = cached.glob("*/*/entry.json")
    entry = json.loads(entry_file.read_text())
    assert entry["uri"] == ALIAS_URI
    assert (entry["identity"]["name"], entry["identity"]["version"]) == ("sk_model", "1")
    assert {"MLmodel", "model.skops"} <= set(entry["files"])
    assert (entry_file.parent / "model" / "MLmodel").is_file()
    serving = (entry_file.parent / "serving.pkl").read_bytes()  # the service's own file
    assert entry["serving"] == [len(serving), hashlib.sha256(serving).hexdigest()]


def test_without_the_registry_the_cached_model_serves_at_once(
    cached: Path, reference: Callable[..., list[Any]], caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    with _unreachable_app(cached, port) as client:
        wait_ready(client, timeout=15)
        ready = client.get("/readyz").json()
        info = client.get("/model-info").json()
        answer = client.post("/predict", json=IRIS_EXAMPLE)
        metrics = client.get("/metrics").text
    serving = [r.getMessage() for r in caplog.records if "from the cache (stored" in r.getMessage()]
    assert serving and serving[0].endswith(
        f"while the registry is unreachable: tracking server http://127.0.0.1:{port}:"
        " connection refused"
    )  # the reason, not "None"
    assert (ready["source"], ready["registry"]) == ("cache", "unreachable")
    assert ready["model"]["version"] == "1"
    assert (info["source"], info["version"]) == ("cache", "1")
    assert info["metrics"]["valid_acc"] > 0  # the run's metrics, kept with the entry
    assert answer.json()["predictions"] == reference([IRIS_EXAMPLE])
    assert 'model_source{source="cache"} 1.0' in metrics
    assert "model_registry_reachable 0.0" in metrics


# Run in a fresh interpreter: what a start from the cache imports, and what it then predicts.
_START_FROM_CACHE = """
import json, sys
import numpy as np
import app.api.application
from app.model.cache import ModelCache
from app.model.mlflow_model import MlflowPredictor
from pathlib import Path

cache, uri, dead, rows, key = sys.argv[1:6]
predictor = MlflowPredictor(uri, tracking_uri=dead)
reason = predictor.probe()
predictor.load_cached(ModelCache(Path(cache), key.encode()).latest(uri))
info = predictor.describe()
print(json.dumps({
    "reason": str(reason),
    "imported": sorted({"mlflow", "skops"} & set(sys.modules)),
    "path": info["predict_path"],
    "version": info["version"],
    "predictions": predictor.predict(np.array(json.loads(rows), dtype=np.float64)),
}))
"""


def _start_from_cache(cache: Path, rows: list[list[float]]) -> dict[str, Any]:
    dead = f"http://127.0.0.1:{free_port()}"
    args = [str(cache), ALIAS_URI, dead, json.dumps(rows), CACHE_KEY]
    result = subprocess.run(
        [sys.executable, "-c", _START_FROM_CACHE, *args],
        env=python_env(), cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    out: dict[str, Any] = json.loads(result.stdout.splitlines()[-1])
    assert out["reason"] == f"tracking server {dead}: connection refused"
    return out


def test_a_start_from_the_cache_serves_the_serving_file_without_importing_mlflow(
    cached: Path, reference: Callable[..., list[Any]], iris_records: list[dict[str, float]]
) -> None:
    rows = [[r[name] for name in IRIS_EXAMPLE] for r in iris_records]
    out = _start_from_cache(cached, rows)
    assert out["imported"] == []  # neither MLflow nor skops: the slow part of a start
    assert (out["path"], out["version"]) == ("lean", "1")
    assert out["predictions"] == reference(iris_records)


def _replace_serving(entry: Path, data: bytes, key: str | None) -> None:
    """Put `data` in place of the serving file, with its manifest line; the manifest signed
    with `key` (None: the signature left as it was)."""
    (entry / "serving.pkl").write_bytes(data)
    manifest = json.loads((entry / "entry.json").read_text())
    manifest["serving"] = [len(data), hashlib.sha256(data).hexdigest()]
    text = json.dumps(manifest).encode()
    (entry / "entry.json").write_bytes(text)
    if key is not None:
        (entry / SIGNATURE_FILE).write_text(sign(key.encode(), text))


def _rewrite_serving(entry: Path, change: Callable[[dict[str, Any]], None]) -> None:
    """Change the serving file's record, as the service would have written it (a whole,
    signed entry)."""
    record = pickle.loads((entry / "serving.pkl").read_bytes())
    change(record)
    _replace_serving(entry, pickle.dumps(record), CACHE_KEY)


@pytest.mark.parametrize(
    "change",
    [
        lambda r: r["environment"].update(scikit_learn="0.1"),  # an image with another sklearn
        lambda r: r.update(answers=[-1 for _ in r["answers"]]),  # answers that no longer hold
    ],
    ids=["other-environment", "answers-differ"],
)
def test_a_serving_file_that_does_not_hold_here_falls_back_to_mlflows_files(
    cached: Path,
    tmp_path: Path,
    reference: Callable[..., list[Any]],
    iris_records: list[dict[str, float]],
    change: Callable[[dict[str, Any]], None],
) -> None:

    copy = tmp_path / "copy"
    shutil.copytree(cached, copy)
    (entry_file,) = copy.glob("*/*/entry.json")
    _rewrite_serving(entry_file.parent, change)
    rows = [[r[name] for name in IRIS_EXAMPLE] for r in iris_records]
    out = _start_from_cache(copy, rows)
    assert "mlflow" in out["imported"]  # opened as a registry load opens it
    assert out["predictions"] == reference(iris_records)


@pytest.mark.parametrize("corrupt", ["model/model.skops", "serving.pkl"])
def test_a_corrupt_entry_is_never_served(
    cached: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture, corrupt: str
) -> None:
    broken = tmp_path / "broken"

    shutil.copytree(cached, broken)
    (damaged,) = broken.glob(f"*/*/{corrupt}")
    data = bytearray(damaged.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, other bytes
    damaged.write_bytes(bytes(data))
    fatal: list[bool] = []
    settings = Settings(
        model_uri=ALIAS_URI, model_cache_dir=broken, model_cache_key=CACHE_KEY,
        model_load_timeout=1,
    )  # fmt: skip
    app = create_app(
        settings,
        tracking_uri=f"http://127.0.0.1:{free_port()}",
        on_fatal=lambda: fatal.append(True),
    )
    with TestClient(app) as client:
        wait_for(lambda: fatal, timeout=30)
        assert client.get("/readyz").status_code == 503
    assert "does not match its manifest" in caplog.text


def test_only_the_last_two_versions_are_kept_and_partial_writes_are_invisible(
    tmp_path: Path, cached: Path
) -> None:
    (model_dir,) = cached.glob("*/*/model")
    cache = ModelCache(tmp_path / "c", CACHE_KEY.encode())
    for version in ("1", "2", "3"):
        cache.save("models:/m@a", model_dir, {"name": "m", "version": version}, {})
    folder = next((tmp_path / "c").iterdir())
    (folder / ".staging-interrupted").mkdir()  # a write that died before its rename
    assert [e.identity["version"] for e in cache.entries("models:/m@a")] == ["3", "2"]
    assert cache.entries("models:/other@a") == []


@pytest.fixture
def registry_port() -> int:
    return free_port()


@pytest.fixture
def late_registry(store: Path, registry_port: int, tmp_path: Path) -> Iterator[Callable[[], None]]:
    """Starts `mlflow server` on the store when called; stopped after the test."""
    started: list[Server] = []
    args = [
        sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1",
        "--port", str(registry_port), "--workers", "1",
        "--backend-store-uri", f"sqlite:///{store}/mlflow.db",
    ]  # fmt: skip
    env = python_env({"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})

    def start() -> None:
        server = Server(args, env, tmp_path / "mlflow.log", store)
        started.append(server)
        server.wait_http(f"http://127.0.0.1:{registry_port}/health", timeout=120)

    yield start
    for server in started:
        server.stop()


def _if_version(ready: dict[str, Any], version: str) -> dict[str, Any] | None:
    return ready if ready.get("model", {}).get("version") == version else None


def test_when_the_registry_answers_again_a_newer_version_is_swapped_in(
    cached: Path, store: Path, registry_port: int, late_registry: Callable[[], None]
) -> None:
    newer = _train(store)  # champion -> version 2, while the API cannot see the registry
    with _unreachable_app(cached, registry_port, registry_retry_max=1) as client:
        wait_ready(client, timeout=15)
        assert client.get("/readyz").json()["model"]["version"] == "1"
        late_registry()
        ready = wait_for(lambda: _if_version(client.get("/readyz").json(), "2"), timeout=90)
        assert ready["registry"] == "reachable"
        assert (ready["source"], ready["model"]["version"]) == ("registry", str(newer["version"]))
        assert client.post("/predict", json=IRIS_EXAMPLE).json()["model"]["version"] == "2"
        wait_for(lambda: len(list(cached.glob("*/*/entry.json"))) == 2)


class _Payload:
    """Unpickled, writes `marker`: what a writer of the cache folder would put there."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (exec, (f"open({str(self.marker)!r}, 'w').write('ran')",))


def _tamper(entry: Path, data: bytes, how: str) -> None:
    if how == "manifest-updated":  # the signature left as it was
        _replace_serving(entry, data, None)
    elif how == "signed-with-another-key":
        _replace_serving(entry, data, "not-the-cache-key-0123456789")
    elif how == "signature-removed":
        _replace_serving(entry, data, CACHE_KEY)
        (entry / SIGNATURE_FILE).unlink()
    else:  # the pickle alone swapped
        (entry / "serving.pkl").write_bytes(data)


@pytest.mark.parametrize(
    "how",
    ["manifest-updated", "signed-with-another-key", "signature-removed", "pickle-only"],
)
def test_a_tampered_entry_is_never_loaded_and_the_model_comes_from_the_registry(
    cached: Path, store: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture, how: str
) -> None:
    decoy = tmp_path / "decoy"
    pickle.loads(pickle.dumps(_Payload(decoy)))
    assert decoy.read_text() == "ran", "the payload runs when unpickled"
    marker = tmp_path / "marker"
    tampered = tmp_path / "cache"
    shutil.copytree(cached, tampered)
    entries = [path.parent for path in tampered.glob("*/*/entry.json")]
    assert entries
    for entry in entries:
        _tamper(entry, pickle.dumps({"format": 1, "payload": _Payload(marker)}), how)

    fatal: list[bool] = []
    settings = Settings(
        model_uri=ALIAS_URI, model_cache_dir=tampered, model_cache_key=CACHE_KEY,
        model_load_timeout=1,
    )  # fmt: skip
    down = f"http://127.0.0.1:{free_port()}"
    with TestClient(
        create_app(settings, tracking_uri=down, on_fatal=lambda: fatal.append(True))
    ) as c:
        wait_for(lambda: fatal, timeout=30)
        assert c.get("/readyz").status_code == 503  # no copy to serve: nothing trusted
    skipped = "is not signed with MODEL_CACHE_KEY" if how != "pickle-only" else "its manifest"
    assert skipped in caplog.text
    assert not marker.exists()

    # With the registry: loaded from there, and stored again, signed.
    with TestClient(create_app(settings, tracking_uri=f"sqlite:///{store}/mlflow.db")) as c:
        wait_ready(c)
        assert c.get("/readyz").json()["source"] == "registry"
        stored = wait_for(lambda: ModelCache(tampered, CACHE_KEY.encode()).entries(ALIAS_URI))
    assert stored[0].path not in entries
    assert not marker.exists()


def test_without_a_key_the_cache_is_not_read(
    cached: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fatal: list[bool] = []
    settings = Settings(model_uri=ALIAS_URI, model_cache_dir=cached, model_load_timeout=1)
    down = f"http://127.0.0.1:{free_port()}"
    with TestClient(
        create_app(settings, tracking_uri=down, on_fatal=lambda: fatal.append(True))
    ) as c:
        wait_for(lambda: fatal, timeout=30)
        assert c.get("/readyz").status_code == 503  # the cached copy is not served
    lines = [r.getMessage() for r in caplog.records if "MODEL_CACHE_KEY is not" in r.getMessage()]
    assert len(lines) == 1 and "the model cache is off" in lines[0]
    assert "from the cache" not in caplog.text


@pytest.mark.parametrize("mode", [0o777, 0o775, 0o757])
def test_a_cache_folder_others_may_write_is_refused_at_start(tmp_path: Path, mode: int) -> None:
    folder = tmp_path / "cache"
    folder.mkdir()
    folder.chmod(mode)
    with pytest.raises(ValidationError, match="writable by group or others"):
        Settings(model_uri=ALIAS_URI, model_cache_dir=folder, model_cache_key=CACHE_KEY)
    env = python_env(
        {"MODEL_URI": ALIAS_URI, "MODEL_CACHE_DIR": str(folder), "MODEL_CACHE_KEY": CACHE_KEY}
    )
    result = run_cli("app", "--port", str(free_port()), env=env, timeout=60)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: invalid settings: MODEL_CACHE_DIR: ")
    assert f"mode {mode:04o}" in line and f"chmod go-w {folder}" in line
    folder.chmod(0o700)
    assert Settings(model_uri=ALIAS_URI, model_cache_dir=folder).model_cache_dir == folder
