"""Benchmark: plan a sync over a 1000-commit synthetic zoo history whose net change
touches 1000 files (target: < 1 s end to end). Not a test: prints figures.

    python bench/plan_history.py [--commits 1000] [--real-metadata DIR]

The zoo starts as one folder per model of this checkout's own index
(container-info/model-to-docker.json), or, with --real-metadata DIR, as a copy of a
kipoi/models metadata tree (model.yaml files and the like, e.g. a test-fixture copy); then
1000 synthetic model folders spread over its groups, one commit per changed file, written
with `git fast-import` so the set-up takes seconds. Nothing outside this checkout is read
unless --real-metadata names it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import kipoi_containers  # noqa: E402
from tests.zoo_repo import ZooRepo  # noqa: E402


def zoo_from_index(path: Path) -> ZooRepo:
    """A zoo with a model.yaml for every model of this checkout's index: the same groups
    and nesting as the real zoo, no file from outside the checkout."""
    models = json.loads((REPO / "container-info" / "model-to-docker.json").read_text())
    for model in models:
        folder = path / model
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "model.yaml").write_text(f"type: custom\nname: {model}\n")
    (path / "README.md").write_text("# Kipoi models\n")
    (path / "shared" / "containers").mkdir(parents=True)
    (path / "shared" / "containers" / "README.md").write_text("index files live here\n")
    return first_commit(path, "zoo from the index")


def first_commit(path: Path, message: str) -> ZooRepo:
    zoo = ZooRepo(path)
    zoo.git("init", "-q", "-b", "master")
    zoo.commit_all(message)
    return zoo


def zoo_from_metadata(path: Path, metadata: Path) -> ZooRepo:
    """A zoo whose first commit is a copy of a kipoi/models metadata tree."""
    if not metadata.is_dir():
        raise SystemExit(f"error: --real-metadata {metadata}: not a directory")
    shutil.copytree(metadata, path)
    return first_commit(path, "zoo from the metadata")


def make_zoo(path: Path, metadata: Path | None) -> tuple[ZooRepo, str]:
    if metadata is not None:
        return zoo_from_metadata(path, metadata), f"the kipoi/models metadata in {metadata}"
    return zoo_from_index(path), "a zoo made from container-info/model-to-docker.json"


def build_history(zoo: ZooRepo, commits: int) -> tuple[str, str]:
    base = zoo.head()
    groups = sorted(
        p.name
        for p in zoo.path.iterdir()
        if p.is_dir() and not p.name.startswith(".") and p.name not in ("tests", "shared")
    )
    lines = []
    mark = 0
    for i in range(commits):
        group = groups[i % len(groups)]
        path = f"{group}/synthetic_{i:04d}/model.yaml"
        data = f"type: custom\nindex: {i}\n".encode()
        mark += 1
        lines.append(b"commit refs/heads/master\n")
        lines.append(f"mark :{mark}\n".encode())
        lines.append(f"committer Bench <b@example.invalid> {1700000000 + i} +0000\n".encode())
        msg = f"synthetic change {i}\n".encode()
        lines.append(f"data {len(msg)}\n".encode() + msg)
        if i == 0:
            lines.append(f"from {base}\n".encode())
        lines.append(f"M 100644 inline {path}\n".encode())
        lines.append(f"data {len(data)}\n".encode() + data + b"\n")
    subprocess.run(["git", "-C", str(zoo.path), "fast-import", "--quiet"], input=b"".join(lines), check=True)
    head = zoo.git("rev-parse", "refs/heads/master")
    return base, head


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--commits", type=int, default=1000)
    parser.add_argument(
        "--real-metadata", type=Path, metavar="DIR", help="start from this kipoi/models metadata tree"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        zoo, origin = make_zoo(Path(tmp) / "models", args.real_metadata)
        print(f"zoo: {origin}")
        base, head = build_history(zoo, args.commits)
        setup = time.perf_counter() - t0
        changed = int(zoo.git("rev-list", "--count", f"{base}..{head}"))
        files = len(zoo.git("diff", "--name-only", base, head).splitlines())
        runs = []
        for _ in range(5):
            t = time.perf_counter()
            plan = kipoi_containers.plan(
                zoo=str(zoo.path), from_commit=base, to=head, container_info=REPO / "container-info"
            )
            runs.append(time.perf_counter() - t)
        best, worst = min(runs), max(runs)
        print(f"history: {changed} commits, {files} files changed (set-up {setup:.1f} s)")
        print(f"plan: {len(plan.actions)} actions; best {best * 1000:.0f} ms, worst {worst * 1000:.0f} ms over 5 runs")
        print(f"target < 1000 ms: ratio worst/target = {worst / 1.0:.2f} ({'met' if worst < 1.0 else 'MISSED'})")


if __name__ == "__main__":
    main()
