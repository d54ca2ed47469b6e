"""A local cache of the last good models, so the API can start without its registry.

After each load from the registry, the model's files are stored under MODEL_CACHE_DIR with
their identity and a manifest of every file's size and SHA-256: written into a temporary
folder, then renamed into place, so an entry is whole or absent. The last `keep` entries per
model URI are kept. At start, when the tracking server or artifact store cannot be reached,
the newest entry for the same MODEL_URI whose files all match their manifest is served.
Beside MLflow's files, an entry may hold the service's own serving file (`app.model.snapshot`),
checked the same way.

The manifest (entry.json) is signed: entry.sig holds its HMAC-SHA256 under MODEL_CACHE_KEY.
An entry is read only once its signature checks and every file matches the manifest, so a
file that anyone without the key put or changed there (a pickle that runs code when loaded,
a model whose files were swapped) is skipped, never opened. The serving file's bytes are
checked against the manifest as they are read, and only those bytes are unpickled.

    <MODEL_CACHE_DIR>/<sha256(uri)[:16]>/<saved-at>-<version>/entry.json
                                                              entry.sig
                                                              serving.pkl
                                                              model/...
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

ENTRY_FILE = "entry.json"
SIGNATURE_FILE = "entry.sig"
MODEL_DIR = "model"
SERVING_FILE = "serving.pkl"
_CHUNK = 1 << 20


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _manifest(folder: Path) -> dict[str, list[Any]]:
    return {
        str(p.relative_to(folder)): [p.stat().st_size, _digest(p)]
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _whole(path: Path, record: dict[str, Any], serving: Path | None) -> bool:
    """Whether the entry's files are all there, as its manifest says they were stored."""
    if serving is not None and [serving.stat().st_size, _digest(serving)] != record["serving"]:
        return False
    return _manifest(path / MODEL_DIR) == record["files"]


def sign(key: bytes, manifest: bytes) -> str:
    """The signature of an entry's manifest (entry.json's bytes)."""
    return hmac.new(key, manifest, hashlib.sha256).hexdigest()


def _signed(key: bytes, path: Path, manifest: bytes) -> bool:
    try:
        signature = (path / SIGNATURE_FILE).read_text().strip()
    except OSError:
        return False
    return hmac.compare_digest(signature, sign(key, manifest))


@dataclass(frozen=True)
class CacheEntry:
    """One cached model: its files and what was known of it when it was stored."""

    path: Path
    identity: dict[str, Any]
    info: dict[str, Any]
    saved_at: str
    serving: Path | None = None
    """The service's own serving file, when the entry has one."""
    serving_sha256: str | None = None
    """What the serving file's SHA-256 was when it was stored (signed with the manifest)."""

    @property
    def model_dir(self) -> Path:
        return self.path / MODEL_DIR


class ModelCache:
    """The cache folder of one process (several processes may share it: writes are renames),
    its entries signed with `key`."""

    def __init__(self, root: Path, key: bytes, keep: int = 2) -> None:
        self.root = root
        self.key = key
        self.keep = keep

    def _folder(self, uri: str) -> Path:
        return self.root / hashlib.sha256(uri.encode()).hexdigest()[:16]

    def save(
        self,
        uri: str,
        files: Path,
        identity: dict[str, Any],
        info: dict[str, Any],
        serving: bytes | None = None,
    ) -> Path:
        """Store a copy of `files` (and the `serving` file) as the newest entry for `uri`
        (blocking)."""
        folder = self._folder(uri)
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        folder.mkdir(mode=0o700, exist_ok=True)
        for entry in self.entries(uri):
            if entry.identity == identity and (entry.serving is not None or serving is None):
                return entry.path  # this very model is already stored
        saved_at = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        name = f"{saved_at}-{identity.get('version') or identity.get('model_id') or 'model'}"
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=folder))
        try:
            shutil.copytree(files, staging / MODEL_DIR)
            record: dict[str, Any] = {
                "uri": uri,
                "identity": identity,
                "info": info,
                "saved_at": saved_at,
                "files": _manifest(staging / MODEL_DIR),
            }
            if serving is not None:
                (staging / SERVING_FILE).write_bytes(serving)
                record["serving"] = [len(serving), hashlib.sha256(serving).hexdigest()]
            manifest = json.dumps(record, default=str).encode()
            (staging / ENTRY_FILE).write_bytes(manifest)
            (staging / SIGNATURE_FILE).write_text(sign(self.key, manifest) + "\n")
            os.replace(staging, folder / name)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        self._prune(uri, identity)
        logger.info("cached model %s as %s", identity.get("name"), folder / name)
        return folder / name

    def entries(self, uri: str, *, verify: bool = True) -> list[CacheEntry]:
        """Entries for `uri`, newest first; with `verify`, only those signed with this key
        whose files match their manifest."""
        folder = self._folder(uri)
        if not folder.is_dir():
            return []
        found = []
        for path in sorted(folder.iterdir(), reverse=True):
            if path.name.startswith(".") or not (path / ENTRY_FILE).is_file():
                continue
            try:
                manifest = (path / ENTRY_FILE).read_bytes()
                if verify and not _signed(self.key, path, manifest):
                    logger.warning(
                        "cache entry %s is not signed with MODEL_CACHE_KEY: skipped", path
                    )
                    continue
                record = json.loads(manifest)
                if record.get("uri") != uri:
                    continue
                serving = path / SERVING_FILE if "serving" in record else None
                if verify and not _whole(path, record, serving):
                    logger.warning("cache entry %s does not match its manifest: skipped", path)
                    continue
                digest = record["serving"][1] if serving is not None else None
                found.append(
                    CacheEntry(
                        path,
                        record["identity"],
                        record["info"],
                        record["saved_at"],
                        serving,
                        digest,
                    )  # fmt: skip
                )
            except (OSError, ValueError, KeyError):
                logger.warning("cache entry %s is unreadable: skipped", path)
        return found

    def holds(self, uri: str) -> bool:
        """Whether there is any entry for `uri` (unchecked: `latest` checks)."""
        return bool(self.entries(uri, verify=False))

    def latest(self, uri: str) -> CacheEntry | None:
        """The newest whole entry for `uri`, if any."""
        started = time.perf_counter()
        entries = self.entries(uri)
        if entries:
            logger.info(
                "cache: %s verified in %.3fs", entries[0].path, time.perf_counter() - started
            )
        return entries[0] if entries else None

    def _prune(self, uri: str, newest: dict[str, Any]) -> None:
        """Keep the last `keep` entries, and of the newest model only its newest copy (one
        stored before the service wrote serving files is replaced, not kept beside)."""
        folder = self._folder(uri)
        stored = sorted((p for p in folder.iterdir() if not p.name.startswith(".")), reverse=True)
        same = {e.path for e in self.entries(uri, verify=False)[1:] if e.identity == newest}
        kept = [p for p in stored if p not in same]
        for old in [p for p in stored if p in same] + kept[self.keep :]:
            shutil.rmtree(old, ignore_errors=True)
