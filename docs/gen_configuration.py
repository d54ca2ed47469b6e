"""Write docs/configuration.md from the settings' own docstrings (app/settings.py), the one
source of what each setting means: `python docs/gen_configuration.py` writes the page,
`--check` exits 1 when the page differs from what it would write or a setting has no
docstring.

It reads whatever fields `Settings` has (pydantic's `use_attribute_docstrings=True` puts each
docstring in `model_fields[name].description`): the variable is the field's name in capitals
(after the settings' `env_prefix`, if any), with its type, constraints and default. A former
name still read is shown as "formerly X", from a `validation_alias=AliasChoices(...)` or the
module's `RENAMED` table ({former name: current name})."""

from __future__ import annotations

import argparse
import enum
import re
import sys
import types
import typing
from pathlib import Path
from typing import Any

import annotated_types
from pydantic import AliasChoices, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app import settings as source  # noqa: E402

Settings = source.Settings
PAGE = ROOT / "docs" / "configuration.md"
HEAD = """# Configuration

The API (`python -m app`, the images, the manifests) reads its settings from the environment
once, at start; a variable's name is the setting's, in capitals. `python -m app --host H
--port P --workers N` overrides `HOST`, `PORT` and `WORKERS`. MLflow and boto3 read their own
`MLFLOW_*` and `AWS_*` variables (the tracking server, the S3 endpoint and keys), passed
through untouched. An invalid value stops the start with one `error: invalid settings: …`
line naming the setting and what is wrong (exit 2). A setting renamed is still read under
its former name, with a warning naming the new one; the new name wins when both are set.

This page is generated from the settings' docstrings in `app/settings.py`
(`python docs/gen_configuration.py`); `tests/docs/` fails when it is stale or a setting has
no docstring.

| variable | type | default | meaning |
|---|---|---|---|
"""

_NAMES = {SecretStr: "secret", Path: "path", type(None): "none"}
_BOUNDS = [
    (annotated_types.Ge, "ge", "≥"),
    (annotated_types.Gt, "gt", ">"),
    (annotated_types.Le, "le", "≤"),
    (annotated_types.Lt, "lt", "<"),
    (annotated_types.MinLen, "min_length", "length ≥"),
    (annotated_types.MaxLen, "max_length", "length ≤"),
]


def _type(annotation: Any) -> str:
    """A type as a reader says it: `int`, `str, optional`, `secret`, or a Literal's values."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return _type(args[0])
    if origin is typing.Literal:
        return " | ".join(f"`{a.value if isinstance(a, enum.Enum) else a}`" for a in args)
    if origin in (typing.Union, types.UnionType):
        kinds = [_type(a) for a in args if a is not type(None)]
        optional = type(None) in args
        return " or ".join(kinds) + (", optional" if optional else "")
    if origin is not None:
        inner = ", ".join(_type(a) for a in args)
        return f"{getattr(origin, '__name__', str(origin))}[{inner}]" if args else str(origin)
    if annotation in _NAMES:
        return _NAMES[annotation]
    return getattr(annotation, "__name__", str(annotation))


def _bounds(field: FieldInfo) -> str:
    """The field's numeric and length constraints, e.g. `≥ 1, ≤ 64`."""
    found = []
    for item in field.metadata:
        for kind, attribute, sign in _BOUNDS:
            if isinstance(item, kind):
                found.append(f"{sign} {getattr(item, attribute)}")
    return ", ".join(found)


def _default(value: Any) -> str:
    if value is PydanticUndefined:
        return "required"
    if value is None:
        return "unset"
    if isinstance(value, SecretStr):
        return "set"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, enum.Enum):
        value = value.value
    return f"`{value}`"


def _field_default(field: FieldInfo) -> Any:
    if field.default_factory is None:
        return field.default
    try:
        return field.get_default(call_default_factory=True, validated_data={})
    except TypeError:  # pydantic before 2.10: no validated_data
        return field.get_default(call_default_factory=True)


def former_names(name: str, field: FieldInfo) -> list[str]:
    """The names a setting was read under before, and still is."""
    names = [old for old, new in getattr(source, "RENAMED", {}).items() if new == name]
    for alias in (field.alias, field.validation_alias):
        choices = alias.choices if isinstance(alias, AliasChoices) else [alias]
        names += [c for c in choices if isinstance(c, str) and c.lower() != name.lower()]
    return list(dict.fromkeys(n.lower() for n in names))


def _escape(text: str) -> str:
    """Markdown for a table cell: the docstring's `code` kept as is, and outside it the
    characters Markdown would read as markup (`*`, `_`, `<`, `|`, ...) shown as themselves."""
    parts = re.split(r"(`[^`]*`)", " ".join(text.split()))
    for i in range(0, len(parts), 2):  # the text between code spans
        part = re.sub(r"([\\*\[\]|])", r"\\\1", parts[i])
        part = re.sub(r"(?<!\w)_|_(?!\w)", r"\_", part)  # inside a word, _ is no markup
        parts[i] = part.replace("<", "&lt;").replace(">", "&gt;")
    return "".join(parts)


def undocumented() -> list[str]:
    """The settings without a docstring."""
    return [name for name, field in Settings.model_fields.items() if not field.description]


def row(name: str, field: FieldInfo) -> str:
    prefix = str(Settings.model_config.get("env_prefix") or "")
    variable = f"`{(prefix + name).upper()}`"
    former = former_names(name, field)  # read as given: no prefix
    if former:
        variable += " (formerly " + ", ".join(f"`{n.upper()}`" for n in former) + ")"
    kind = _type(field.annotation)
    optional = kind.endswith(", optional")
    kind = kind.removesuffix(", optional").replace("|", "\\|")
    if bounds := _bounds(field):
        kind += f" ({bounds})"
    kind += ", optional" if optional else ""
    meaning = _escape(field.description or "")
    return f"| {variable} | {kind} | {_default(_field_default(field))} | {meaning} |"


def page() -> str:
    rows = [row(name, field) for name, field in Settings.model_fields.items()]
    return HEAD + "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write docs/configuration.md from the settings.")
    parser.add_argument("--check", action="store_true", help="fail when the page is stale")
    args = parser.parse_args(argv)
    missing = undocumented()
    if missing:
        print(f"settings without a docstring: {', '.join(missing)}", file=sys.stderr)  # noqa: T201
        return 1
    if args.check:
        if not PAGE.exists() or PAGE.read_text() != page():
            print(  # noqa: T201
                f"{PAGE.relative_to(ROOT)} is stale: run python docs/gen_configuration.py",
                file=sys.stderr,
            )
            return 1
        return 0
    PAGE.write_text(page())
    return 0


if __name__ == "__main__":
    sys.exit(main())
