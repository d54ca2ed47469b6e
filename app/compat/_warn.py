"""The one warning a compatibility module logs when it falls back."""

from __future__ import annotations

import logging
from importlib.metadata import PackageNotFoundError, version


def fallback(logger: logging.Logger, library: str, problem: str, cost: str) -> None:
    """Log that `library` lacks what the service relies on (`problem`), and what is slower."""
    try:
        installed = version(library)
    except PackageNotFoundError:
        installed = "(not installed)"
    logger.warning(
        "%s %s: %s; using its public behaviour instead (%s)", library, installed, problem, cost
    )
