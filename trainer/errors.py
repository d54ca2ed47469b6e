"""The trainer's domain exception and the one place secrets are scrubbed from messages."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

# scheme://user:password@host -> scheme://user:***@host, wherever it appears in a text.
_URL_CREDENTIALS = re.compile(r"(?P<head>[A-Za-z][\w+.-]*://[^\s:/@]*:)[^\s@]+@")


class TrainerError(Exception):
    """An expected failure (bad input, unreachable service): reported as one line, exit 1."""


def redact(url: str) -> str:
    """`url` with its password, if any, replaced by ***; any other text is returned unchanged."""
    parts = urlsplit(url)
    if not parts.scheme or parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def scrub(text: str) -> str:
    """`text` with the password of every URL inside it replaced by ***."""
    return _URL_CREDENTIALS.sub(r"\g<head>***@", text)


def first_line(error: BaseException | str) -> str:
    """The first line of an exception's message (or its type), scrubbed of credentials."""
    text = scrub(str(error).strip())
    if not text:
        return type(error).__name__ if isinstance(error, BaseException) else "unknown error"
    return text.splitlines()[0]
