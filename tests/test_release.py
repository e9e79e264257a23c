"""The release end to end: ``python -m kipoi_containers release`` and ``merge-results`` against
the real Docker Engine, a real registry, the Zenodo emulator, real ``kipoi test`` in images
and SIFs, and the demo zoo (``tests/demo_stack.py``) indexed with one own image
(``tinylinear``) and one shared environment (``sharedpy3keras2tf2``: TinyMulti and TinySub),
both with published SIFs.

One run rebuilds every image in the order of the recipes' FROM lines (the base, then the two
others, each full before slim), publishes a new version of each SIF record and updates the
index and the zoo; a second run publishes nothing. The same release sharded as GitHub
Actions runs it (the base alone, then one process per image in parallel, each writing a
result fragment) merges to the same index, and a failed shard leaves its entries alone until
it is re-run.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from kipoi_containers import sif
from tests.demo_stack import DEMO_TEMPLATES, DemoZoo, make_demo_zoo, read_index
from tests.emulators.zenodo import ZenodoEmulator

from .docker_fixtures import Registry

TOKEN = "not-a-real-token-release-zenodo"
K = "kipoi/kipoi-docker"
BASE = "kipoi/release-test:kipoi-base-env"
OWN, SHARED = f"{K}:tinylinear", f"{K}:sharedpy3keras2tf2"
ZERO = "0" * 32
WRONG_PASSWORD = "wrong-pw-CanaryDoNotLeak-7f3a9c"
#: The slim image each group's SIF is converted from (the seeded index's groups).
SLIM_OF = {"TinyLinear": f"{OWN}-slim", "TinyMulti": f"{SHARED}-slim", "TinySub": f"{SHARED}-slim"}

pytestmark = pytest.mark.timeout(1500)


def seed_index(directory: Path) -> None:
    def entry(record: int, name: str) -> dict[str, str]:
        return {"url": f"https://zenodo.org/record/{record}/files/{name}.sif?download=1", "name": name, "md5": ZERO}

    own, shared = entry(101, "kipoi-docker_tinylinear-slim"), entry(201, "kipoi-docker_sharedpy3keras2tf2-slim")
    files = {
        "model-to-docker.json": {"TinyLinear": OWN, "TinyMulti": SHARED, "TinySub": SHARED},
        "docker-to-model.json": {
            OWN: ["TinyLinear"],
            SHARED: ["TinyMulti/a", "TinyMulti/b", "TinyMulti/c", "TinySub/one", "TinySub/two"],
        },
        "model-to-singularity.json": {"TinyLinear": own, "TinyMulti": shared, "TinySub": shared},
    }
    directory.mkdir(parents=True)
    for name, data in files.items():
        (directory / name).write_text(json.dumps(data, indent=4))


def seed_zenodo() -> ZenodoEmulator:
    emulator = ZenodoEmulator(TOKEN).start()
    for record, name in ((101, "kipoi-docker_tinylinear-slim"), (201, "kipoi-docker_sharedpy3keras2tf2-slim")):
        emulator.seed_published(record, title=f"{name} singularity container", files=[(f"{name}.sif", (ZERO, 1))])
    return emulator


@dataclass
class Side:
    """One release's world: its registry repository, Zenodo, index, zoo."""

    root: Path
    zoo: DemoZoo
    registry: Registry
    repo: str
    zenodo: ZenodoEmulator
    container_info: Path
    base_image: str

    @property
    def registry_repo(self) -> str:
        return f"{self.registry.host}/{self.repo}"

    def args(self, journal: str = "journal") -> list[str]:
        return [
            "--zoo", str(self.zoo.path),
            "--container-info", str(self.container_info),
            "--hash-file", str(self.root / "kipoi-model-repo-hash"),
            "--registry", self.registry_repo,
            "--base-image", BASE,
            "--build-image", self.base_image,
            "--templates", str(DEMO_TEMPLATES),
            "--zenodo-url", self.zenodo.url,
            "--journal", str(self.root / journal),
            "--concurrency", "2",
        ]  # fmt: skip

    def env(self, **extra: str) -> dict[str, str]:
        env = {**os.environ, **self.registry.env(), "ZENODO_ACCESS_TOKEN": TOKEN, "KIPOI_HTTP_TIMEOUT": "60"}
        for var in ("KIPOI_MODEL_REPO", "KIPOI_DOCKER_REPO", "KIPOI_BASE_IMAGE", "KIPOI_BUILD_IMAGE"):
            env.pop(var, None)
        env.update(extra)
        return env

    def command(self, *extra: str, journal: str = "journal") -> list[str]:
        return [sys.executable, "-m", "kipoi_containers", "release", *self.args(journal), *extra]

    def release(self, *extra: str, journal: str = "journal", **env: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            self.command(*extra, journal=journal),
            cwd=self.root,
            env=self.env(**env),
            capture_output=True,
            text=True,
            timeout=1400,
        )

    def merge(self, fragments: Path) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "kipoi_containers", "merge-results", str(fragments),
             "--zoo", str(self.zoo.path), "--container-info", str(self.container_info)],
            cwd=self.root, env=self.env(), capture_output=True, text=True, timeout=300,
        )  # fmt: skip

    def manifest_pushes(self) -> dict[str, int]:
        log = (self.registry.dir / "registry.log").read_text(errors="replace")
        counts: dict[str, int] = {}
        for tag in re.findall(r'"PUT /v2/' + self.repo + r'/manifests/([^ "]+) HTTP/[0-9.]+" 201', log):
            counts[tag] = counts.get(tag, 0) + 1
        return counts

    def published(self) -> list[dict]:
        return [d for d in self.zenodo.depositions() if d.get("submitted")]


