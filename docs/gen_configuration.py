"""Write docs/configuration.md from the settings' own docstrings (app/settings.py), the one
source of what each setting means: `python docs/gen_configuration.py` writes the page,
`--check` exits 1 when the page differs from what it would write or a setting has no
docstring."""

from __future__ import annotations

import argparse
import sys
import typing
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.settings import RENAMED, Settings  # noqa: E402

PAGE = ROOT / "docs" / "configuration.md"
HEAD = """# Configuration

The API (`python -m app`, the images, the manifests) reads its settings from the environment
once, at start; a variable's name is the setting's, in capitals. MLflow and boto3 read their
own `MLFLOW_*` and `AWS_*` variables (the tracking server, the S3 endpoint and keys), passed
through untouched. An invalid value stops the start with one line naming the setting and
what is wrong. A setting renamed is still read under its former name, with a warning
naming the new one.

This page is generated from the settings' docstrings in `app/settings.py`
(`python docs/gen_configuration.py`); a test fails when it is stale.

| variable | type | default | meaning |
|---|---|---|---|
"""


def _type(annotation: Any) -> str:
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) is typing.Literal:
        return " \\| ".join(f"`{a}`" for a in args)
    names = [getattr(a, "__name__", str(a)) for a in args] if args else [annotation.__name__]
    names = ["secret" if n == "SecretStr" else "path" if n == "Path" else n for n in names]
    optional = "NoneType" in names
    text = " or ".join(n for n in names if n != "NoneType")
    if len(args) > 1 and any(typing.get_origin(a) is typing.Literal for a in args):
        text = _type(next(a for a in args if typing.get_origin(a) is typing.Literal))
    return text + (", optional" if optional else "")


def _default(value: Any) -> str:
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    return f"`{value}`"


def undocumented() -> list[str]:
    """The settings without a docstring."""
    return [name for name, field in Settings.model_fields.items() if not field.description]


def page() -> str:
    former = {new: old for old, new in RENAMED.items()}
    rows = []
    for name, field in Settings.model_fields.items():
        meaning = " ".join((field.description or "").split()).replace("|", "\\|")
        meaning = meaning.replace("<", "&lt;").replace(">", "&gt;")
        variable = f"`{name.upper()}`"
        if name in former:
            variable += f" (formerly `{former[name].upper()}`)"
        annotation = field.annotation
        rows.append(f"| {variable} | {_type(annotation)} | {_default(field.default)} | {meaning} |")
    return HEAD + "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail when the page is stale")
    args = parser.parse_args(argv)
    missing = undocumented()
    if missing:
        print(f"settings without a docstring: {', '.join(missing)}", file=sys.stderr)  # noqa: T201
        return 1
    if args.check:
        if not PAGE.exists() or PAGE.read_text() != page():
            print(f"{PAGE.relative_to(ROOT)} is stale: run python docs/gen_configuration.py")  # noqa: T201
            return 1
        return 0
    PAGE.write_text(page())
    return 0


if __name__ == "__main__":
    sys.exit(main())
