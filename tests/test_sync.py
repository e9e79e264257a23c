"""The sync end to end: ``python -m kipoi_containers.updateoradd`` against the real Docker
Engine, a real registry, the Zenodo and GitHub emulators, real ``kipoi test`` in images and
SIFs, and a demo zoo of tiny real models (``tests/demo_stack.py``).

The tests of this module build on each other in file order (one stack, one zoo history):
a full sync, a no-op sync, one changed group killed with SIGKILL at its first SIF upload
and resumed, a failing group among healthy ones; then a sync of a GitHub zoo.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.demo_stack import DEMO_TEMPLATES, DemoZoo, make_demo_zoo, make_empty_index, read_index
from tests.emulators.zenodo import ZenodoEmulator

from .docker_fixtures import Registry

TOKEN = "not-a-real-token-sync-zenodo"
GITHUB_TOKEN = "not-a-real-token-sync-github"
REPO_PREFIX = "kipoi/kipoi-docker"

# A full sync builds six images and converts three SIFs: give it room.
pytestmark = pytest.mark.timeout(1200)


@dataclass
class Stack:
    root: Path
    zoo: DemoZoo
    base: str
    head: str
    registry: Registry
    base_image: str
    zenodo: ZenodoEmulator
    container_info: Path
    hash_file: Path
    journal: Path
    history: dict[str, object] = field(default_factory=dict)
    # The shared registry's log also holds the pushes of earlier tests: count from here.
    log_start: int = 0

    @property
    def registry_repo(self) -> str:
        return f"{self.registry.host}/{REPO_PREFIX}"

    def args(self, zoo: str | None = None) -> list[str]:
        return [
            "--zoo",
            zoo or str(self.zoo.path),
            "--container-info",
            str(self.container_info),
            "--hash-file",
            str(self.hash_file),
            "--registry",
            self.registry_repo,
            "--base-image",
            self.base_image,
            "--templates",
            str(DEMO_TEMPLATES),
            "--zenodo-url",
            self.zenodo.url,
            "--journal",
            str(self.journal),
            "--concurrency",
            "2",
        ]

    def env(self, **extra: str) -> dict[str, str]:
        env = {**os.environ, **self.registry.env(), "ZENODO_ACCESS_TOKEN": TOKEN, "KIPOI_HTTP_TIMEOUT": "60"}
        env.pop("KIPOI_MODEL_REPO", None)
        env.update(extra)
        return {k: v for k, v in env.items() if v != ""}

    def sync(
        self, *extra: str, zoo: str | None = None, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "kipoi_containers.updateoradd", *self.args(zoo), *extra],
            cwd=self.root,
            env=env or self.env(),
            capture_output=True,
            text=True,
            timeout=1100,
        )

    def hash(self) -> str:
        return self.hash_file.read_text().strip()

    def manifest_pushes(self) -> dict[str, int]:
        """Successful manifest PUTs per tag, from the registry's access log."""
        counts: dict[str, int] = {}
        with (self.registry.dir / "registry.log").open("rb") as f:
            f.seek(self.log_start)
            log = f.read().decode(errors="replace")
        for tag in re.findall(r'"PUT /v2/' + REPO_PREFIX + r'/manifests/([^ "]+) HTTP/[0-9.]+" 201', log):
            counts[tag] = counts.get(tag, 0) + 1
        return counts

    def records(self) -> list[dict]:
        return [d for d in self.zenodo.depositions() if d.get("state") == "done" or d.get("submitted")]

    def drafts(self) -> list[dict]:
        return [d for d in self.zenodo.depositions() if not d.get("submitted")]


def _published_versions(stack: Stack, sif_name: str) -> list[dict]:
    return [
        d
        for d in stack.zenodo.depositions()
        if d.get("submitted") and any(f["filename"] == f"{sif_name}.sif" for f in d.get("files", []))
    ]


