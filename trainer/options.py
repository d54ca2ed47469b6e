"""Option types of the command line: each turns one value into a typed one.

A bad value is an argparse usage error (exit 2): one out of range says what it must be; one that
is not a number at all is an "invalid <type> value", named by the type's `__name__`.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text}")
    return value


def fraction(text: str) -> float:
    value = float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1 (exclusive), got {text}")
    return value


def gamma(text: str) -> str | float:
    if text in ("scale", "auto"):
        return text
    try:
        return positive_float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be scale, auto or a positive number, got {text}"
        ) from None


def iso_time(text: str) -> datetime:
    """An ISO 8601 time; without a zone, UTC."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be an ISO 8601 time such as 2025-01-31T08:00:00Z, got {text}"
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


positive_int.__name__ = "positive integer"
positive_float.__name__ = "positive number"
non_negative_float.__name__ = "number"
fraction.__name__ = "fraction"
