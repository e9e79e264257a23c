"""The sync plan over real zoo metadata, through a local git zoo and through the GitHub
emulator (which must give identical plans)."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Callable

import pytest

import kipoi_containers
from kipoi_containers import UnknownRevisionError, ZooError, _engine, helper

from .conftest import CONTAINER_INFO, REPO
from .zoo_repo import METADATA, ZooRepo

TOKEN = "not-a-real-token-plan-github"


@pytest.fixture
def zoo(tmp_path: Path) -> ZooRepo:
    return ZooRepo.from_metadata(tmp_path / "models")


@pytest.fixture(params=["local", "github"])
def spec_factory(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Callable:
    """How to reach a zoo repository: as a local checkout, or as github:kipoi/models
    through the GitHub emulator (with a token, which must never appear in a URL)."""

    @contextlib.contextmanager
    def reach(zoo: ZooRepo) -> Iterator[Callable[[], dict]]:
        if request.param == "local":
            yield lambda: {"zoo": str(zoo.path)}
            return
        from .emulators.github import GitHubEmulator

        monkeypatch.setenv("GITHUB_PAT", TOKEN)
        with GitHubEmulator({"kipoi/models": str(zoo.path)}, token=TOKEN) as gh:
            yield lambda: {"zoo": "github:kipoi/models", "github_api_url": gh.url}
            assert gh.token_in_url_violations == []
            assert gh.requests_log, "the GitHub path was not exercised"

    return reach


@pytest.fixture
def spec(spec_factory: Callable, zoo: ZooRepo) -> Iterator[Callable[[], dict]]:
    with spec_factory(zoo) as s:
        yield s


def summary(plan: kipoi_containers.Plan) -> list[tuple[str, str]]:
    return [(a.kind, a.unit) for a in plan.actions]


def make_plan(spec: Callable[[], dict], base: str, **kw: object) -> kipoi_containers.Plan:
    return kipoi_containers.plan(from_commit=base, container_info=CONTAINER_INFO, **spec(), **kw)


def test_model_yaml_change_maps_to_the_real_index(zoo: ZooRepo, spec: Callable[[], dict]) -> None:
    base = zoo.head()
    zoo.append("Basset/model.yaml", "\n# touched\n")  # sharedpy3keras2tf2, shared by many groups
    deepmel = sorted(p for p in (zoo.path / "DeepMEL").rglob("model.yaml"))[0]
    zoo.append(str(deepmel.relative_to(zoo.path)), "\n# touched\n")  # own image deepmel
    zoo.append("MMSplice/mtsplice/model.yaml", "\n# touched\n")  # own image mmsplice-mtsplice
    zoo.append("MMSplice/deltaLogitPSI/model.yaml", "\n# touched\n")  # mmsplice, shared by 4 keys
    plan = make_plan(spec, base)
    assert summary(plan) == [
        ("update-image", "DeepMEL"),
        ("update-image", "MMSplice"),  # mmsplice: MMSplice's own image for four of its keys
        ("update-image", "MMSplice/mtsplice"),
        ("retest-shared", "Basset"),
    ]
    by_unit = {a.unit: a for a in plan.actions}
    assert by_unit["Basset"].image == "kipoi/kipoi-docker:sharedpy3keras2tf2"
    assert by_unit["Basset"].models == ["Basset"]
    assert by_unit["DeepMEL"].image == "kipoi/kipoi-docker:deepmel"
    assert sorted(by_unit["DeepMEL"].models) == sorted(
        str(p.parent.relative_to(zoo.path)) for p in (zoo.path / "DeepMEL").rglob("model.yaml")
    )
    assert by_unit["MMSplice/mtsplice"].image == "kipoi/kipoi-docker:mmsplice-mtsplice"
    assert by_unit["MMSplice/mtsplice"].models == ["MMSplice/mtsplice"]
    assert by_unit["MMSplice"].image == "kipoi/kipoi-docker:mmsplice"
    assert sorted(by_unit["MMSplice"].models) == [
        "MMSplice/deltaLogitPSI",
        "MMSplice/modularPredictions",
        "MMSplice/pathogenicity",
        "MMSplice/splicingEfficiency",
    ]
    assert all(a.reason for a in plan.actions)
    assert plan.to_commit == zoo.head() and plan.from_commit == base


def test_new_group_is_added_with_all_models_of_its_tsv(tmp_path: Path, spec_factory: Callable) -> None:
    zoo = ZooRepo.from_metadata(tmp_path / "models", exclude=["DeepBind"])
    base = zoo.head()
    zoo.copy_group_from_metadata("DeepBind")
    info = tmp_path / "container-info"
    info.mkdir()
    for name in ("model-to-docker.json", "model-to-singularity.json", "docker-to-model.json"):
        data = helper.populate_json(CONTAINER_INFO / name)
        data.pop("DeepBind", None)
        if name == "docker-to-model.json":
            data = {k: [m for m in v if not m.startswith("DeepBind/")] for k, v in data.items()}
        helper.write_json(data, info / name)
    with spec_factory(zoo) as spec:
        plan = kipoi_containers.plan(from_commit=base, container_info=info, **spec())
    assert summary(plan) == [("add-group", "DeepBind")]
    action = plan.actions[0]
    rows = (METADATA / "DeepBind" / "models.tsv").read_text().strip().splitlines()[1:]
    assert len(action.models) == len(rows) > 900
    assert action.models[0] == "DeepBind/" + rows[0].split("\t")[0]
    assert action.image is None
    assert set(action.try_images) == {
        "kipoi/kipoi-docker:sharedpy3keras1.2",
        "kipoi/kipoi-docker:sharedpy3keras2tf1",
        "kipoi/kipoi-docker:sharedpy3keras2tf2",
    }


def test_deleted_group_is_removed(zoo: ZooRepo, spec: Callable[[], dict]) -> None:
    base = zoo.head()
    zoo.remove("DeepMEL")
    zoo.remove("MMSplice/mtsplice")
    plan = make_plan(spec, base)
    assert summary(plan) == [("remove-group", "DeepMEL"), ("remove-group", "MMSplice/mtsplice")]
    assert (
        plan.actions[0].models
        == helper.populate_json(CONTAINER_INFO / "docker-to-model.json")["kipoi/kipoi-docker:deepmel"]
    )


def test_non_model_paths_cause_no_action(zoo: ZooRepo, spec: Callable[[], dict]) -> None:
    base = zoo.head()
    zoo.append("README.md", "more\n")
    zoo.write("tests/test_more.py", "x = 1\n")
    zoo.write(".gitignore", "*.pyc\n")
    zoo.write(".circleci/config.yml", "version: 2\n")
    zoo.write("shared/containers/model-to-docker.json", "{}")
    zoo.write("config.yaml", "a: 1\n")
    plan = make_plan(spec, base)
    assert plan.is_empty() and len(plan) == 0
    skipped = {s.path: s.reason for s in plan.skipped}
    assert set(skipped) == {
        "README.md",
        "tests/test_more.py",
        ".gitignore",
        ".circleci/config.yml",
        "shared/containers/model-to-docker.json",
        "config.yaml",
    }
    assert skipped["README.md"].startswith("top-level file")
    assert "not a model group" in skipped["tests/test_more.py"]
    assert "nothing to do" in plan.to_table()


def test_base_not_an_ancestor_uses_the_tree_difference(zoo: ZooRepo, spec: Callable[[], dict]) -> None:
    zoo.append("HAL/model.yaml", "\n# before rewrite\n")
    orphan = zoo.orphan_rewrite()  # same tree as HEAD, no common ancestor
    zoo.append("SiSp/model.yaml", "\n# after\n")
    assert (
        subprocess.run(["git", "-C", str(zoo.path), "merge-base", orphan, "HEAD"], capture_output=True).returncode == 1
    )
    expected = zoo.git("diff", "--name-only", "--no-renames", orphan, "HEAD").splitlines()
    kw = spec()
    assert _engine.changed_paths(kw["zoo"], orphan, zoo.head(), kw.get("github_api_url")) == sorted(expected)
    plan = make_plan(spec, orphan)
    assert summary(plan) == [("retest-shared", "SiSp")]


def test_dotdot_path_is_rejected(zoo: ZooRepo, spec: Callable[[], dict]) -> None:
    base = zoo.head()
    evil = zoo.commit_tree_with_entry("..", base)
    plan = make_plan(spec, base, to=evil)
    assert plan.is_empty()
    assert [(s.path, s.reason.split(":")[0]) for s in plan.skipped] == [("../model.yaml", "rejected")]


def test_unknown_revision_and_bad_zoo(zoo: ZooRepo, spec: Callable[[], dict], tmp_path: Path) -> None:
    with pytest.raises(UnknownRevisionError, match=r"unknown revision `0{40}`"):
        make_plan(spec, "0" * 40)
    with pytest.raises(ZooError, match="is not a git repository"):
        kipoi_containers.plan(zoo=str(tmp_path), from_commit="HEAD", container_info=CONTAINER_INFO)


def test_model_groups_of_the_real_zoo(zoo: ZooRepo) -> None:
    groups = dict(_engine.model_groups(str(zoo.path)))
    top_level = {p.name for p in METADATA.iterdir() if p.is_dir()}
    assert set(groups) == top_level
    assert groups["Basset"] == ["Basset"]
    assert sorted(groups["MMSplice"]) == [
        "MMSplice/deltaLogitPSI",
        "MMSplice/modularPredictions",
        "MMSplice/mtsplice",
        "MMSplice/pathogenicity",
        "MMSplice/splicingEfficiency",
    ]
    d2m = helper.populate_json(CONTAINER_INFO / "docker-to-model.json")
    # Every model the real index tests in the tf1 image that belongs to DeepBind is found.
    indexed = {m for m in d2m["kipoi/kipoi-docker:sharedpy3keras2tf1"] if m.startswith("DeepBind/")}
    assert indexed <= set(groups["DeepBind"])


def test_cli_dry_run_table_and_json(zoo: ZooRepo, tmp_path: Path) -> None:
    base = zoo.head()
    zoo.append("HAL/model.yaml", "\n# x\n")
    cmd = [sys.executable, "-m", "kipoi_containers.updateoradd", "--dry-run", "--zoo", str(zoo.path), "--from", base]
    out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=True)
    assert "retest-shared" in out.stdout and "HAL" in out.stdout and "why:" in out.stdout
    out = subprocess.run([*cmd, "--json"], cwd=REPO, capture_output=True, text=True, check=True)
    data = json.loads(out.stdout)
    assert [(a["kind"], a["unit"]) for a in data["actions"]] == [("retest-shared", "HAL")]
    # The stored hash is the default --from; it does not exist in this zoo: a clear error.
    out = subprocess.run(cmd[:-2], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 1
    assert out.stderr.startswith("error: unknown revision `d8d209d1c70d3fdac2730429540477bb525d4162`")
    assert "Traceback" not in out.stderr


def test_github_faults_are_retried_and_auth_errors_are_clear(zoo: ZooRepo, monkeypatch: pytest.MonkeyPatch) -> None:
    from .emulators.github import GitHubEmulator

    base = zoo.head()
    zoo.append("HAL/model.yaml", "\n# x\n")
    monkeypatch.setenv("GITHUB_PAT", TOKEN)
    with GitHubEmulator({"kipoi/models": str(zoo.path)}, token=TOKEN) as gh:
        gh.inject(503, path_prefix="/repos/kipoi/models/git/trees", times=2)
        gh.inject(429, path_prefix="/repos/kipoi/models/commits", times=1, retry_after=1)
        gh.inject(502, path_prefix="/repos/kipoi/models/commits", times=1, drop_connection=True)
        plan = kipoi_containers.plan(
            zoo="github:kipoi/models", from_commit=base, container_info=CONTAINER_INFO, github_api_url=gh.url
        )
        assert summary(plan) == [("retest-shared", "HAL")]
        statuses = [r["status"] for r in gh.requests_log if r["path"].startswith("/repos/kipoi/models/git/trees")]
        assert statuses.count(503) == 2 and 200 in statuses
        assert gh.token_in_url_violations == []

        monkeypatch.setenv("GITHUB_PAT", "wrong-pat-000000000000000000000000")
        with pytest.raises(kipoi_containers.GitHubAuthError) as info:
            kipoi_containers.plan(
                zoo="github:kipoi/models", from_commit=base, container_info=CONTAINER_INFO, github_api_url=gh.url
            )
        message = str(info.value)
        assert "401" in message and "Bad credentials" in message and "GITHUB_PAT" in message
        assert "wrong-pat-" not in message and TOKEN not in message


def test_local_and_github_give_identical_plans(zoo: ZooRepo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from .emulators.github import GitHubEmulator

    base = zoo.head()
    zoo.append("HAL/model.yaml", "\n# x\n")
    zoo.remove("DeepSTARR")
    zoo.append("MMSplice/dataloader.yaml", "\n# shared by every MMSplice model\n")
    zoo.write("README.md", "changed\n")
    local = kipoi_containers.plan(zoo=str(zoo.path), from_commit=base, container_info=CONTAINER_INFO).to_dict()
    monkeypatch.setenv("GITHUB_PAT", TOKEN)
    with GitHubEmulator({"kipoi/models": str(zoo.path)}, token=TOKEN) as gh:
        remote = kipoi_containers.plan(
            zoo="github:kipoi/models", from_commit=base, container_info=CONTAINER_INFO, github_api_url=gh.url
        ).to_dict()
    assert local.pop("zoo") == str(zoo.path) and remote.pop("zoo") == "github:kipoi/models"
    assert local == remote
    # HAL, DeepSTARR, and MMSplice's two images (mmsplice for four keys, mmsplice-mtsplice).
    assert [(a["kind"], a["unit"]) for a in local["actions"]] == [
        ("remove-group", "DeepSTARR"),
        ("update-image", "MMSplice"),
        ("update-image", "MMSplice/mtsplice"),
        ("retest-shared", "HAL"),
    ]


def test_unreadable_models_tsv_is_an_error_not_a_single_model(zoo: ZooRepo) -> None:
    # Like a partial clone whose blob is absent: the tree lists DeepBind/models.tsv but its
    # content cannot be read. The group must not silently become one model.
    blob = zoo.git("rev-parse", "HEAD:DeepBind/models.tsv")
    (zoo.path / ".git" / "objects" / blob[:2] / blob[2:]).unlink()
    with pytest.raises(ZooError, match=r"DeepBind/models\.tsv"):
        _engine.models_of_group(str(zoo.path), "DeepBind")
    assert len(_engine.models_of_group(str(zoo.path), "CpGenie")) > 1
