"""Build model-zoo git repositories for tests from the real zoo metadata in
``shared/fixtures/kipoi-models-metadata`` (model.yaml, model-template.yaml, models.tsv,
dataloader.yaml of kipoi/models at 06bfe847), with a synthetic history. Needs git and the
project's shared/ (``$KIPOI_SHARED_DIR``, else ``../shared`` beside the checkout)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path

from .requirements import SETUP_HINT, SHARED_FIX, missing_commands, require, shared_path, shared_problem

METADATA = shared_path() / "fixtures" / "kipoi-models-metadata"

_ENV = {
    "GIT_AUTHOR_NAME": "Zoo Tester",
    "GIT_AUTHOR_EMAIL": "zoo@example.invalid",
    "GIT_COMMITTER_NAME": "Zoo Tester",
    "GIT_COMMITTER_EMAIL": "zoo@example.invalid",
    "GIT_AUTHOR_DATE": "2024-01-01T00:00:00Z",
    "GIT_COMMITTER_DATE": "2024-01-01T00:00:00Z",
    "GIT_CONFIG_NOSYSTEM": "1",
    "HOME": "/nonexistent",
}


class ZooRepo:
    """A git work tree holding a model zoo; every mutator commits."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def git(self, *args: str, input: bytes | None = None) -> str:
        env = {**os.environ, **_ENV}
        out = subprocess.run(
            ["git", "-C", str(self.path), *args], env=env, input=input, capture_output=True, check=True
        )
        return out.stdout.decode().strip()

    @classmethod
    def from_metadata(cls, path: Path, exclude: Iterable[str] = (), branch: str = "master") -> ZooRepo:
        """A repository whose first commit is the real zoo metadata (minus ``exclude`` groups)
        plus the top-level files a zoo has (README.md, tests/, shared/)."""
        require("the project's shared/fixtures", shared_problem("fixtures", "kipoi-models-metadata"), SHARED_FIX)
        require("git", missing_commands("git"), f"{SETUP_HINT}, i.e. apt-get install git")
        excluded = set(exclude)

        def ignore(d: str, names: list[str]) -> list[str]:
            return [n for n in names if Path(d) == METADATA and n in excluded]

        shutil.copytree(METADATA, path, ignore=ignore)
        for p in path.rglob("*"):
            p.chmod(0o755 if p.is_dir() else 0o644)
        path.chmod(0o755)
        (path / "README.md").write_text("# Kipoi models\n")
        (path / "tests").mkdir()
        (path / "tests" / "test_models.py").write_text("def test_nothing():\n    pass\n")
        (path / "shared" / "containers").mkdir(parents=True)
        (path / "shared" / "containers" / "README.md").write_text("index files live here\n")
        repo = cls(path)
        repo.git("init", "-q", "-b", branch)
        repo.commit_all("import kipoi/models metadata")
        return repo

    def commit_all(self, message: str) -> str:
        self.git("add", "-A")
        self.git("commit", "-q", "--allow-empty", "-m", message)
        return self.head()

    def head(self) -> str:
        return self.git("rev-parse", "HEAD")

    def write(self, rel: str, text: str, message: str | None = None) -> str:
        p = self.path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
        return self.commit_all(message or f"edit {rel}")

    def append(self, rel: str, text: str) -> str:
        p = self.path / rel
        return self.write(rel, p.read_text() + text)

    def remove(self, rel: str) -> str:
        self.git("rm", "-r", "-q", rel)
        return self.commit_all(f"remove {rel}")

    def copy_group_from_metadata(self, group: str) -> str:
        shutil.copytree(METADATA / group, self.path / group)
        for p in (self.path / group).rglob("*"):
            p.chmod(0o755 if p.is_dir() else 0o644)
        return self.commit_all(f"add {group}")

    def orphan_rewrite(self, message: str = "rewritten history") -> str:
        """A commit with the current tree plus one change but no common ancestor with
        HEAD (like the real zoo's rewritten history); returns its sha, HEAD unchanged."""
        tree = self.git("rev-parse", "HEAD^{tree}")
        return self.git("commit-tree", tree, "-m", message)

    def commit_tree_with_entry(self, name: str, parent: str) -> str:
        """A commit on top of ``parent`` whose root tree also holds a folder literally
        named ``name`` (e.g. ``..``) with a model.yaml; git's plumbing allows it."""
        blob = self.git("hash-object", "-w", "--stdin", input=b"type: fake\n")
        sub = self.git("mktree", input=f"100644 blob {blob}\tmodel.yaml\n".encode())
        entries = self.git("ls-tree", f"{parent}^{{tree}}")
        listing = entries + f"\n040000 tree {sub}\t{name}\n"
        tree = self.git("mktree", input=listing.encode())
        return self.git("commit-tree", tree, "-p", parent, "-m", f"add {name!r}")
