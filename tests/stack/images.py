"""The images `docker compose up --build` needs from a registry, read from the project's files.

    python -m tests.stack.images      # one per line

They are the images of the compose files' services that are not built here (postgres, MinIO,
..., and the fleet overlay's load balancer) and the bases of the Dockerfiles its services
build. .ci/run hands them to
../shared/docker-offline/setup, which provides them on a machine with no registry; the list is
never kept by hand.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from tests.stack import compose
from tests.stack.dockerfile import external_bases


def needed(*paths: Path) -> list[str]:
    """The images to pull (or stand in for), each once, in the compose files' order (default:
    docker-compose.yaml, then the fleet overlay)."""
    images: list[str] = []
    built: set[str] = set()
    for path in paths or (compose.COMPOSE_FILE, compose.FLEET_FILE):
        services: dict[str, Any] = compose.load(path)["services"]
        for service in services.values():
            build = service.get("build")
            if build is None:
                # An overlay's service may only change settings of the base file's.
                wanted = [service["image"]] if "image" in service else []
            else:
                context = path.parent / build.get("context", ".")
                wanted = external_bases(context / build.get("dockerfile", "Dockerfile"))
            images += [image for image in wanted if image not in images]
        built |= {s["image"] for s in services.values() if "build" in s}
    # Images the project builds itself are never pulled.
    return [image for image in images if image not in built]


def main() -> None:
    images = needed()
    sys.stdout.write("".join(f"{image}\n" for image in images))


if __name__ == "__main__":
    main()
