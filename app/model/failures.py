"""Why a model could not be loaded, in words: the one place load, reload and readiness
failures are turned into a short message.

A failure deep in MLflow, requests, urllib3 or botocore arrives as a chain of exceptions whose
text is long and nested (`HTTPConnectionPool(host=...): Max retries exceeded ... (Caused by
NameResolutionError("HTTPConnectio...`). `explain()` walks the chain and says which server
failed (the tracking server, the artifact store), at which address, and the cause (name not
resolved, connection refused, timed out, access denied, not found), or else MLflow's own
reason, whole, on one line.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Iterator
from urllib.parse import urlsplit

MAX_MESSAGE = 400
_PERMANENT_CODES = {"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "PERMISSION_DENIED"}
_CONNECTION = re.compile(r"HTTPS?Connection\(host='(?P<host>[^']*)', port=(?P<port>\d+)\)")
_CONNECTION_ERRORS = {"NewConnectionError", "EndpointConnectionError", "ProtocolError"}
_NO_SCHEME = "Could not find a registered artifact repository"
_ENDPOINT = re.compile(r'endpoint URL: "(?P<url>[a-z]+://[^/"]+)')


class LoadError(Exception):
    """Loading failed. `permanent` ones (no such model, unsupported signature) are not retried;
    `unreachable` ones (a server could not be reached at all) may be served from the cache."""

    def __init__(self, message: str, *, permanent: bool = False, unreachable: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.unreachable = unreachable


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        following = current.__cause__ or current.__context__
        reason = getattr(current, "reason", None)  # urllib3's MaxRetryError
        if following is None and isinstance(reason, BaseException):
            following = reason
        if following is None and current.args and isinstance(current.args[0], BaseException):
            following = current.args[0]  # requests' ConnectionError wraps urllib3's
        current = following


def _cause(errors: list[BaseException]) -> str | None:
    names = {type(e).__name__ for e in errors}
    if "NameResolutionError" in names or any(isinstance(e, socket.gaierror) for e in errors):
        return "name not resolved"
    if any(isinstance(e, ConnectionRefusedError) for e in errors):
        return "connection refused"
    if any(isinstance(e, TimeoutError) or "Timeout" in type(e).__name__ for e in errors):
        return "timed out"
    for e in errors:
        status = _http_status(e)
        if status in (401, 403):
            return f"access denied ({status})"
        if status == 404:
            return "not found (404)"
    if names & _CONNECTION_ERRORS or any(isinstance(e, ConnectionError) for e in errors):
        return "connection failed"
    return None


def _http_status(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):  # botocore's ClientError
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return int(status) if status else None
    status = getattr(response, "status_code", None)
    return int(status) if isinstance(status, int) else None


def _address(errors: list[BaseException]) -> str | None:
    for e in errors:
        kwargs = getattr(e, "kwargs", None)
        if isinstance(kwargs, dict) and kwargs.get("endpoint_url"):
            url = urlsplit(str(kwargs["endpoint_url"]))
            return f"{url.scheme}://{url.netloc}"
    for e in errors:
        text = str(e)
        if m := _ENDPOINT.search(text):
            return m["url"]
        if m := _CONNECTION.search(text):
            return f"{m['host']}:{m['port']}"
    return None


def _server(errors: list[BaseException], address: str | None, tracking_uri: str | None) -> str:
    if any(type(e).__module__.startswith("botocore") for e in errors):
        return "artifact store"
    netloc = address.split("://", 1)[-1] if address else ""
    if tracking_uri and netloc and urlsplit(tracking_uri).netloc == netloc:
        return "tracking server"
    s3 = os.environ.get("MLFLOW_S3_ENDPOINT_URL")
    if s3 and netloc and urlsplit(s3).netloc == netloc:
        return "artifact store"
    return "server"


def _where(server: str, address: str | None, tracking_uri: str | None) -> str:
    if server == "tracking server" and tracking_uri:
        url = urlsplit(tracking_uri)
        address = f"{url.scheme}://{url.netloc}"
    return f"{server} {address}" if address else server


def one_line(text: str) -> str:
    """`text` on one line, whole words only, at most MAX_MESSAGE characters."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#####")]
    flat = ""
    for line in lines:
        flat += (" " if flat.endswith(":") else "; ") + line if flat else line
    if len(flat) <= MAX_MESSAGE:
        return flat
    return flat[: MAX_MESSAGE - 1].rsplit(" ", 1)[0] + "…"


def explain(exc: BaseException, *, tracking_uri: str | None = None) -> LoadError:
    """`exc` as a LoadError with a short message (`exc` itself, if it is one)."""
    if isinstance(exc, LoadError):
        return exc
    errors = list(_chain(exc))
    cause = _cause(errors)
    if cause is not None and not cause.startswith(("access", "not found")):
        address = _address(errors)
        server = _server(errors, address, tracking_uri)
        return LoadError(f"{_where(server, address, tracking_uri)}: {cause}", unreachable=True)
    from mlflow.exceptions import MlflowException

    for e in errors:
        if isinstance(e, MlflowException):
            permanent = e.error_code in _PERMANENT_CODES or e.message.startswith(_NO_SCHEME)
            return LoadError(one_line(e.message), permanent=permanent)
    if cause is not None:
        address = _address(errors)
        server = _server(errors, address, tracking_uri)
        return LoadError(f"{_where(server, address, tracking_uri)}: {cause}", permanent=True)
    text = one_line(str(exc))
    return LoadError(f"{type(exc).__name__}: {text}" if text else type(exc).__name__)
