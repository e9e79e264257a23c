"""Writing the index files back into the zoo: the upstream names of ``kipoi_containers.helper``
(``populate_json_from_kipoi``, ``write_json_to_kipoi``, ``branch_exists``, ``create_pr``)
against the GitHub emulator (a real git repository behind GitHub's REST API) and against
real local git checkouts.

Every assertion is on what a user can observe: the bytes on the branch (read back with
``git``), the commits and refs, the requests GitHub received, the pull requests it holds,
and the checkout's working tree, index and HEAD.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from kipoi_containers import helper
from kipoi_containers.errors import GitHubAuthError, WriteConflictError, ZooError

from .conftest import CONTAINER_INFO
from .emulators.github import GitHubEmulator

TOKEN = "test-token-0123456789"
REPO = "kipoi/models"
DOCKER = "model-to-docker.json"
SINGULARITY = "model-to-singularity.json"
DOCKER_PATH = f"shared/containers/{DOCKER}"
SINGULARITY_PATH = f"shared/containers/{SINGULARITY}"
CONTENTS = f"/repos/{REPO}/contents/{DOCKER_PATH}"
IDENTITY = {
    "GIT_AUTHOR_NAME": "Zoo Tester",
    "GIT_AUTHOR_EMAIL": "zoo@example.invalid",
    "GIT_COMMITTER_NAME": "Zoo Tester",
    "GIT_COMMITTER_EMAIL": "zoo@example.invalid",
}


def git(repo: Path, *args: str, env: dict[str, str] | None = None) -> str:
    full = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    full.update(IDENTITY if env is None else env)
    out = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, env=full, check=True)
    return out.stdout.decode().strip()


def real_index(name: str) -> dict[str, Any]:
    return json.loads((CONTAINER_INFO / name).read_text())


def dumps(d: dict[str, Any]) -> bytes:
    return json.dumps(d, indent=4).encode()


def make_zoo(path: Path) -> Path:
    """A zoo checkout on ``master`` holding the real index files under shared/containers."""
    (path / "shared" / "containers").mkdir(parents=True)
    (path / "README.md").write_text("# Kipoi models\n")
    (path / "Basset").mkdir()
    (path / "Basset" / "model.yaml").write_text("type: keras\n")
    for name in (DOCKER, SINGULARITY):
        (path / "shared" / "containers" / name).write_bytes(dumps(real_index(name)))
    git(path.parent, "init", "-q", "-b", "master", str(path))
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "zoo")
    return path


def on_branch(repo: Path, path: str, branch: str = "update-json") -> bytes:
    full = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    return subprocess.run(
        ["git", "-C", str(repo), "show", f"{branch}:{path}"], capture_output=True, env=full, check=True
    ).stdout


def branch_sha(repo: Path, branch: str) -> str | None:
    out = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "-q", "--verify", f"refs/heads/{branch}"], capture_output=True
    )
    return out.stdout.decode().strip() if out.returncode == 0 else None


def calls(gh: GitHubEmulator, method: str, prefix: str = "") -> list[int | None]:
    """Statuses of the requests ``method`` whose path starts with ``prefix``, in order."""
    return [r["status"] for r in gh.requests_log if r["method"] == method and r["path"].startswith(prefix)]


class FakeRepository:
    """Duck-types PyGithub's ``Repository``: only ``full_name`` may be used."""

    full_name = REPO

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the engine must not use Repository.{name}")


@pytest.fixture
def bare(tmp_path: Path) -> Path:
    src = make_zoo(tmp_path / "src")
    dst = tmp_path / "models.git"
    git(tmp_path, "clone", "-q", "--bare", str(src), str(dst))
    return dst


