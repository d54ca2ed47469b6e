"""A Dockerfile as data: its stages, each with its base and instructions.

Shared by the static checks (tests/stack/test_dockerfiles.py) and by tests.stack.images, which
names the base images a Docker engine needs before `docker compose up --build`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Stage:
    name: str | None
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def user(self, stages: dict[str, Stage]) -> str:
        """The USER in effect at the end of this stage (inherited from a parent stage)."""
        users = [arg for op, arg in self.instructions if op == "USER"]
        if users:
            return users[-1]
        return stages[self.base].user(stages) if self.base in stages else "root"

    def runs(self) -> list[str]:
        return [arg for op, arg in self.instructions if op == "RUN"]


def parse(path: Path) -> list[Stage]:
    """The stages of a Dockerfile: (instruction, arguments), continuation lines joined."""
    text = re.sub(r"\\\n", " ", path.read_text())
    stages: list[Stage] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        op, _, arg = line.partition(" ")
        op, arg = op.upper(), " ".join(arg.split())
        if op == "FROM":
            image, _, alias = arg.partition(" AS ")
            alias = alias or arg.partition(" as ")[2]
            stages.append(Stage(alias.strip() or None, image.split()[0]))
        elif stages:
            stages[-1].instructions.append((op, arg))
    return stages


def external_bases(path: Path) -> list[str]:
    """The images a Dockerfile starts from (FROM lines that name no earlier stage), in order."""
    bases: list[str] = []
    names: set[str] = set()
    for stage in parse(path):
        if stage.base not in names and stage.base not in bases:
            bases.append(stage.base)
        if stage.name:
            names.add(stage.name)
    return bases
