"""A JSON request body parsed: orjson first, the standard library for NaN and Infinity (which the
schema then refuses by name); anything that is not UTF-8 JSON is a 422 that says so."""

from __future__ import annotations

import json
from typing import Any

import orjson

from app.errors import InvalidInput


def parse_json(body: bytes) -> Any:
    """The parsed body; NaN and Infinity parse (to be refused by name later), anything else 422."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    try:
        # Accepts NaN / Infinity, which orjson rejects. UTF-8 only, as JSON on the wire must
        # be (RFC 8259): json.loads would also take UTF-16/32, which the boolean check
        # below could not see into.
        return json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        message = "body is not UTF-8: send JSON encoded as UTF-8"
        raise InvalidInput(message, [{"loc": [], "msg": message}]) from None
    except (ValueError, RecursionError):
        raise InvalidInput(
            "body is not valid JSON", [{"loc": [], "msg": "body is not valid JSON"}]
        ) from None