@pytest.fixture(scope="module")
def stack(base_image: str, registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("sync")
    root.chmod(0o755)
    zoo, base, head = make_demo_zoo(root / "zoo")
    container_info = root / "container-info"
    hash_file = root / "kipoi-model-repo-hash"
    make_empty_index(container_info, hash_file, base)
    emulator = ZenodoEmulator(TOKEN).start()
    try:
        log = registry.dir / "registry.log"
        log_start = log.stat().st_size if log.exists() else 0
        yield Stack(
            root, zoo, base, head, registry, base_image, emulator, container_info, hash_file, root / "journal",
            log_start=log_start,
        )
    finally:
        emulator.stop()
        tags = [f"{REPO_PREFIX}:{t}" for t in ("tinylinear", "tinymulti", "tinysub", "tinybroken")]
        tags += [t + "-slim" for t in tags]
        subprocess.run(["docker", "rmi", "-f", *tags], capture_output=True)


def test_a_sync_that_lacks_a_secret_says_which_before_doing_anything(stack: Stack) -> None:
    result = stack.sync(env=stack.env(ZENODO_ACCESS_TOKEN="", DOCKER_PASSWORD=""))
    assert result.returncode == 1, result.stderr
    assert "`DOCKER_PASSWORD`" in result.stderr and "`ZENODO_ACCESS_TOKEN`" in result.stderr, result.stderr
    assert "nothing was done" in result.stderr
    assert stack.manifest_pushes() == {}
    assert stack.zenodo.depositions() == []
    assert stack.hash() == stack.base
    assert not stack.journal.exists()


def test_a_full_sync_of_the_demo_zoo(stack: Stack) -> None:
    result = stack.sync()
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    out = result.stdout
    assert out.startswith("Sync summary"), out
    assert "3 unit(s): 3 ok, 0 failed" in out, out
    index = read_index(stack.container_info)
    m2d, d2m, m2s = (index[n] for n in ("model-to-docker.json", "docker-to-model.json", "model-to-singularity.json"))
    assert m2d == {g: f"{REPO_PREFIX}:{g.lower()}" for g in ("TinyLinear", "TinyMulti", "TinySub")}
    assert d2m == {
        f"{REPO_PREFIX}:tinylinear": ["TinyLinear"],
        f"{REPO_PREFIX}:tinymulti": ["TinyMulti/a", "TinyMulti/b", "TinyMulti/c"],
        f"{REPO_PREFIX}:tinysub": ["TinySub/one", "TinySub/two"],
    }
    # Every image, full and slim, is in the registry once.
    assert stack.manifest_pushes() == {t: 1 for g in ("tinylinear", "tinymulti", "tinysub") for t in (g, f"{g}-slim")}
    # Every SIF is published once, and the index's md5 is that of the published bytes.
    assert len(stack.records()) == 3 and stack.drafts() == []
    for group, entry in m2s.items():
        assert entry["name"] == f"kipoi-docker_{group.lower()}-slim"
        [dep] = _published_versions(stack, entry["name"])
        [file] = dep["files"]
        assert file["checksum"].removeprefix("md5:") == entry["md5"]
        assert f"/record/{dep['id']}/files/{entry['name']}.sif" in entry["url"]
        data = stack.zenodo.file_bytes(dep["id"], f"{entry['name']}.sif")
        assert data is not None and data[32:42] == b"SIF_MAGIC\x00"
    # The zoo got the two files on branch update-json; the checkout itself is untouched.
    for name in ("model-to-docker.json", "model-to-singularity.json"):
        on_branch = json.loads(stack.zoo.git("show", f"update-json:shared/containers/{name}"))
        assert on_branch == index[name]
    assert stack.zoo.git("rev-parse", "--abbrev-ref", "HEAD") == "master"
    assert stack.zoo.git("status", "--porcelain") == ""
    assert stack.hash() == stack.head
    assert not stack.journal.exists(), "the journal, the zoo export and the SIFs are gone"
    stack.history["full"] = index


def test_a_second_sync_with_no_zoo_change_does_nothing(stack: Stack) -> None:
    pushes, deps = stack.manifest_pushes(), len(stack.zenodo.depositions())
    result = stack.sync()
    assert result.returncode == 0, result.stderr
    assert "nothing to do" in result.stdout
    assert stack.manifest_pushes() == pushes
    assert len(stack.zenodo.depositions()) == deps
    assert read_index(stack.container_info) == stack.history["full"]


def test_replaying_a_synced_range_rebuilds_and_uploads_nothing(stack: Stack) -> None:
    """The hash file was not kept (a lost commit of it): the same change is synced again.
    The registry holds images built from the same content and recipes, and their SIFs convert
    to the bytes the index has: nothing is built, pushed or uploaded."""
    pushes, deps = stack.manifest_pushes(), len(stack.zenodo.depositions())
    stack.hash_file.write_text(stack.base + "\n")
    result = stack.sync()
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    assert result.stdout.count("image unchanged") == 3, result.stdout
    assert result.stdout.count("SIF unchanged: not uploaded") == 3, result.stdout
    assert stack.manifest_pushes() == pushes
    assert len(stack.zenodo.depositions()) == deps
    assert read_index(stack.container_info) == stack.history["full"]
    assert stack.hash() == stack.head


def test_update_all_singularity_of_an_unchanged_image_uploads_nothing(stack: Stack, tmp_path: Path) -> None:
    """Upstream's `update_all_singularity`: the SIF converted again from the same image has the
    same md5 as the index entry, so nothing is uploaded and the entry stays."""
    deps = len(stack.zenodo.depositions())
    env = stack.env(
        KIPOI_MODEL_REPO=str(stack.zoo.path),
        KIPOI_DOCKER_REPO=stack.registry_repo,
        ZENODO_URL=stack.zenodo.url,
        SINGULARITY_PULL_FOLDER=str(tmp_path),
    )
    result = subprocess.run(
        [sys.executable, "-m", "kipoi_containers.update_all_singularity_images", f"{REPO_PREFIX}:tinysub-slim"],
        cwd=stack.root,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    assert "No need to update the existing singularity container for TinySub" in result.stdout, result.stdout
    assert len(stack.zenodo.depositions()) == deps
    assert list(tmp_path.iterdir()) == [], "the converted SIF is removed"
    on_branch = json.loads(stack.zoo.git("show", "update-json:shared/containers/model-to-singularity.json"))
    assert on_branch == stack.history["full"]["model-to-singularity.json"]


def test_one_changed_group_killed_at_its_first_upload_resumes_without_duplicates(stack: Stack) -> None:
    stack.zoo.touch("TinyLinear/model.yaml")
    changed = stack.zoo.commit("touch TinyLinear")
    pushes = stack.manifest_pushes()
    before = read_index(stack.container_info)
    old_entry = before["model-to-singularity.json"]["TinyLinear"]
    # The first upload hangs; the sync is killed with SIGKILL while it waits.
    stack.zenodo.inject(method="PUT", path_prefix="/api/files", stall=60)
    child = subprocess.Popen(
        [sys.executable, "-m", "kipoi_containers.updateoradd", *stack.args()],
        cwd=stack.root,
        env=stack.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 900
        while (
            not any(r["method"] == "PUT" and "/api/files/" in r["path"] for r in stack.zenodo.requests_log)
            and not stack.drafts()
        ):
            assert child.poll() is None, child.communicate()
            assert time.monotonic() < deadline, "the sync never reached its upload"
            time.sleep(0.2)
        time.sleep(2)
        child.send_signal(signal.SIGKILL)
    finally:
        if child.poll() is None:
            child.kill()
        child.communicate(timeout=30)  # reaps it and closes its pipes
    stack.zenodo.clear_faults()
    assert stack.hash() == stack.head, "a killed sync does not move the hash"
    assert (stack.journal / "journal.json").exists()
    assert read_index(stack.container_info) == before
    # Resume.
    result = stack.sync()
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    assert "1 unit(s): 1 ok, 0 failed" in result.stdout, result.stdout
    after_pushes = stack.manifest_pushes()
    for tag in ("tinylinear", "tinylinear-slim"):
        assert after_pushes[tag] == pushes[tag] + 1, f"{tag} pushed {after_pushes[tag] - pushes[tag]} times"
    for tag in ("tinymulti", "tinymulti-slim", "tinysub", "tinysub-slim"):
        assert after_pushes[tag] == pushes[tag], f"{tag} was pushed again"
    versions = _published_versions(stack, old_entry["name"])
    assert len(versions) == 2, [v["id"] for v in versions]
    assert stack.drafts() == [], "no draft is left behind"
    after = read_index(stack.container_info)
    new_entry = after["model-to-singularity.json"]["TinyLinear"]
    assert new_entry["md5"] != old_entry["md5"] and new_entry["url"] != old_entry["url"]
    for group in ("TinyMulti", "TinySub"):
        assert after["model-to-singularity.json"][group] == before["model-to-singularity.json"][group]
    assert stack.hash() == changed
    assert not (stack.journal / "journal.json").exists()


def test_a_failing_group_fails_alone(stack: Stack) -> None:
    stack.zoo.add_group("TinyBroken")
    stack.zoo.touch("TinyMulti/model-template.yaml")
    previous_hash = stack.hash()
    stack.zoo.commit("add a broken group, touch TinyMulti")
    before = read_index(stack.container_info)
    requests_before = len(stack.zenodo.requests_log)
    # Zenodo rate-limits the first publication request once: the sync waits and goes on.
    stack.zenodo.inject(429, method="POST", path_prefix="/api/deposit/depositions", retry_after=1)
    result = stack.sync()
    assert result.returncode == 1, f"{result.stdout}\n{result.stderr}"
    out = result.stdout
    assert re.search(r"TinyBroken\s+add-group\s+failed", out), out
    assert "TinyBroken: deliberately broken model" in out, "the summary carries kipoi's log tail"
    assert re.search(r"TinyMulti\s+update-image\s+ok", out), out
    after = read_index(stack.container_info)
    assert "TinyBroken" not in after["model-to-docker.json"]
    assert after["model-to-singularity.json"]["TinyMulti"] != before["model-to-singularity.json"]["TinyMulti"]
    assert after["model-to-singularity.json"]["TinyLinear"] == before["model-to-singularity.json"]["TinyLinear"]
    assert stack.hash() == previous_hash, "the hash does not move while a group fails"
    assert (stack.journal / "journal.json").exists(), "the journal is kept for a re-run"
    statuses = [r["status"] for r in stack.zenodo.requests_log[requests_before:]]
    assert 429 in statuses, "the rate limit was hit and waited out"
    assert stack.drafts() == []


def test_a_github_zoo_gets_a_branch_and_a_pull_request(stack: Stack, tmp_path: Path) -> None:
    from tests.emulators.github import GitHubEmulator

    gh_zoo, base, head = make_demo_zoo(tmp_path / "gh-zoo", groups=["TinySub"])
    gh_zoo.git("mv", "TinySub", "TinyGit")
    head = gh_zoo.commit("rename")
    ci = tmp_path / "container-info"
    hash_file = tmp_path / "hash"
    make_empty_index(ci, hash_file, base)
    # update-json exists already with a commit of its own, and its pull request is open.
    gh_zoo.git("checkout", "-q", "-b", "update-json")
    (gh_zoo.path / "shared" / "containers" / "NOTE.md").write_text("a maintainer's note\n")
    gh_zoo.commit("a note on the branch")
    gh_zoo.git("checkout", "-q", "master")
    with GitHubEmulator({"kipoi/models": str(gh_zoo.path)}, token=GITHUB_TOKEN) as gh:
        import requests

        opened = requests.post(
            f"{gh.url}/repos/kipoi/models/pulls",
            headers={"Authorization": f"Bearer {GITHUB_TOKEN}"},
            json={"title": "Update container jsons", "head": "update-json", "base": "master"},
            timeout=30,
        )
        assert opened.status_code == 201, opened.text
        # The first write of a file conflicts (someone else wrote meanwhile): re-read, retried.
        gh.inject(409, method="PUT", path_prefix="/repos/kipoi/models/contents/")
        args = [
            "--container-info",
            str(ci),
            "--hash-file",
            str(hash_file),
            "--github-api-url",
            gh.url,
            "--test-zoo",
            str(gh_zoo.path),
        ]
        result = stack.sync(*args, zoo="github:kipoi/models", env=stack.env(GITHUB_PAT=GITHUB_TOKEN))
        assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
        assert "1 unit(s): 1 ok, 0 failed" in result.stdout
        index = read_index(ci)
        assert index["model-to-docker.json"] == {"TinyGit": f"{REPO_PREFIX}:tinygit"}
        for name in ("model-to-docker.json", "model-to-singularity.json"):
            on_branch = json.loads(gh_zoo.git("show", f"update-json:shared/containers/{name}"))
            assert on_branch == index[name]
        assert gh_zoo.git("show", "update-json:shared/containers/NOTE.md") == "a maintainer's note"
        pulls = requests.get(
            f"{gh.url}/repos/kipoi/models/pulls", headers={"Authorization": f"Bearer {GITHUB_TOKEN}"}, timeout=30
        ).json()
        assert [p["number"] for p in pulls] == [opened.json()["number"]], "the open pull request is reused"
        assert any(r["status"] == 409 for r in gh.requests_log)
        assert gh.token_in_url_violations == []
        assert hash_file.read_text().strip() == head
    subprocess.run(
        ["docker", "rmi", "-f", f"{REPO_PREFIX}:tinygit", f"{REPO_PREFIX}:tinygit-slim"], capture_output=True
    )
