"""The images `docker compose up --build` needs from a registry, read from the project's files.

    python -m tests.stack.images      # one per line

They are the images of the compose file's services that are not built here (postgres, MinIO,
...) and the bases of the Dockerfiles its services build. .ci/run hands them to
../shared/docker-offline/setup, which provides them on a machine with no registry; the list is
never kept by hand.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from tests.stack import compose
from tests.stack.dockerfile import external_bases


def needed(path: Path = compose.COMPOSE_FILE) -> list[str]:
    """The images to pull (or stand in for), each once, in the compose file's order."""
    images: list[str] = []
    services: dict[str, Any] = compose.load(path)["services"]
    for service in services.values():
        build = service.get("build")
        if build is None:
            wanted = [service["image"]]
        else:
            context = path.parent / build.get("context", ".")
            wanted = external_bases(context / build.get("dockerfile", "Dockerfile"))
        images += [image for image in wanted if image not in images]
    # Images the project builds itself are never pulled.
    built = {s["image"] for s in services.values() if "build" in s}
    return [image for image in images if image not in built]


def main() -> None:
    sys.stdout.write("".join(f"{image}\n" for image in needed()))


if __name__ == "__main__":
    main()
