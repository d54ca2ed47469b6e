"""Former names of settings: still read, from the environment or as keywords, each with a
warning naming the current one (app.settings reads them through `former` and `FormerNames`)."""

from __future__ import annotations

import logging
import os
from typing import Any

from pydantic.fields import FieldInfo
from pydantic_settings import PydanticBaseSettingsSource

logger = logging.getLogger("app.settings")  # the warnings are about settings

RENAMED = {"max_batch_rows": "max_request_rows", "batch_max_rows": "micro_batch_max_rows"}
"""Former names of settings, still read (from the environment or as keywords), each with a
warning naming the new one; the new name wins when both are given."""


_warned: set[str] = set()


def former(given: dict[str, Any]) -> dict[str, Any]:
    """The settings in `given` under their former names, as {current name: value}, each
    with a warning (once a process); one whose current name is given too is left out."""
    found: dict[str, Any] = {}
    for old, new in RENAMED.items():
        if old not in given:
            continue
        if old not in _warned:
            _warned.add(old)
            if new in given:
                logger.warning("%s is ignored: %s is set", old.upper(), new.upper())
            else:
                logger.warning("%s is now %s: rename it", old.upper(), new.upper())
        if new not in given:
            found[new] = given[old]
    return found


class FormerNames(PydanticBaseSettingsSource):
    """The environment's settings under their former names (RENAMED), below the current names."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # the whole lookup is in __call__

    def __call__(self) -> dict[str, Any]:
        return former({name.lower(): value for name, value in os.environ.items()})