@pytest.fixture
def gh(bare: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[GitHubEmulator]:
    with GitHubEmulator({REPO: str(bare)}, token=TOKEN) as emulator:
        monkeypatch.setenv("GITHUB_API_URL", emulator.url)
        monkeypatch.setenv("GITHUB_PAT", TOKEN)
        monkeypatch.delenv("GITHUB_TOKEN", raising=False)
        yield emulator
        assert emulator.token_in_url_violations == []
        assert emulator.server_errors == []


def with_new_group(name: str = "NewGroup", image: str = "kipoi/kipoi-docker:newgroup") -> dict[str, Any]:
    d = real_index(DOCKER)
    d[name] = image
    return d


# ------------------------------------------------------------------------------ GitHub


def test_branch_is_created_when_missing_and_reused_when_present(gh: GitHubEmulator, bare: Path) -> None:
    master = branch_sha(bare, "master")
    assert helper.branch_exists(REPO) is False

    first = with_new_group()
    assert helper.write_json_to_kipoi(first, DOCKER, REPO) is True
    assert helper.branch_exists(REPO) is True
    head1 = branch_sha(bare, "update-json")
    assert git(bare, "rev-parse", f"{head1}^") == master, "created from the default branch's head"
    assert on_branch(bare, DOCKER_PATH) == dumps(first)
    assert git(bare, "log", "-1", "--format=%s", "update-json") == "Updating model-to-docker.json"
    assert branch_sha(bare, "master") == master, "the default branch is never written"

    second = dict(first, Other="kipoi/kipoi-docker:other")
    assert helper.write_json_to_kipoi(second, DOCKER, REPO) is True
    assert git(bare, "rev-parse", "update-json^") == head1, "the existing branch is reused"
    assert on_branch(bare, DOCKER_PATH) == dumps(second)
    assert calls(gh, "POST", f"/repos/{REPO}/git/refs") == [201], "the branch is created once"
    assert calls(gh, "POST", f"/repos/{REPO}/pulls") == [], "write_json_to_kipoi opens no pull request"
    # Upstream's read follows the branch once it exists.
    assert helper.populate_json_from_kipoi(DOCKER, REPO) == second


def test_unchanged_content_creates_nothing(gh: GitHubEmulator, bare: Path) -> None:
    before = git(bare, "for-each-ref")
    assert helper.write_json_to_kipoi(real_index(DOCKER), DOCKER, REPO) is False
    assert git(bare, "for-each-ref") == before, "no branch, no commit"
    assert calls(gh, "PUT") == [] and calls(gh, "POST") == []

    changed = with_new_group()
    assert helper.write_json_to_kipoi(changed, DOCKER, REPO) is True
    head = branch_sha(bare, "update-json")
    assert helper.write_json_to_kipoi(changed, DOCKER, REPO) is False
    assert branch_sha(bare, "update-json") == head, "the same content again makes no commit"
    assert calls(gh, "PUT") == [200]


def test_bytes_written_are_json_dumps_indent4(gh: GitHubEmulator, bare: Path) -> None:
    # Not an index file, so any JSON goes: escapes, floats, nesting, empty containers.
    d = {"é": [1, 2.5, None, True, '\u2603 "q" \\'], "nested": {"x": {}, "y": []}, "big": 10**18, "neg": -7}
    assert helper.write_json_to_kipoi(d, "extra.json", REPO) is True
    written = on_branch(bare, "shared/containers/extra.json")
    assert written == json.dumps(d, indent=4).encode()
    assert calls(gh, "PUT") == [201], "a new file is created without a sha"
    assert helper.populate_json_from_kipoi("extra.json", REPO) == d


@pytest.mark.parametrize("status", [409, 422])
def test_injected_sha_conflict_is_reread_and_retried(gh: GitHubEmulator, bare: Path, status: int) -> None:
    gh.inject(status, method="PUT", path_prefix=CONTENTS)
    d = with_new_group()
    assert helper.write_json_to_kipoi(d, DOCKER, REPO) is True
    assert calls(gh, "PUT", CONTENTS) == [status, 200]
    assert len(calls(gh, "GET", CONTENTS)) == 2, "the file is read again after the conflict"
    assert on_branch(bare, DOCKER_PATH) == dumps(d)


def test_concurrent_write_between_read_and_put_is_merged(gh: GitHubEmulator, bare: Path) -> None:
    # Both writers target the existing branch.
    assert helper.write_json_to_kipoi(with_new_group("First"), DOCKER, REPO) is True
    base = json.loads(on_branch(bare, DOCKER_PATH))

    def other_writer() -> None:
        headers = {"Authorization": f"token {TOKEN}", "User-Agent": "other-writer"}
        got = requests.get(f"{gh.url}{CONTENTS}", params={"ref": "update-json"}, headers=headers, timeout=10)
        theirs = dict(
            json.loads(requests.get(got.json()["download_url"], timeout=10).content), Theirs="kipoi/kipoi-docker:theirs"
        )
        body = {
            "message": "someone else",
            "content": __import__("base64").b64encode(dumps(theirs)).decode(),
            "sha": got.json()["sha"],
            "branch": "update-json",
        }
        assert requests.put(f"{gh.url}{CONTENTS}", json=body, headers=headers, timeout=10).status_code == 200

    # The other writer lands after our read, just before our PUT arrives.
    gh.before(other_writer, method="PUT", path_prefix=CONTENTS)
    ours = dict(base, Ours="kipoi/kipoi-docker:ours")
    assert helper.write_json_to_kipoi(ours, DOCKER, REPO) is True

    ours_puts = [
        r["status"]
        for r in gh.requests_log
        if r["method"] == "PUT" and r["headers"].get("user-agent") != "other-writer"
    ]
    assert ours_puts == [200, 409, 200], "our stale sha was refused, then the re-applied edit went through"
    merged = json.loads(on_branch(bare, DOCKER_PATH))
    assert merged["Theirs"] == "kipoi/kipoi-docker:theirs" and merged["Ours"] == "kipoi/kipoi-docker:ours"
    assert on_branch(bare, DOCKER_PATH) == dumps(
        dict(base, Theirs="kipoi/kipoi-docker:theirs", Ours="kipoi/kipoi-docker:ours")
    )
    assert git(bare, "log", "-1", "--format=%s", "update-json^") == "someone else"


def test_conflicts_are_bounded(gh: GitHubEmulator, bare: Path) -> None:
    gh.inject(409, method="PUT", path_prefix=CONTENTS, times=100)
    with pytest.raises(WriteConflictError, match="kept changing") as info:
        helper.write_json_to_kipoi(with_new_group(), DOCKER, REPO)
    assert DOCKER_PATH in str(info.value)
    assert calls(gh, "PUT", CONTENTS) == [409] * 6, "one attempt and five retries"


def test_pull_request_is_opened_and_an_open_one_is_success(gh: GitHubEmulator, bare: Path) -> None:
    assert helper.write_json_to_kipoi(with_new_group(), DOCKER, REPO) is True
    first = helper.create_pr(FakeRepository())
    assert first is not None and first["created"] is True and first["number"] == 1
    again = helper.create_pr(REPO)
    assert again == dict(first, created=False), "an already open pull request is returned, not an error"
    assert calls(gh, "POST", f"/repos/{REPO}/pulls") == [201, 422]
    pulls = requests.get(
        f"{gh.url}/repos/{REPO}/pulls", headers={"Authorization": f"token {TOKEN}", "User-Agent": "t"}, timeout=10
    ).json()
    assert [(p["title"], p["body"], p["head"]["ref"], p["base"]["ref"]) for p in pulls] == [
        ("Update container jsons", "Automatic pr created from kipoi-containers", "update-json", "master")
    ]


def test_injected_pull_exists_422_finds_the_open_one(gh: GitHubEmulator) -> None:
    assert helper.write_json_to_kipoi(with_new_group(), DOCKER, REPO) is True
    assert helper.create_pr(REPO)["number"] == 1  # type: ignore[index]
    gh.inject(422, method="POST", path_prefix=f"/repos/{REPO}/pulls")
    assert helper.create_pr(REPO) == {"number": 1, "url": f"{gh.url}/html/{REPO}/pull/1", "created": False}


def test_branch_without_new_commits_gets_no_pull_request(gh: GitHubEmulator, bare: Path) -> None:
    git(bare, "update-ref", "refs/heads/update-json", "refs/heads/master")
    assert helper.create_pr(REPO) is None
    assert calls(gh, "POST", f"/repos/{REPO}/pulls") == [422]


def test_sync_write_back_writes_both_files_and_one_pull_request(gh: GitHubEmulator, bare: Path) -> None:
    from kipoi_containers import _engine

    singularity = real_index(SINGULARITY)
    singularity["NewGroup"] = {
        "url": "https://zenodo.org/record/1/files/kipoi-docker_newgroup-slim.sif?download=1",
        "name": "kipoi-docker_newgroup-slim",
        "md5": "0" * 32,
    }
    report = _engine.zoo_write_json(REPO, {DOCKER_PATH: with_new_group(), SINGULARITY_PATH: singularity})
    assert report["changed"] is True and report["branch_created"] is True
    assert [(f["path"], f["outcome"]) for f in report["files"]] == [
        (DOCKER_PATH, "written"),
        (SINGULARITY_PATH, "written"),
    ]
    log = git(bare, "log", "--format=%H %s", "master..update-json").splitlines()
    assert [f["commit"] for f in reversed(report["files"])] == [line.split()[0] for line in log]
    assert report["pull_request"] == {"number": 1, "url": f"{gh.url}/html/{REPO}/pull/1", "created": True}
    # Nothing new: no commit; the open pull request is found again.
    again = _engine.zoo_write_json(REPO, {DOCKER_PATH: with_new_group(), SINGULARITY_PATH: singularity})
    assert again["changed"] is False and [f["outcome"] for f in again["files"]] == ["unchanged", "unchanged"]
    assert again["pull_request"]["created"] is False


def api(gh: GitHubEmulator, method: str, path: str, **body: Any) -> requests.Response:
    """A maintainer's own request to GitHub (the emulator), outside the engine."""
    return requests.request(
        method,
        f"{gh.url}/repos/{REPO}{path}",
        json=body or None,
        headers={"Authorization": f"token {TOKEN}", "User-Agent": "maintainer"},
        timeout=10,
    )


def edit_on_master(gh: GitHubEmulator, bare: Path, key: str, value: str) -> dict[str, Any]:
    """A maintainer edits model-to-docker.json on the default branch directly."""
    current = json.loads(on_branch(bare, DOCKER_PATH, "master"))
    current[key] = value
    blob = git(bare, "rev-parse", f"master:{DOCKER_PATH}")
    content = base64.b64encode(dumps(current)).decode()
    answer = api(
        gh, "PUT", f"/contents/{DOCKER_PATH}", message="fix by hand", branch="master", content=content, sha=blob
    )
    assert answer.status_code == 200, answer.text
    return current


@pytest.mark.parametrize("merge_method", ["squash", "merge"])
def test_a_merged_branch_restarts_from_the_default_branch(gh: GitHubEmulator, bare: Path, merge_method: str) -> None:
    """After the pull request is merged (squashed or not) and the default branch moves on,
    `update-json` holds nothing to propose: reading goes to the default branch and the next
    write starts the branch again from the default branch's head, so the new pull request
    proposes only the new change and never reverts the maintainer's edit."""
    first = with_new_group("FirstGroup", "kipoi/kipoi-docker:first")
    assert helper.write_json_to_kipoi(first, DOCKER, REPO) is True
    pr = helper.create_pr(REPO)
    assert pr is not None and pr["number"] == 1
    stale_head = branch_sha(bare, "update-json")
    merged = api(gh, "PUT", "/pulls/1/merge", merge_method=merge_method)
    assert merged.status_code == 200 and merged.json()["merged"] is True, merged.text
    assert api(gh, "GET", "/pulls/1").json()["state"] == "closed"
    fixed = edit_on_master(gh, bare, "Basset", "kipoi/kipoi-docker:basset-fixed")
    assert branch_sha(bare, "update-json") == stale_head, "GitHub keeps the merged branch"

    assert helper.branch_exists(REPO) is True
    assert helper.populate_json_from_kipoi(DOCKER, REPO) == fixed, "read through the default branch"

    second = dict(fixed, SecondGroup="kipoi/kipoi-docker:second")
    assert helper.write_json_to_kipoi(second, DOCKER, REPO) is True
    master = branch_sha(bare, "master")
    assert git(bare, "rev-parse", "update-json^") == master, "restarted from the default branch's head"
    assert json.loads(on_branch(bare, DOCKER_PATH)) == second
    assert calls(gh, "PATCH", f"/repos/{REPO}/git/refs/heads/update-json") == [200]
    [patch] = [r["json"] for r in gh.requests_log if r["method"] == "PATCH"]
    # A merged branch moves by fast-forward (GitHub refuses it if the branch moved); only a
    # squash-merged one needs force.
    assert patch == {"sha": master, "force": merge_method == "squash"}
    again = helper.create_pr(REPO)
    assert again is not None and again["number"] == 2 and again["created"] is True
    compare = api(gh, "GET", "/compare/master...update-json").json()
    assert [f["filename"] for f in compare["files"]] == [DOCKER_PATH] and compare["ahead_by"] == 1
    proposed = json.loads(on_branch(bare, DOCKER_PATH))
    assert proposed["Basset"] == "kipoi/kipoi-docker:basset-fixed", "the maintainer's edit is not reverted"


def test_a_branch_with_unmerged_changes_is_kept(gh: GitHubEmulator, bare: Path) -> None:
    """A branch whose change is not on the default branch (no pull request, or an open one)
    is written on, never reset, even after the default branch moved on."""
    first = with_new_group("FirstGroup", "kipoi/kipoi-docker:first")
    assert helper.write_json_to_kipoi(first, DOCKER, REPO) is True
    head = branch_sha(bare, "update-json")
    edit_on_master(gh, bare, "Basset", "kipoi/kipoi-docker:basset-fixed")
    assert helper.populate_json_from_kipoi(DOCKER, REPO) == first, "read from the branch"
    second = dict(first, SecondGroup="kipoi/kipoi-docker:second")
    assert helper.write_json_to_kipoi(second, DOCKER, REPO) is True
    assert git(bare, "rev-parse", "update-json^") == head
    assert calls(gh, "PATCH") == []


def test_emulator_update_ref_and_merge_follow_github(gh: GitHubEmulator, bare: Path) -> None:
    master = branch_sha(bare, "master")
    assert api(gh, "PATCH", "/git/refs/heads/nope", sha=master).json()["message"] == "Reference does not exist"
    assert helper.write_json_to_kipoi(with_new_group(), DOCKER, REPO) is True
    branch = branch_sha(bare, "update-json")
    back = api(gh, "PATCH", "/git/refs/heads/update-json", sha=master)
    assert (back.status_code, back.json()["message"]) == (422, "Update is not a fast forward")
    assert api(gh, "PATCH", "/git/refs/heads/update-json", sha="0" * 40).json()["message"] == "Object does not exist"
    forced = api(gh, "PATCH", "/git/refs/heads/update-json", sha=master, force=True)
    assert forced.status_code == 200 and forced.json()["object"]["sha"] == master
    assert api(gh, "PATCH", "/git/refs/heads/update-json", sha=branch).status_code == 200, "a fast forward"
    assert helper.create_pr(REPO)["number"] == 1  # type: ignore[index]
    assert api(gh, "PUT", "/pulls/1/merge", merge_method="rebase").status_code == 405
    assert api(gh, "PUT", "/pulls/1/merge", sha=master).status_code == 409
    squashed = api(gh, "PUT", "/pulls/1/merge", merge_method="squash").json()
    assert git(bare, "rev-parse", "master") == squashed["sha"] and git(bare, "rev-parse", "master^") == master
    assert on_branch(bare, DOCKER_PATH, "master") == on_branch(bare, DOCKER_PATH)
    assert api(gh, "PUT", "/pulls/1/merge").status_code == 405, "a closed pull request"
    assert api(gh, "GET", "/pulls/1").json()["merge_commit_sha"] == squashed["sha"]


def test_invalid_index_is_refused_before_anything_is_written(gh: GitHubEmulator, bare: Path) -> None:
    bad = dict(real_index(DOCKER), Broken=42)
    with pytest.raises(ZooError, match="Broken"):
        helper.write_json_to_kipoi(bad, DOCKER, REPO)
    assert branch_sha(bare, "update-json") is None and calls(gh, "PUT") == []


def test_transient_failures_are_retried(gh: GitHubEmulator, bare: Path) -> None:
    gh.inject(503, method="PUT", path_prefix=CONTENTS, times=2)
    gh.inject(429, method="GET", path_prefix=CONTENTS, retry_after=1)
    gh.inject(502, method="GET", path_prefix=f"/repos/{REPO}/git/ref", drop_connection=True)
    d = with_new_group()
    assert helper.write_json_to_kipoi(d, DOCKER, REPO) is True
    assert calls(gh, "PUT", CONTENTS) == [503, 503, 200]
    assert calls(gh, "GET", CONTENTS)[0] == 429
    assert on_branch(bare, DOCKER_PATH) == dumps(d)


def test_stalled_answers_time_out_after_kipoi_http_timeout(gh: GitHubEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    from kipoi_containers.errors import GitHubError

    monkeypatch.setenv("KIPOI_HTTP_TIMEOUT", "1")
    gh.before(lambda: time.sleep(2.5), method="GET", path_prefix=CONTENTS, times=4)
    started = time.monotonic()
    with pytest.raises(GitHubError) as info:
        helper.populate_json_from_kipoi(DOCKER, REPO)
    message = str(info.value)
    assert "after 4 attempt(s)" in message and "timed out" in message and "KIPOI_HTTP_TIMEOUT" in message, message
    assert f"{gh.url}{CONTENTS}?ref=master" in message, "the step names the redacted URL"
    assert time.monotonic() - started < 20


def test_bad_token_is_an_auth_error_naming_the_variables(gh: GitHubEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_PAT", "wrong-token-abcdef")
    with pytest.raises(GitHubAuthError) as info:
        helper.write_json_to_kipoi(with_new_group(), DOCKER, REPO)
    message = str(info.value)
    assert "401" in message and "Bad credentials" in message
    assert "GITHUB_PAT" in message and "GITHUB_TOKEN" in message
    assert "wrong-token-abcdef" not in message and TOKEN not in message
    assert isinstance(info.value, PermissionError)


def test_missing_token_fails_before_any_request(gh: GitHubEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GITHUB_PAT")
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    for write in (lambda: helper.write_json_to_kipoi(with_new_group(), DOCKER, REPO), lambda: helper.create_pr(REPO)):
        with pytest.raises(GitHubAuthError, match="GITHUB_PAT or GITHUB_TOKEN"):
            write()
    assert gh.requests_log == []
    # GITHUB_TOKEN alone is enough.
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    assert helper.write_json_to_kipoi(with_new_group(), DOCKER, REPO) is True


def test_upstream_names_accept_every_repo_form(gh: GitHubEmulator) -> None:
    expected = real_index(DOCKER)
    for repo in (REPO, f"github:{REPO}", FakeRepository()):
        assert helper.populate_json_from_kipoi(DOCKER, repo) == expected
        assert helper.branch_exists(repo) is False
    assert list(helper.populate_json_from_kipoi(DOCKER, REPO)) == list(expected), "key order is kept"
    with pytest.raises(ZooError, match="does not exist"):
        helper.populate_json_from_kipoi("nope.json", REPO)
    with pytest.raises(ZooError, match="OWNER/REPO"):
        helper.branch_exists("not-a-repo")


# ------------------------------------------------------------------------------ local git


def checkout_state(repo: Path) -> dict[str, Any]:
    """HEAD, the index file's bytes, the status and every working-tree file."""
    files = {
        str(p.relative_to(repo)): p.read_bytes()
        for p in sorted(repo.rglob("*"))
        if p.is_file() and ".git" not in p.relative_to(repo).parts
    }
    return {
        "head": git(repo, "symbolic-ref", "HEAD"),
        "head_sha": git(repo, "rev-parse", "HEAD"),
        "index": hashlib.sha256((repo / ".git" / "index").read_bytes()).hexdigest(),
        "status": git(repo, "status", "--porcelain", "--untracked-files=all"),
        "files": files,
    }


@pytest.fixture
def local_zoo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    repo = make_zoo(tmp_path / "zoo")
    # A dirty checkout: a modified tracked file, a staged change and an untracked file.
    (repo / "README.md").write_text("# local edits in progress\n")
    (repo / "Basset" / "model.yaml").write_text("type: keras\n# staged\n")
    git(repo, "add", "Basset/model.yaml")
    (repo / "notes.txt").write_text("untracked\n")
    # No identity anywhere: the engine must use its own.
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for var in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL"):
        monkeypatch.delenv(var, raising=False)
    return repo


def test_local_zoo_branch_holds_the_files_and_the_checkout_is_untouched(local_zoo: Path) -> None:
    before = checkout_state(local_zoo)
    master = git(local_zoo, "rev-parse", "master")
    assert helper.branch_exists(local_zoo) is False

    d = with_new_group()
    assert helper.write_json_to_kipoi(d, DOCKER, str(local_zoo)) is True
    assert on_branch(local_zoo, DOCKER_PATH) == dumps(d)
    assert git(local_zoo, "rev-parse", "update-json^") == master, "created from HEAD's branch head"
    assert git(local_zoo, "log", "-1", "--format=%s|%an <%ae>|%cn <%ce>", "update-json") == (
        "Updating model-to-docker.json|kipoi-containers <kipoi-containers@users.noreply.github.com>"
        "|kipoi-containers <kipoi-containers@users.noreply.github.com>"
    )
    # Only the file changed on the branch; the staged and unstaged edits are not in it.
    assert git(local_zoo, "diff", "--name-only", "master", "update-json") == DOCKER_PATH
    assert checkout_state(local_zoo) == before, "working tree, index and HEAD untouched"

    head = branch_sha(local_zoo, "update-json")
    assert helper.write_json_to_kipoi(d, DOCKER, str(local_zoo)) is False
    assert branch_sha(local_zoo, "update-json") == head, "the same content again makes no commit"

    singularity = real_index(SINGULARITY)
    singularity.pop("DeepCpG_DNA")
    assert helper.write_json_to_kipoi(singularity, SINGULARITY, local_zoo) is True
    assert git(local_zoo, "rev-parse", "update-json^") == head
    assert on_branch(local_zoo, SINGULARITY_PATH) == dumps(singularity)
    assert on_branch(local_zoo, DOCKER_PATH) == dumps(d)
    assert checkout_state(local_zoo) == before

    # Upstream's read follows the branch; there are no pull requests locally.
    assert helper.branch_exists(str(local_zoo)) is True
    assert helper.populate_json_from_kipoi(DOCKER, str(local_zoo)) == d
    assert helper.create_pr(str(local_zoo)) is None


def test_local_zoo_unchanged_content_creates_no_branch(local_zoo: Path) -> None:
    assert helper.write_json_to_kipoi(real_index(DOCKER), DOCKER, str(local_zoo)) is False
    assert branch_sha(local_zoo, "update-json") is None
    assert helper.populate_json_from_kipoi(DOCKER, str(local_zoo)) == real_index(DOCKER)


def test_local_zoo_uses_the_configured_identity(local_zoo: Path) -> None:
    git(local_zoo, "config", "user.name", "Configured Person")
    git(local_zoo, "config", "user.email", "configured@example.invalid")
    assert helper.write_json_to_kipoi(with_new_group(), DOCKER, str(local_zoo)) is True
    assert (
        git(local_zoo, "log", "-1", "--format=%cn <%ce>", "update-json")
        == "Configured Person <configured@example.invalid>"
    )


def test_local_zoo_refuses_a_checked_out_branch(local_zoo: Path) -> None:
    git(local_zoo, "stash", "-u", "-q")
    git(local_zoo, "checkout", "-q", "-b", "update-json")
    with pytest.raises(ZooError, match="checked out"):
        helper.write_json_to_kipoi(with_new_group(), DOCKER, str(local_zoo))
    assert git(local_zoo, "rev-parse", "update-json") == git(local_zoo, "rev-parse", "master")


def test_local_zoo_concurrent_writers_all_land(local_zoo: Path) -> None:
    # Each writer adds its own key to the same base; the branch moves under the others, so
    # every lost compare-and-swap must re-read and re-apply, and no key may be lost.
    import concurrent.futures

    base = real_index(DOCKER)
    names = [f"Writer{i}" for i in range(6)]

    def write(name: str) -> bool:
        return helper.write_json_to_kipoi(
            dict(base, **{name: f"kipoi/kipoi-docker:{name.lower()}"}), DOCKER, str(local_zoo)
        )

    with concurrent.futures.ThreadPoolExecutor(len(names)) as pool:
        assert list(pool.map(write, names)) == [True] * len(names)
    final = json.loads(on_branch(local_zoo, DOCKER_PATH))
    assert all(final[name] == f"kipoi/kipoi-docker:{name.lower()}" for name in names), final
    assert len(git(local_zoo, "rev-list", "master..update-json").split()) == len(names)


def test_local_zoo_merged_branch_restarts_from_the_checked_out_branch(tmp_path: Path) -> None:
    repo = make_zoo(tmp_path / "clean")
    first = with_new_group("FirstGroup", "kipoi/kipoi-docker:first")
    assert helper.write_json_to_kipoi(first, DOCKER, str(repo)) is True
    stale = branch_sha(repo, "update-json")
    git(repo, "merge", "-q", "--squash", "update-json")
    git(repo, "commit", "-q", "-m", "squashed")
    fixed = dict(first, Basset="kipoi/kipoi-docker:basset-fixed")
    (repo / DOCKER_PATH).write_bytes(dumps(fixed))
    git(repo, "commit", "-q", "-am", "fix by hand")
    assert helper.populate_json_from_kipoi(DOCKER, str(repo)) == fixed

    second = dict(fixed, SecondGroup="kipoi/kipoi-docker:second")
    assert helper.write_json_to_kipoi(second, DOCKER, str(repo)) is True
    assert git(repo, "rev-parse", "update-json^") == git(repo, "rev-parse", "master") != stale
    assert git(repo, "diff", "--name-only", "master", "update-json") == DOCKER_PATH
    assert json.loads(on_branch(repo, DOCKER_PATH)) == second
