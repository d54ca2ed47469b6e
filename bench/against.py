"""`bench/run.py --against REV`: the API of another commit beside this one's, in the same run.

"No slower than before" is a claim about two code paths on the same machine at the same
time: figures from an earlier run on a machine whose load has changed since do not support
it. With `--against REV`, bench/run.py checks REV out into a temporary git worktree, starts a
second API, "api@<short sha>", from that worktree's code (first on PYTHONPATH; the same
virtualenv, so REV must run with this checkout's dependencies), drives it in every case right
after "api", and prints the ratio of the two. The worktree is removed at the end.

Self-contained (bench/run.py imports it; it imports nothing from bench/run.py).
"""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PREFIX = "api@"
ROOT = Path(__file__).resolve().parent.parent


class AgainstError(Exception):
    pass


@dataclass(frozen=True)
class Checkout:
    server: str
    """The server's name in the bench's tables: api@<short sha>."""
    folder: Path
    commit: str

    def env(self) -> dict[str, str]:
        """What the API of this checkout runs with, beside the bench's environment."""
        return {"PYTHONPATH": str(self.folder)}


def _git(*args: str) -> str:
    proc = subprocess.run(
        ["git", "-C", str(ROOT), *args],
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    if proc.returncode != 0:
        raise AgainstError(f"git {' '.join(args)}: {proc.stderr.strip() or proc.returncode}")
    return proc.stdout.strip()


@contextlib.contextmanager
def checkout(rev: str) -> Iterator[Checkout]:
    """REV's tree in a temporary worktree, removed afterwards."""
    commit = _git("rev-parse", "--verify", f"{rev}^{{commit}}")
    short = _git("rev-parse", "--short", commit)
    folder = Path(tempfile.mkdtemp(prefix=f"bench-against-{short}-"))
    _git("worktree", "add", "--detach", str(folder), commit)
    try:
        if not (folder / "app" / "__main__.py").is_file():
            raise AgainstError(f"{rev} ({short}) has no app/__main__.py to serve")
        yield Checkout(f"{PREFIX}{short}", folder, commit)
    finally:
        with contextlib.suppress(AgainstError):
            _git("worktree", "remove", "--force", str(folder))


def is_against(server: str) -> bool:
    return server.startswith(PREFIX)
