"""The service's own serving file of a cached model: what it needs to serve without MLflow.

Beside MLflow's files, a cache entry holds `serving.pkl`, written by the service after a load
from the registry: the fitted estimator (pickled by the service), the signature's inputs, the
column order it was fitted in, what /model-info shows of the model, its metadata, the predict
path that was verified against mlflow.pyfunc at that load, and that path's answers on the input
example's rows (which equalled mlflow.pyfunc's). A start from the cache reads it, importing
scikit-learn but neither MLflow nor skops, and serves it only when it was made by the same
Python, scikit-learn and numpy and the rebuilt predict path gives the same answers on the same
rows; else the entry's MLflow files are opened as a registry load opens them.

The file is a pickle, so it is read only as the cache vouches for it: `read` takes the
SHA-256 the entry's signed manifest gives it (`app.model.cache`) and unpickles the bytes it read
only when they have that digest. A file nobody signed is never unpickled.
"""

from __future__ import annotations

import hashlib
import logging
import pickle
import platform
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from app.model.fastpath import compile_predict
from app.model.output import rows

logger = logging.getLogger(__name__)

FORMAT = 1
FAST_PATHS = ("lean", "estimator")
"""The predict paths a snapshot can serve on its own (the others need mlflow.pyfunc)."""


def environment() -> dict[str, str]:
    """What must be the same to unpickle an estimator and get the same answers."""
    return {
        "python": platform.python_version(),
        "scikit_learn": metadata.version("scikit-learn"),
        "numpy": metadata.version("numpy"),
    }


@dataclass(frozen=True)
class Snapshot:
    """A model, as the service serves it: estimator, input contract, description."""

    estimator: Any
    inputs: list[dict[str, Any]]
    """The signature's inputs, as MLflow's `Schema.to_dict()` gives them."""
    fitted_order: list[str] | None
    path: str
    """The predict path verified at load: "lean" or "estimator" (see app/model/fastpath.py)."""
    rows: list[list[float]]
    """The input example's rows, in the fitted column order."""
    answers: list[Any]
    """The predictions on `rows` (equal to mlflow.pyfunc's when the path was verified)."""
    info: dict[str, Any]
    """What /model-info shows of the model (flavor, signature, example, trained with...)."""
    metadata: dict[str, Any]
    """The MLmodel file's `metadata`."""

    def dumps(self) -> bytes:
        """The serving file's bytes: the estimator pickled apart, so that what it needs
        (scikit-learn) is imported only once the environment is known to be the same."""
        estimator = pickle.dumps(self.estimator, protocol=5)
        fields = {k: v for k, v in vars(self).items() if k != "estimator"}
        record = {"format": FORMAT, "environment": environment(), "estimator": estimator}
        return pickle.dumps({**record, **fields}, protocol=5)

    def predict_path(self) -> Callable[[np.ndarray], Any] | None:
        """The verified predict function, rebuilt; None unless it answers `rows` as before."""
        fast = compile_predict(self.estimator) if self.path == "lean" else None
        if self.path == "estimator":
            fast = self.estimator.predict
        if fast is None or not self.rows:
            return None
        try:
            answers = rows(fast(np.asarray(self.rows, dtype=np.float64)))
        except Exception as exc:
            logger.warning("the cached predict path fails (%s)", type(exc).__name__)
            return None
        return fast if answers == self.answers else None


class Mismatch(ValueError):
    """A snapshot this process cannot serve as is (another format or environment)."""


def loads(data: bytes) -> Snapshot:
    """A snapshot from its bytes (`Snapshot.dumps`), made by this same environment; else
    Mismatch says what differs."""
    record = pickle.loads(data)  # plain data: imports nothing
    if record.get("format") != FORMAT:
        raise Mismatch("has another format")
    if record["environment"] != environment():
        raise Mismatch(f"was made with {record['environment']}, this process runs {environment()}")
    fields = {k: record[k] for k in Snapshot.__dataclass_fields__ if k != "estimator"}
    return Snapshot(estimator=pickle.loads(record["estimator"]), **fields)


def read(path: Path, sha256: str) -> Snapshot | None:
    """The snapshot in `path`, if its bytes have the digest `sha256` (the signed manifest's);
    None (logged) when they do not or this process cannot serve it as is."""
    try:
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() != sha256:
            logger.warning("cache: %s changed since it was verified: not read", path)
            return None
        return loads(data)
    except Mismatch as exc:
        logger.info("cache: %s %s: MLflow's files are opened", path, exc)
        return None
    except Exception as exc:  # an unreadable snapshot: MLflow's files still serve
        logger.warning("cache: %s is unreadable (%s): MLflow's files are opened", path, exc)
        return None