def make_side(root: Path, name: str, registry: Registry, base_image: str, origin: DemoZoo | None) -> Side:
    root.mkdir()
    if origin is None:
        zoo, _, head = make_demo_zoo(root / "zoo")
    else:
        subprocess.run(["git", "clone", "-q", str(origin.path), str(root / "zoo")], check=True)
        zoo = DemoZoo(root / "zoo")
        head = zoo.head()
    (root / "kipoi-model-repo-hash").write_text(head + "\n")
    seed_index(root / "container-info")
    return Side(root, zoo, registry, f"kipoi/release-{name}", seed_zenodo(), root / "container-info", base_image)


@pytest.fixture(scope="module")
def sides(base_image: str, registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Side, Side]]:
    root = tmp_path_factory.mktemp("release")
    root.chmod(0o755)
    one = make_side(root / "one", "one", registry, base_image, None)
    sharded = make_side(root / "sharded", "sharded", registry, base_image, one.zoo)
    try:
        yield one, sharded
    finally:
        one.zenodo.stop()
        sharded.zenodo.stop()
        subprocess.run(["docker", "rmi", "-f", BASE], capture_output=True)


def registry_image(side: Side, tag: str) -> tuple[str, dict[str, str]]:
    """The manifest digest and the labels of ``tag`` in the side's registry repository, as the
    registry's own API gives them (an image index: its linux/amd64 image's labels)."""
    token = base64.b64encode(f"{side.registry.user}:{side.registry.password}".encode()).decode()
    accept = (
        "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json, "
        "application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.index.v1+json"
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def get(path: str) -> tuple[dict, str]:
        req = urllib.request.Request(f"{side.registry.url}/v2/{side.repo}/{path}")
        req.add_header("Authorization", f"Basic {token}")
        req.add_header("Accept", accept)
        with opener.open(req, timeout=30) as resp:
            return json.loads(resp.read()), resp.headers.get("Docker-Content-Digest", "")

    manifest, digest = get(f"manifests/{tag}")
    assert digest.startswith("sha256:"), (tag, digest)
    if "manifests" in manifest:
        [image] = [m for m in manifest["manifests"] if m.get("platform", {}).get("os") == "linux"]
        manifest, _ = get(f"manifests/{image['digest']}")
    config, _ = get(f"blobs/{manifest['config']['digest']}")
    return digest, config["config"].get("Labels") or {}


def sif_entries_published(side: Side, index: dict[str, dict], tmp: Path) -> None:
    """Every SIF entry points at a published record of the side's Zenodo holding that file,
    and that file is the SIF of the group's slim image as the registry holds it.

    The record's checksum alone proves nothing: it is the md5 of the file the release computed
    the index's md5 from, and a seeded entry agrees with its seeded record by construction.
    So the file's bytes are read back from Zenodo, and what they are is compared with what the
    registry (not the release) says about the slim image: its digest and its labels."""
    by_id = {d["id"]: d for d in side.published()}
    for key, entry in index["model-to-singularity.json"].items():
        slim = SLIM_OF[key]
        assert entry["name"] == "kipoi-docker_" + slim.split(":")[1], (key, entry)
        record = int(entry["url"].split("/record/")[1].split("/")[0])
        assert record in by_id, (key, entry, sorted(by_id))
        files = {f["filename"]: f["checksum"].removeprefix("md5:") for f in by_id[record]["files"]}
        assert files == {f"{entry['name']}.sif": entry["md5"]}, (key, entry, files)
        data = side.zenodo.file_bytes(record, f"{entry['name']}.sif")
        assert data is not None, f"{key}: record {record} holds no bytes (a seeded placeholder, not a released SIF)"
        assert hashlib.md5(data).hexdigest() == entry["md5"], (key, entry)
        path = tmp / f"{key}-{record}.sif"
        path.write_bytes(data)
        labels = sif.inspect(path)["labels"]
        digest, image_labels = registry_image(side, slim.split(":")[1])
        assert labels.get("org.kipoi-containers.source-image") == slim, (key, labels)
        assert labels.get("org.kipoi-containers.source-digest") == digest, (key, labels, digest)
        assert image_labels and {k: labels.get(k) for k in image_labels} == image_labels, (key, labels, image_labels)


def without_record_ids(index: dict[str, dict]) -> dict[str, dict]:
    out = dict(index)
    out["model-to-singularity.json"] = {
        k: {"name": e["name"], "md5": e["md5"]} for k, e in index["model-to-singularity.json"].items()
    }
    return out


def test_dry_run_lists_the_images_level_by_level(sides: tuple[Side, Side]) -> None:
    one, _ = sides
    result = one.release("--dry-run", "--json")
    assert result.returncode == 0, result.stderr
    levels = json.loads(result.stdout)
    assert [[item["image"] for item in level] for level in levels] == [[BASE], [OWN, SHARED]]
    shared = levels[1][1]
    assert shared["parents"] == [BASE] and shared["with_slim"] is True
    assert shared["test_models"] == ["TinyMulti/a", "TinySub/one"], "one model per group in a shared image"
    assert levels[0][0]["external"] == [one.base_image] and levels[0][0]["with_slim"] is False
    assert one.manifest_pushes() == {} and len(one.zenodo.depositions()) == 2, "nothing was touched"


def test_a_release_rebuilds_everything_in_order_then_nothing(sides: tuple[Side, Side], tmp_path: Path) -> None:
    one, _ = sides
    before = read_index(one.container_info)
    result = one.release()
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    assert result.stdout.startswith("Sync summary"), result.stdout
    assert "3 unit(s): 3 ok, 0 failed" in result.stdout, result.stdout
    # Dependency order, from the FROM lines: the base before anything built from it.
    log = result.stderr
    assert log.index(f"building `{BASE}`") < log.index(f"building `{OWN}`") < log.index(f"building `{OWN}-slim`")
    assert log.index(f"building `{BASE}`") < log.index(f"building `{SHARED}`") < log.index(f"building `{SHARED}-slim`")
    pushes = one.manifest_pushes()
    tags = ("kipoi-base-env", "tinylinear", "tinylinear-slim", "sharedpy3keras2tf2", "sharedpy3keras2tf2-slim")
    assert pushes == dict.fromkeys(tags, 1), pushes
    after = read_index(one.container_info)
    assert after["model-to-docker.json"] == before["model-to-docker.json"]
    assert after["docker-to-model.json"] == before["docker-to-model.json"]
    m2s = after["model-to-singularity.json"]
    assert m2s["TinyMulti"] == m2s["TinySub"] != before["model-to-singularity.json"]["TinyMulti"]
    assert m2s["TinyLinear"]["md5"] != ZERO
    # New versions of the two records (same concepts), nothing else.
    published = one.published()
    assert len(published) == 4, [(d["id"], d["title"]) for d in published]
    sif_entries_published(one, after, tmp_path)
    concepts = {d["id"]: d["conceptrecid"] for d in published}
    for key, record in (("TinyLinear", 101), ("TinyMulti", 201)):
        new = int(m2s[key]["url"].split("/record/")[1].split("/")[0])
        assert new not in (101, 201) and concepts[new] == concepts[record], (key, new)
    # The zoo got the new entries on its branch; the checkout is untouched.
    on_branch = json.loads(one.zoo.git("show", "update-json:shared/containers/model-to-singularity.json"))
    assert on_branch == m2s  # the whole file: nothing missing, nothing extra
    assert one.zoo.git("status", "--porcelain") == ""

    # Nothing changed since: nothing is built, pushed or published; the index keeps its bytes.
    index_bytes = {p.name: p.read_bytes() for p in one.container_info.iterdir()}
    again = one.release()
    assert again.returncode == 0, f"{again.stdout}\n{again.stderr}"
    assert "building `" not in again.stderr, again.stderr
    assert one.manifest_pushes() == pushes
    assert len(one.published()) == 4
    assert {p.name: p.read_bytes() for p in one.container_info.iterdir()} == index_bytes
    assert "image unchanged" in again.stdout and "SIF unchanged" in again.stdout, again.stdout


def test_a_sharded_release_merges_to_the_same_index_and_a_failed_shard_keeps_its_entries(
    sides: tuple[Side, Side], tmp_path: Path
) -> None:
    one, sharded = sides
    original = read_index(sharded.container_info)
    fragments = sharded.root / "fragments"
    fragments.mkdir()
    # Level 0: the base alone.
    base = sharded.release("--only", BASE, "--result-fragment", str(fragments / "base.json"), journal="j-base")
    assert base.returncode == 0, f"{base.stdout}\n{base.stderr}"
    assert read_index(sharded.container_info) == original, "a shard never writes the index"
    # Level 1: one process per image, in parallel; the own image's job has a wrong password.
    procs = {
        tag: subprocess.Popen(
            sharded.command("--only", image, "--result-fragment", str(fragments / f"{tag}.json"), journal=f"j-{tag}"),
            cwd=sharded.root,
            env=sharded.env(**({"DOCKER_PASSWORD": WRONG_PASSWORD} if tag == "tinylinear" else {})),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for tag, image in (("tinylinear", OWN), ("shared", SHARED))
    }
    outputs = {tag: proc.communicate(timeout=1400) for tag, proc in procs.items()}
    assert procs["shared"].returncode == 0, outputs["shared"]
    assert procs["tinylinear"].returncode == 1, outputs["tinylinear"]
    assert WRONG_PASSWORD not in "".join(outputs["tinylinear"]), "the password never appears"

    # The merge applies what succeeded and exits 1: the release is not complete.
    merged = sharded.merge(fragments)
    assert merged.returncode == 1, f"{merged.stdout}\n{merged.stderr}"
    assert "3 unit(s): 2 ok, 1 failed" in merged.stdout and "index: updated" in merged.stdout, merged.stdout
    assert "DOCKER_PASSWORD" in merged.stdout, "the failed row says what to check"
    index = read_index(sharded.container_info)
    m2s = index["model-to-singularity.json"]
    assert m2s["TinyLinear"] == original["model-to-singularity.json"]["TinyLinear"], "the failed image keeps its entry"
    assert m2s["TinyMulti"] == m2s["TinySub"] != original["model-to-singularity.json"]["TinyMulti"]

    # The failed job re-run (resuming its journal), and everything merged again: the same
    # index as the unsharded release's (record ids aside: each side has its own Zenodo).
    rerun = sharded.release(
        "--only", OWN, "--result-fragment", str(fragments / "tinylinear.json"), journal="j-tinylinear"
    )
    assert rerun.returncode == 0, f"{rerun.stdout}\n{rerun.stderr}"
    again = sharded.merge(fragments)
    assert again.returncode == 0, f"{again.stdout}\n{again.stderr}"
    index = read_index(sharded.container_info)
    assert without_record_ids(index) == without_record_ids(read_index(one.container_info))
    sif_entries_published(sharded, index, tmp_path)
    assert len(sharded.published()) == 4, "one new version per record: no second one for the re-run"
    on_branch = json.loads(sharded.zoo.git("show", "update-json:shared/containers/model-to-singularity.json"))
    assert on_branch == index["model-to-singularity.json"]  # the whole file


def test_merge_results_names_a_bad_fragment(sides: tuple[Side, Side], tmp_path: Path) -> None:
    one, _ = sides
    (tmp_path / "x.json").write_text("{}")
    result = one.merge(tmp_path)
    assert result.returncode == 1 and "x.json" in result.stderr and "fragment" in result.stderr, result.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    result = one.merge(empty)
    assert result.returncode == 1 and "no result fragment" in result.stderr, result.stderr
    shutil.rmtree(empty)
