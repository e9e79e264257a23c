"""The local stack the project ships for a real sync without credentials or Internet: a demo
zoo of tiny real Kipoi model groups as a local git repository, an empty index, and the
commands that start a registry (``scripts/registry.sh``) and the Zenodo emulator
(``tests/emulators/zenodo.py``). Used by ``make run-local`` (``scripts/demo.py``) and by the
end-to-end sync tests. Everything comes from this repository (``tests/data``): nothing from
``../shared``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ZOO_DATA = REPO / "tests" / "data" / "zoo"
#: Offline Dockerfile templates: the locally built base image and an environment step that
#: needs no conda channel (real ``kipoi env create`` needs the Internet).
DEMO_TEMPLATES = REPO / "tests" / "data" / "dockerfiles"
#: The groups of the demo zoo (tests/data/zoo without the deliberately broken one).
DEMO_GROUPS = ("TinyLinear", "TinyMulti", "TinySub")
INDEX_FILES = ("model-to-docker.json", "docker-to-model.json", "model-to-singularity.json")

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Demo Zoo",
    "GIT_AUTHOR_EMAIL": "demo-zoo@example.invalid",
    "GIT_COMMITTER_NAME": "Demo Zoo",
    "GIT_COMMITTER_EMAIL": "demo-zoo@example.invalid",
    "GIT_CONFIG_NOSYSTEM": "1",
}


class DemoZoo:
    """A git work tree holding a zoo; every mutator commits and returns the new head."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def git(self, *args: str) -> str:
        out = subprocess.run(
            ["git", "-C", str(self.path), *args],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, **GIT_ENV},
        )
        return out.stdout.strip()

    def head(self) -> str:
        return self.git("rev-parse", "HEAD")

    def commit(self, message: str) -> str:
        self.git("add", "-A")
        self.git("commit", "-q", "--allow-empty", "-m", message)
        return self.head()

    def add_group(self, name: str, source: str | None = None) -> None:
        """Copy ``tests/data/zoo/<source or name>`` in as group ``name`` (not committed)."""
        dest = self.path / name
        shutil.copytree(
            ZOO_DATA / (source or name), dest, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "downloaded")
        )
        for p in [dest, *dest.rglob("*")]:
            p.chmod(0o755 if p.is_dir() else 0o644)

    def touch(self, path: str, text: str = "\n# touched\n") -> None:
        """Append ``text`` to a file of the zoo (not committed)."""
        with open(self.path / path, "a") as f:
            f.write(text)


def make_demo_zoo(path: Path, groups: Iterable[str] = DEMO_GROUPS) -> tuple[DemoZoo, str, str]:
    """A zoo repository at ``path``: a first commit with only a README (what the empty demo
    index reflects), then one adding ``groups``. Returns ``(zoo, base, head)``."""
    path.mkdir(parents=True)
    path.chmod(0o755)
    zoo = DemoZoo(path)
    zoo.git("init", "-q", "-b", "master")
    (path / "README.md").write_text("# A demo Kipoi model zoo\n")
    (path / "shared" / "containers").mkdir(parents=True)
    (path / "shared" / "containers" / "README.md").write_text("The container index files live here.\n")
    base = zoo.commit("an empty zoo")
    for group in groups:
        zoo.add_group(group)
    head = zoo.commit(f"add {', '.join(groups)}")
    return zoo, base, head


def make_empty_index(directory: Path, hash_file: Path, commit: str) -> None:
    """An index with no entries that reflects zoo commit ``commit``."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in INDEX_FILES:
        (directory / name).write_text("{}")
    hash_file.write_text(commit + "\n")


def read_index(directory: Path) -> dict[str, dict]:
    return {name: json.loads((directory / name).read_text()) for name in INDEX_FILES}
