"""Tests of the GitHub REST emulator (tests/emulators/github.py) through real HTTP.

Every test talks to the emulator with ``requests`` and checks the answers
against the backing git repository with the ``git`` command line.
"""

from __future__ import annotations

import base64
import concurrent.futures
import hashlib
import json
import os
import selectors
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from urllib3.util import SKIP_HEADER

from tests.emulators.github import GitHubEmulator

TOKEN = "test-token"
AUTH = {"Authorization": f"token {TOKEN}", "User-Agent": "emulator-tests"}
ANON = {"User-Agent": "emulator-tests"}
GIT_ID = ["-c", "user.name=Test Author", "-c", "user.email=author@example.com"]
PROJECT_ROOT = Path(__file__).resolve().parents[2]
BIG_TEXT = b"".join(b"line %02d of a file long enough to need several base64 lines\n" % i for i in range(5))
DOCKER_JSON = {"Basset": "kipoi/kipoi-docker:sharedpy3keras2tf2", "DeepSEA": "kipoi/kipoi-docker:deepsea"}


def git(repo: Path, *args: str, input: bytes | None = None) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    proc = subprocess.run(
        ["git", "-C", str(repo), *GIT_ID, *args], input=input, capture_output=True, env=env, check=True
    )
    return proc.stdout.decode().strip()


def write(repo: Path, rel: str, data: bytes | str) -> None:
    path = repo / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)


def commit_all(repo: Path, message: str) -> str:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def blob_sha(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def b64(data: bytes | str) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A model-zoo-like repository with a diverged branch, an orphan branch and more.

    ::

        c1 -- c2 -- c4            master   (c4 adds CpGenie/)
               |\\
               | c3               feature  (renames old_name.txt, edits README, adds DeepSEA/)
               | bulk             many     (adds 350 files)
               v1 (tag at c2)
        orphan                    rewritten (no common ancestor with master)
    """
    src = tmp_path_factory.mktemp("zoo") / "models"
    git(src.parent, "init", "-q", "-b", "master", str(src))
    write(src, "README.md", "# Kipoi models\n")
    write(src, "shared/containers/model-to-docker.json", json.dumps({"Basset": "old"}, indent=4))
    write(src, "Basset/model.yaml", "type: keras\n")
    write(src, "MMSplice/mtsplice/model.yaml", "type: custom\n")
    write(src, "data/big.txt", BIG_TEXT)
    write(src, "old_name.txt", "a file that will be renamed on the feature branch\n")
    c1 = commit_all(src, "initial zoo")
    write(src, "shared/containers/model-to-docker.json", json.dumps(DOCKER_JSON, indent=4))
    write(src, "Basset/models.tsv", "model\nBasset\n")
    c2 = commit_all(src, "second commit\n\nwith a body")
    git(src, "tag", "v1")
    git(src, "checkout", "-q", "-b", "feature")
    git(src, "mv", "old_name.txt", "new_name.txt")
    write(src, "README.md", "# Kipoi models\n\nmore text\n")
    write(src, "DeepSEA/model.yaml", "type: pytorch\n")
    c3 = commit_all(src, "feature work")
    git(src, "checkout", "-q", "-b", "many", c2)
    for i in range(350):
        write(src, f"bulk/f{i:03d}.txt", f"{i}\n")
    many = commit_all(src, "many files")
    git(src, "checkout", "-q", "master")
    write(src, "CpGenie/model.yaml", "type: keras\n")
    c4 = commit_all(src, "master moves on")
    git(src, "checkout", "-q", "--orphan", "rewritten")
    git(src, "rm", "-rq", "--cached", ".")
    orphan = commit_all(src, "rewritten history")
    git(src, "checkout", "-q", "-f", "master")
    git(src, "branch", "topic/slash", c3)
    for i in range(31):
        git(src, "branch", f"zz-{i:02d}", c1)
    return {"src": src, "c1": c1, "c2": c2, "c3": c3, "c4": c4, "many": many, "orphan": orphan}


@pytest.fixture
def bare(history: dict[str, Any], tmp_path: Path) -> Path:
    """A fresh bare clone of the history (writes never leak between tests)."""
    path = tmp_path / "models.git"
    git(tmp_path, "clone", "-q", "--bare", str(history["src"]), str(path))
    return path


@pytest.fixture
def gh(bare: Path) -> Iterator[GitHubEmulator]:
    with GitHubEmulator({"kipoi/models": bare}, token=TOKEN) as emulator:
        yield emulator
        assert emulator.server_errors == []


def get(gh: GitHubEmulator, path: str, headers: dict[str, str] | None = None, **params: Any) -> requests.Response:
    return requests.get(gh.url + path, headers=AUTH if headers is None else headers, params=params or None, timeout=10)


def put_file(
    gh: GitHubEmulator, path: str, body: dict[str, Any], headers: dict[str, str] | None = None
) -> requests.Response:
    return requests.put(
        f"{gh.url}/repos/kipoi/models/contents/{path}",
        json=body,
        headers=AUTH if headers is None else headers,
        timeout=10,
    )


def assert_error(resp: requests.Response, status: int, message: str | None = None) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["status"] == str(status)
    assert body["documentation_url"].startswith("https://docs.github.com/")
    if message is not None:
        assert body["message"] == message
    return body


# ----------------------------------------------------------------- G0 accounts and repository


def test_repository_shape_and_default_branch(gh: GitHubEmulator, bare: Path) -> None:
    resp = get(gh, "/repos/kipoi/models")
    assert resp.status_code == 200
    repo = resp.json()
    assert repo["full_name"] == "kipoi/models" and repo["name"] == "models"
    assert repo["default_branch"] == "master"
    assert repo["url"] == f"{gh.url}/repos/kipoi/models"
    assert repo["private"] is False and isinstance(repo["id"], int) and repo["node_id"]
    owner = repo["owner"]
    assert owner["login"] == "kipoi" and owner["type"] == "Organization"
    for key in ("id", "node_id", "avatar_url", "gravatar_id", "url", "html_url", "repos_url", "site_admin"):
        assert key in owner
    assert repo["permissions"]["push"] is True
    assert Path(repo["clone_url"].removeprefix("file://")).resolve() == bare.resolve()
    # names are case-insensitive, as on GitHub
    assert get(gh, "/repos/Kipoi/Models").json()["full_name"] == "kipoi/models"


def test_default_branch_follows_head(history: dict[str, Any], tmp_path: Path) -> None:
    path = tmp_path / "main-head.git"
    git(tmp_path, "clone", "-q", "--bare", str(history["src"]), str(path))
    git(path, "symbolic-ref", "HEAD", "refs/heads/feature")
    with GitHubEmulator({"kipoi/models": path}) as gh:
        assert get(gh, "/repos/kipoi/models").json()["default_branch"] == "feature"
        readme = get(gh, "/repos/kipoi/models/contents/README.md").json()
        assert base64.b64decode(readme["content"]) == b"# Kipoi models\n\nmore text\n"


def test_user_and_org(gh: GitHubEmulator) -> None:
    user = get(gh, "/user")
    assert user.status_code == 200 and user.json()["login"] == "test-user"
    assert user.json()["type"] == "User"
    assert_error(get(gh, "/user", headers=ANON), 401, "Requires authentication")
    org = get(gh, "/orgs/kipoi")
    assert org.status_code == 200
    assert org.json()["login"] == "kipoi" and org.json()["type"] == "Organization"
    assert_error(get(gh, "/orgs/not-an-org"), 404, "Not Found")


def test_unknown_routes_and_repos_are_404(gh: GitHubEmulator) -> None:
    assert_error(get(gh, "/repos/kipoi/other"), 404, "Not Found")
    assert_error(get(gh, "/repos/kipoi/models/issues"), 404, "Not Found")
    assert_error(get(gh, "/definitely/not/an/endpoint"), 404, "Not Found")
    assert_error(requests.delete(gh.url + "/repos/kipoi/models", headers=AUTH, timeout=10), 404, "Not Found")


# ----------------------------------------------------------------- G1/G2 branches


def test_branch_detail_and_missing_branch(gh: GitHubEmulator, history: dict[str, Any]) -> None:
    resp = get(gh, "/repos/kipoi/models/branches/master")
    assert resp.status_code == 200
    branch = resp.json()
    assert branch["name"] == "master" and branch["protected"] is False
    assert branch["commit"]["sha"] == history["c4"]
    assert branch["commit"]["commit"]["message"] == "master moves on"
    assert branch["commit"]["parents"][0]["sha"] == history["c2"]
    assert set(branch["_links"]) == {"self", "html"}
    slash = get(gh, "/repos/kipoi/models/branches/topic/slash")
    assert slash.status_code == 200 and slash.json()["commit"]["sha"] == history["c3"]
    assert_error(get(gh, "/repos/kipoi/models/branches/update-json"), 404, "Branch not found")


def test_branches_pagination_and_link_header(gh: GitHubEmulator, bare: Path) -> None:
    expected = git(bare, "for-each-ref", "--format=%(refname:strip=2) %(objectname)", "refs/heads/").splitlines()
    assert len(expected) == 36
    first = get(gh, "/repos/kipoi/models/branches")
    assert first.status_code == 200
    assert len(first.json()) == 30  # default per_page
    assert set(first.links) == {"next", "last"}
    assert first.links["next"]["url"].startswith(gh.url + "/repos/kipoi/models/branches?")
    assert "page=2" in first.links["next"]["url"] and "page=2" in first.links["last"]["url"]

    seen: list[str] = []
    url: str | None = f"{gh.url}/repos/kipoi/models/branches?per_page=10"
    pages = 0
    while url:
        resp = requests.get(url, headers=AUTH, timeout=10)
        pages += 1
        seen += [f"{b['name']} {b['commit']['sha']}" for b in resp.json()]
        if pages > 1:
            assert {"prev", "first"} <= set(resp.links)
        url = resp.links.get("next", {}).get("url")
    assert pages == 4
    assert seen == expected
    last = requests.get(f"{gh.url}/repos/kipoi/models/branches?per_page=10&page=4", headers=AUTH, timeout=10)
    assert set(last.links) == {"prev", "first"} and len(last.json()) == 6
    # per_page is capped at 100: one page, no Link header
    everything = get(gh, "/repos/kipoi/models/branches", per_page=500)
    assert len(everything.json()) == 36 and "Link" not in everything.headers


# ----------------------------------------------------------------- commits


def test_single_commit_by_sha_branch_and_tag(gh: GitHubEmulator, history: dict[str, Any]) -> None:
    c2 = history["c2"]
    for ref in (c2, c2[:10], "v1"):
        resp = get(gh, f"/repos/kipoi/models/commits/{ref}")
        assert resp.status_code == 200, ref
        body = resp.json()
        assert body["sha"] == c2
    for key in ("sha", "node_id", "url", "html_url", "comments_url", "commit", "author", "committer", "parents"):
        assert key in body
    inner = body["commit"]
    assert inner["message"] == "second commit\n\nwith a body"
    assert inner["author"] == {"name": "Test Author", "email": "author@example.com", "date": inner["author"]["date"]}
    assert inner["author"]["date"].endswith("Z")
    assert inner["tree"]["sha"] == git(history["src"], "rev-parse", f"{c2}^{{tree}}")
    assert inner["comment_count"] == 0 and inner["verification"]["verified"] is False
    assert body["author"] is None and body["committer"] is None
    assert body["parents"] == [
        {
            "sha": history["c1"],
            "url": f"{gh.url}/repos/kipoi/models/commits/{history['c1']}",
            "html_url": body["parents"][0]["html_url"],
        }
    ]
    assert {f["filename"]: f["status"] for f in body["files"]} == {
        "shared/containers/model-to-docker.json": "modified",
        "Basset/models.tsv": "added",
    }
    assert body["stats"]["total"] == body["stats"]["additions"] + body["stats"]["deletions"] > 0
    assert get(gh, "/repos/kipoi/models/commits/master").json()["sha"] == history["c4"]
    assert_error(get(gh, "/repos/kipoi/models/commits/nope"), 422, "No commit found for SHA: nope")


def test_git_commit_object(gh: GitHubEmulator, history: dict[str, Any]) -> None:
    resp = get(gh, f"/repos/kipoi/models/git/commits/{history['c3']}")
    assert resp.status_code == 200
    body = resp.json()
    assert body["sha"] == history["c3"]
    assert body["message"] == "feature work"
    assert body["tree"]["sha"] == git(history["src"], "rev-parse", f"{history['c3']}^{{tree}}")
    assert [p["sha"] for p in body["parents"]] == [history["c2"]]
    assert body["author"]["name"] == "Test Author" and body["committer"]["email"] == "author@example.com"
    assert set(body["verification"]) >= {"verified", "reason", "signature", "payload"}
    assert_error(get(gh, "/repos/kipoi/models/git/commits/" + "0" * 40), 404, "Not Found")
    assert_error(get(gh, "/repos/kipoi/models/git/commits/master"), 404, "Not Found")


# ----------------------------------------------------------------- trees


def ls_tree(repo: Path, treeish: str, recursive: bool) -> list[dict[str, str]]:
    args = ["ls-tree", "-z"] + (["-r", "-t"] if recursive else []) + [treeish]
    out = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, check=True).stdout
    rows = []
    for rec in out.split(b"\0"):
        if rec:
            meta, _, path = rec.partition(b"\t")
            mode, kind, sha = meta.decode().split()
            rows.append({"path": path.decode(), "mode": mode, "type": kind, "sha": sha})
    return rows


def test_tree_equals_git_ls_tree(gh: GitHubEmulator, bare: Path) -> None:
    resp = get(gh, "/repos/kipoi/models/git/trees/master", recursive="1")
    assert resp.status_code == 200
    body = resp.json()
    tree_sha = git(bare, "rev-parse", "master^{tree}")
    assert body["sha"] == tree_sha and body["truncated"] is False
    assert body["url"] == f"{gh.url}/repos/kipoi/models/git/trees/{tree_sha}"
    stripped = [{k: e[k] for k in ("path", "mode", "type", "sha")} for e in body["tree"]]
    assert stripped == ls_tree(bare, "master", recursive=True)
    for entry in body["tree"]:
        if entry["type"] == "blob":
            assert entry["size"] == int(git(bare, "cat-file", "-s", entry["sha"]))
            assert entry["url"].endswith(f"/git/blobs/{entry['sha']}")
        else:
            assert "size" not in entry and entry["url"].endswith(f"/git/trees/{entry['sha']}")
    # by tree sha, not recursive: only the top level
    flat = get(gh, f"/repos/kipoi/models/git/trees/{tree_sha}").json()
    assert [{k: e[k] for k in ("path", "mode", "type", "sha")} for e in flat["tree"]] == ls_tree(bare, tree_sha, False)
    # GitHub: *any* value of `recursive` recurses
    assert len(get(gh, "/repos/kipoi/models/git/trees/master", recursive="false").json()["tree"]) == len(stripped)
    assert_error(get(gh, "/repos/kipoi/models/git/trees/" + "1" * 40), 404, "Not Found")


def test_tree_truncation(bare: Path) -> None:
    with GitHubEmulator({"kipoi/models": bare}, tree_entry_limit=5) as gh:
        body = get(gh, "/repos/kipoi/models/git/trees/many", recursive="1").json()
    assert body["truncated"] is True
    assert [e["path"] for e in body["tree"]] == [e["path"] for e in ls_tree(bare, "many", True)[:5]]


def test_tree_and_contents_survive_a_missing_blob(tmp_path: Path) -> None:
    """Partial-clone simulation: a blob object is absent from the store."""
    repo = tmp_path / "partial"
    git(tmp_path, "init", "-q", "-b", "master", str(repo))
    write(repo, "kept.txt", "kept\n")
    write(repo, "dir/gone.bin", "this blob will be deleted from the object store\n")
    commit_all(repo, "two files")
    gone = git(repo, "rev-parse", "HEAD:dir/gone.bin")
    (repo / ".git" / "objects" / gone[:2] / gone[2:]).unlink()
    assert subprocess.run(["git", "-C", str(repo), "cat-file", "-e", gone], capture_output=True).returncode != 0
    with GitHubEmulator({"kipoi/partial": repo}) as gh:
        resp = get(gh, "/repos/kipoi/partial/git/trees/master", recursive="1")
        assert resp.status_code == 200, resp.text
        entries = {e["path"]: e for e in resp.json()["tree"]}
        assert set(entries) == {"dir", "dir/gone.bin", "kept.txt"}
        assert entries["dir/gone.bin"]["sha"] == gone and "size" not in entries["dir/gone.bin"]
        assert entries["kept.txt"]["size"] == 5
        kept = get(gh, "/repos/kipoi/partial/contents/kept.txt").json()
        assert base64.b64decode(kept["content"]) == b"kept\n"
        assert get(gh, "/repos/kipoi/partial/contents/dir").status_code == 200
        assert gh.server_errors == []


# ----------------------------------------------------------------- G3 compare


def test_compare_uses_merge_base_three_dot(gh: GitHubEmulator, history: dict[str, Any]) -> None:
    resp = get(gh, "/repos/kipoi/models/compare/master...feature")
    assert resp.status_code == 200
    body = resp.json()
    assert body["status"] == "diverged"
    assert (body["ahead_by"], body["behind_by"], body["total_commits"]) == (1, 1, 1)
    assert body["base_commit"]["sha"] == history["c4"]
    assert body["merge_base_commit"]["sha"] == history["c2"]
    assert [c["sha"] for c in body["commits"]] == [history["c3"]]
    files = {f["filename"]: f for f in body["files"]}
    # merge-base..head, *not* the tree diff master..feature (which would list CpGenie/ too)
    assert set(files) == {"README.md", "new_name.txt", "DeepSEA/model.yaml"}
    assert files["new_name.txt"]["status"] == "renamed"
    assert files["new_name.txt"]["previous_filename"] == "old_name.txt"
    assert files["README.md"]["status"] == "modified"
    assert (files["README.md"]["additions"], files["README.md"]["deletions"]) == (2, 0)
    assert files["README.md"]["changes"] == 2
    assert files["DeepSEA/model.yaml"]["status"] == "added"
    assert all("previous_filename" not in f for name, f in files.items() if name != "new_name.txt")
    assert files["README.md"]["sha"] == git(history["src"], "rev-parse", "feature:README.md")
    for f in files.values():
        for key in ("blob_url", "raw_url", "contents_url"):
            assert f[key].startswith(gh.url)
    raw = requests.get(files["DeepSEA/model.yaml"]["raw_url"], timeout=10)
    assert raw.status_code == 200 and raw.content == b"type: pytorch\n"
    name_status = git(history["src"], "diff", "--name-only", "-M", "master...feature").splitlines()
    assert set(name_status) == set(files)


def test_compare_statuses(gh: GitHubEmulator, history: dict[str, Any]) -> None:
    c1, c2 = history["c1"], history["c2"]
    ahead = get(gh, f"/repos/kipoi/models/compare/{c1}...{c2}").json()
    assert (ahead["status"], ahead["ahead_by"], ahead["behind_by"]) == ("ahead", 1, 0)
    assert {f["filename"] for f in ahead["files"]} == {"shared/containers/model-to-docker.json", "Basset/models.tsv"}
    behind = get(gh, f"/repos/kipoi/models/compare/{c2}...{c1}").json()
    assert (behind["status"], behind["ahead_by"], behind["behind_by"]) == ("behind", 0, 1)
    assert behind["files"] == [] and behind["commits"] == []
    same = get(gh, "/repos/kipoi/models/compare/v1...master~0".replace("master~0", c2)).json()
    assert same["status"] == "identical" and same["files"] == []
    # PyGithub URL-quotes both sides; the owner:branch form is accepted too
    quoted = get(gh, "/repos/kipoi/models/compare/kipoi%3Amaster...topic%2Fslash").json()
    assert quoted["merge_base_commit"]["sha"] == c2


def test_compare_not_found_cases(gh: GitHubEmulator) -> None:
    assert_error(get(gh, "/repos/kipoi/models/compare/master..." + "a" * 40), 404, "Not Found")
    assert_error(get(gh, "/repos/kipoi/models/compare/nope...master"), 404, "Not Found")
    assert_error(
        get(gh, "/repos/kipoi/models/compare/master...rewritten"),
        404,
        "No common ancestor between master and rewritten.",
    )


def test_compare_files_capped_at_300_and_paged(gh: GitHubEmulator, history: dict[str, Any]) -> None:
    body = get(gh, "/repos/kipoi/models/compare/v1...many").json()
    assert body["ahead_by"] == 1
    assert len(body["files"]) == 300
    assert body["files"][0]["filename"] == "bulk/f000.txt"
    page2 = get(gh, "/repos/kipoi/models/compare/c1...feature".replace("c1", history["c1"]), per_page="1", page="2")
    assert page2.status_code == 200
    assert "files" not in page2.json()  # files only on page 1
    assert [c["sha"] for c in page2.json()["commits"]] == [history["c3"]]
    assert set(page2.links) == {"prev", "first"}
    page1 = get(gh, f"/repos/kipoi/models/compare/{history['c1']}...feature", per_page="1")
    assert [c["sha"] for c in page1.json()["commits"]] == [history["c2"]] and "files" in page1.json()
    assert "next" in page1.links


# ----------------------------------------------------------------- G4 contents


def test_contents_file_is_wrapped_base64(gh: GitHubEmulator, bare: Path) -> None:
    resp = get(gh, "/repos/kipoi/models/contents/data/big.txt")
    assert resp.status_code == 200
    body = resp.json()
    assert (body["type"], body["encoding"], body["name"], body["path"]) == ("file", "base64", "big.txt", "data/big.txt")
    assert body["size"] == len(BIG_TEXT)
    assert body["sha"] == blob_sha(BIG_TEXT) == git(bare, "rev-parse", "master:data/big.txt")
    lines = body["content"].split("\n")
    assert lines[-1] == "" and len(lines) > 3  # ends with a newline, several lines
    assert all(len(line) == 60 for line in lines[:-2]) and 0 < len(lines[-2]) <= 60
    assert base64.b64decode(body["content"]) == BIG_TEXT
    assert base64.b64decode("".join(body["content"].split()), validate=True) == BIG_TEXT
    for key in ("url", "git_url", "html_url", "download_url"):
        assert body[key].startswith(gh.url)
    assert body["_links"]["self"] == body["url"]
    raw = requests.get(body["download_url"], timeout=10)
    assert raw.status_code == 200 and raw.content == BIG_TEXT


def test_contents_ref_directory_and_errors(gh: GitHubEmulator, history: dict[str, Any]) -> None:
    old = get(gh, "/repos/kipoi/models/contents/shared/containers/model-to-docker.json", ref="v1")
    assert json.loads(base64.b64decode(old.json()["content"])) == DOCKER_JSON
    first = get(gh, "/repos/kipoi/models/contents/shared/containers/model-to-docker.json", ref=history["c1"])
    assert json.loads(base64.b64decode(first.json()["content"])) == {"Basset": "old"}
    feature_only = get(gh, "/repos/kipoi/models/contents/DeepSEA/model.yaml", ref="topic/slash")
    assert feature_only.status_code == 200
    assert_error(get(gh, "/repos/kipoi/models/contents/DeepSEA/model.yaml"), 404, "Not Found")
    assert_error(get(gh, "/repos/kipoi/models/contents/README.md", ref="nope"), 404, "No commit found for the ref nope")

    listing = get(gh, "/repos/kipoi/models/contents/MMSplice")
    assert listing.status_code == 200 and isinstance(listing.json(), list)
    [sub] = listing.json()
    assert (sub["type"], sub["name"], sub["path"], sub["download_url"]) == (
        "dir",
        "mtsplice",
        "MMSplice/mtsplice",
        None,
    )
    root = get(gh, "/repos/kipoi/models/contents").json()
    by_name = {e["name"]: e for e in root}
    assert set(by_name) == {e["path"] for e in ls_tree(history["src"], "master", False)}
    assert by_name["README.md"]["type"] == "file" and by_name["README.md"]["size"] == len("# Kipoi models\n")
    assert by_name["README.md"]["download_url"].endswith("/raw/kipoi/models/master/README.md")
    assert all("content" not in e for e in root)


def test_contents_media_types_and_large_files(gh: GitHubEmulator) -> None:
    raw = get(
        gh, "/repos/kipoi/models/contents/data/big.txt", headers={**AUTH, "Accept": "application/vnd.github.raw+json"}
    )
    assert raw.status_code == 200 and raw.content == BIG_TEXT
    gh.content_inline_limit = 100  # pretend data/big.txt is over the 1 MB inline limit
    big = get(gh, "/repos/kipoi/models/contents/data/big.txt").json()
    assert (big["content"], big["encoding"], big["size"]) == ("", "none", len(BIG_TEXT))


def test_raw_endpoint(gh: GitHubEmulator, history: dict[str, Any]) -> None:
    resp = requests.get(f"{gh.url}/raw/kipoi/models/topic/slash/DeepSEA/model.yaml", timeout=10)
    assert resp.status_code == 200 and resp.content == b"type: pytorch\n"
    by_sha = requests.get(f"{gh.url}/raw/kipoi/models/{history['c1']}/README.md", timeout=10)
    assert by_sha.content == b"# Kipoi models\n"
    assert requests.get(f"{gh.url}/raw/kipoi/models/master/missing.txt", timeout=10).status_code == 404


# ----------------------------------------------------------------- G5 create or update contents


def test_put_contents_outcome_table(gh: GitHubEmulator, bare: Path) -> None:
    path = "shared/containers/model-to-docker.json"
    current = get(gh, f"/repos/kipoi/models/contents/{path}").json()["sha"]
    head_before = git(bare, "rev-parse", "master")

    no_sha = put_file(gh, path, {"message": "m", "content": b64("x")})
    assert_error(no_sha, 422, 'Invalid request.\n\n"sha" wasn\'t supplied.')
    wrong = put_file(gh, path, {"message": "m", "content": b64("x"), "sha": "0" * 40})
    body = assert_error(wrong, 409, f"{path} does not match {'0' * 40}")
    assert "errors" not in body
    missing_branch = put_file(gh, path, {"message": "m", "content": b64("x"), "sha": "0" * 40, "branch": "update-json"})
    assert_error(missing_branch, 404)  # the branch is checked before the sha
    assert git(bare, "rev-parse", "master") == head_before  # nothing written so far

    new_text = json.dumps({**DOCKER_JSON, "CleTimer": "kipoi/kipoi-docker:cletimer"}, indent=4)
    ok = put_file(gh, path, {"message": f"Updating {path}", "content": b64(new_text), "sha": current})
    assert ok.status_code == 200, ok.text
    result = ok.json()
    head = git(bare, "rev-parse", "master")
    assert result["commit"]["sha"] == head
    assert [p["sha"] for p in result["commit"]["parents"]] == [head_before]
    assert result["commit"]["message"] == f"Updating {path}"
    assert result["commit"]["tree"]["sha"] == git(bare, "rev-parse", "master^{tree}")
    assert result["content"]["sha"] == blob_sha(new_text.encode()) == git(bare, "rev-parse", f"master:{path}")
    assert result["content"]["path"] == path and "content" not in result["content"]
    assert git(bare, "show", f"master:{path}") == new_text
    assert git(bare, "log", "-1", "--format=%s|%an", "master") == f"Updating {path}|test-user"
    # only the one file changed in the new commit
    assert git(bare, "diff-tree", "--no-commit-id", "--name-only", "-r", head) == path

    created = put_file(gh, "brand/new/file.txt", {"message": "add", "content": b64("hi\n"), "sha": "ignored"})
    assert created.status_code == 201, created.text
    assert git(bare, "show", "master:brand/new/file.txt") == "hi"
    assert git(bare, "rev-parse", "master~1") == head


def test_put_contents_validation(gh: GitHubEmulator, bare: Path) -> None:
    head = git(bare, "rev-parse", "master")
    assert_error(put_file(gh, "x.txt", {"content": b64("x")}), 422, 'Invalid request.\n\n"message" wasn\'t supplied.')
    assert_error(
        put_file(gh, "x.txt", {"message": "m", "content": "%%% not base64"}), 422, "content is not valid Base64"
    )
    assert_error(put_file(gh, "x.txt", {"message": "m", "content": b64("x"), "committer": {"name": "only name"}}), 422)
    assert_error(put_file(gh, "x.txt", {"message": "m", "content": b64("x"), "author": {"email": "a@b.c"}}), 422)
    assert_error(put_file(gh, "Basset", {"message": "m", "content": b64("x")}), 422)  # a directory
    assert_error(put_file(gh, "README.md/inner", {"message": "m", "content": b64("x")}), 422)  # through a file
    anon = put_file(gh, "x.txt", {"message": "m", "content": b64("x")}, headers=ANON)
    assert_error(anon, 401, "Requires authentication")
    assert git(bare, "rev-parse", "master") == head


def test_put_contents_author_committer_and_branch(gh: GitHubEmulator, bare: Path, history: dict[str, Any]) -> None:
    body = {
        "message": "with people",
        "content": b64("people\n"),
        "branch": "feature",
        "committer": {"name": "Bot", "email": "bot@example.com"},
        "author": {"name": "Ada", "email": "ada@example.com", "date": "2020-01-02T03:04:05Z"},
    }
    resp = put_file(gh, "people.txt", body)
    assert resp.status_code == 201, resp.text
    out = resp.json()["commit"]
    assert out["author"] == {"name": "Ada", "email": "ada@example.com", "date": "2020-01-02T03:04:05Z"}
    assert out["committer"]["name"] == "Bot"
    assert git(bare, "log", "-1", "--format=%an <%ae> %at|%cn <%ce>", "feature") == (
        "Ada <ada@example.com> 1577934245|Bot <bot@example.com>"
    )
    assert git(bare, "rev-parse", "feature~1") == history["c3"]
    assert git(bare, "rev-parse", "master") == history["c4"]  # other branches untouched


def test_put_contents_on_non_bare_repo_leaves_work_tree_alone(history: dict[str, Any], tmp_path: Path) -> None:
    repo = tmp_path / "checkout"
    git(tmp_path, "clone", "-q", str(history["src"]), str(repo))
    git(repo, "branch", "update-json", "origin/master")
    before = (repo / "README.md").read_bytes()
    with GitHubEmulator({"kipoi/models": repo}) as gh:
        sha = get(gh, "/repos/kipoi/models/contents/README.md", ref="update-json").json()["sha"]
        resp = put_file(
            gh, "README.md", {"message": "edit", "content": b64("changed\n"), "sha": sha, "branch": "update-json"}
        )
        assert resp.status_code == 200, resp.text
    assert (repo / "README.md").read_bytes() == before
    assert git(repo, "show", "update-json:README.md") == "changed"
    assert git(repo, "status", "--porcelain") == ""  # checked-out master is untouched


def test_concurrent_writes_are_serialised(gh: GitHubEmulator, bare: Path) -> None:
    head = git(bare, "rev-parse", "master")

    def create(i: int) -> int:
        return put_file(gh, f"concurrent/f{i}.txt", {"message": f"c{i}", "content": b64(f"{i}\n")}).status_code

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(create, range(8)))
    assert statuses == [201] * 8
    assert git(bare, "rev-list", "--count", f"{head}..master") == "8"
    assert len(git(bare, "ls-tree", "--name-only", "master", "concurrent/").splitlines()) == 8


# ----------------------------------------------------------------- G6 refs


def test_create_ref(gh: GitHubEmulator, bare: Path, history: dict[str, Any]) -> None:
    url = f"{gh.url}/repos/kipoi/models/git/refs"
    resp = requests.post(url, json={"ref": "refs/heads/update-json", "sha": history["c4"]}, headers=AUTH, timeout=10)
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["ref"] == "refs/heads/update-json" and body["node_id"]
    assert body["object"] == {
        "type": "commit",
        "sha": history["c4"],
        "url": f"{gh.url}/repos/kipoi/models/git/commits/{history['c4']}",
    }
    assert body["url"] == f"{gh.url}/repos/kipoi/models/git/refs/heads/update-json"
    assert git(bare, "rev-parse", "refs/heads/update-json") == history["c4"]
    assert get(gh, "/repos/kipoi/models/git/ref/heads/update-json").json()["object"]["sha"] == history["c4"]

    def post(ref: str, sha: str) -> requests.Response:
        return requests.post(url, json={"ref": ref, "sha": sha}, headers=AUTH, timeout=10)

    assert_error(post("refs/heads/update-json", history["c1"]), 422, "Reference already exists")
    assert_error(post("heads/other", history["c1"]), 422)
    assert_error(post("refs/other", history["c1"]), 422)
    assert_error(post("refs/heads/bad..name", history["c1"]), 422)
    assert_error(post("refs/heads/other", "f" * 40), 422, "Object does not exist")
    assert_error(requests.post(url, json={"ref": "refs/heads/x"}, headers=AUTH, timeout=10), 422)
    assert git(bare, "rev-parse", "refs/heads/update-json") == history["c4"]
    assert (
        subprocess.run(
            ["git", "-C", str(bare), "rev-parse", "-q", "--verify", "refs/heads/other"], capture_output=True
        ).returncode
        != 0
    )


# ----------------------------------------------------------------- G7 pulls


def test_pull_requests(gh: GitHubEmulator, bare: Path, history: dict[str, Any]) -> None:
    url = f"{gh.url}/repos/kipoi/models/pulls"

    def create(head: str, base: str = "master", **extra: Any) -> requests.Response:
        payload = {
            "title": "Update container jsons",
            "body": "Automatic pr created from kipoi-containers",
            "head": head,
            "base": base,
            **extra,
        }
        return requests.post(url, json=payload, headers=AUTH, timeout=10)

    resp = create("feature")
    assert resp.status_code == 201, resp.text
    pr = resp.json()
    assert (pr["number"], pr["state"], pr["title"]) == (1, "open", "Update container jsons")
    assert pr["head"]["ref"] == "feature" and pr["head"]["sha"] == history["c3"]
    assert pr["head"]["label"] == "kipoi:feature" and pr["base"]["ref"] == "master"
    assert pr["base"]["sha"] == history["c4"] and pr["html_url"].startswith(gh.url)

    dup = assert_error(create("kipoi:feature"), 422, "Validation Failed")
    assert dup["errors"] == [
        {"resource": "PullRequest", "code": "custom", "message": "A pull request already exists for kipoi:feature."}
    ]
    git(bare, "branch", "same-as-master", "master")
    none = assert_error(create("same-as-master"), 422, "Validation Failed")
    assert none["errors"][0]["message"] == "No commits between master and same-as-master"
    missing = assert_error(create("update-json"), 422, "Validation Failed")
    assert missing["errors"] == [{"resource": "PullRequest", "field": "head", "code": "invalid"}]
    no_head = requests.post(url, json={"title": "t", "base": "master"}, headers=AUTH, timeout=10)
    assert assert_error(no_head, 422)["errors"][0] == {
        "resource": "PullRequest",
        "field": "head",
        "code": "missing_field",
    }
    unrelated = assert_error(create("rewritten"), 422)
    assert "no history in common" in unrelated["errors"][0]["message"]

    listed = get(gh, "/repos/kipoi/models/pulls", state="open", head="kipoi:feature", base="master").json()
    assert [p["number"] for p in listed] == [1]
    assert get(gh, "/repos/kipoi/models/pulls", head="kipoi:update-json").json() == []
    assert get(gh, "/repos/kipoi/models/pulls", state="closed").json() == []
    assert get(gh, "/repos/kipoi/models/pulls/1").json()["commits"] == 1
    assert_error(get(gh, "/repos/kipoi/models/pulls/2"), 404)
    second = create("many", draft=True)
    assert second.status_code == 201 and second.json()["number"] == 2 and second.json()["draft"] is True


# ----------------------------------------------------------------- B.4 end to end


def test_kipoi_write_json_flow(gh: GitHubEmulator, bare: Path, history: dict[str, Any]) -> None:
    """write_json_to_kipoi + create_pr against the emulator, as B.4 describes."""
    path = "shared/containers/model-to-docker.json"
    master_sha = get(gh, "/repos/kipoi/models/branches/master").json()["commit"]["sha"]
    names = [b["name"] for b in get(gh, "/repos/kipoi/models/branches", per_page=100).json()]
    assert "update-json" not in names
    current = get(gh, f"/repos/kipoi/models/contents/{path}").json()
    new = {**json.loads(base64.b64decode(current["content"])), "CleTimer": "kipoi/kipoi-docker:cletimer"}
    ref = requests.post(
        f"{gh.url}/repos/kipoi/models/git/refs",
        headers=AUTH,
        timeout=10,
        json={"ref": "refs/heads/update-json", "sha": master_sha},
    )
    assert ref.status_code == 201
    put = put_file(
        gh,
        path,
        {
            "message": f"Updating {path}",
            "content": b64(json.dumps(new, indent=4)),
            "sha": current["sha"],
            "branch": "update-json",
        },
    )
    assert put.status_code == 200, put.text
    again = get(gh, f"/repos/kipoi/models/contents/{path}", ref="update-json").json()
    assert json.loads(base64.b64decode(again["content"])) == new
    pr = requests.post(
        f"{gh.url}/repos/kipoi/models/pulls",
        headers=AUTH,
        timeout=10,
        json={
            "title": "Update container jsons",
            "head": "update-json",
            "base": "master",
            "body": "Automatic pr created from kipoi-containers",
        },
    )
    assert pr.status_code == 201
    compare = get(gh, f"/repos/kipoi/models/compare/{master_sha}...update-json").json()
    assert [f["filename"] for f in compare["files"]] == [path]
    assert git(bare, "rev-parse", "master") == history["c4"]
    assert gh.token_in_url_violations == []


# ----------------------------------------------------------------- auth, limits, logging


def test_auth_rules(gh: GitHubEmulator) -> None:
    bearer = get(gh, "/repos/kipoi/models", headers={"Authorization": f"Bearer {TOKEN}", "User-Agent": "t"})
    assert bearer.status_code == 200 and bearer.headers["x-ratelimit-limit"] == "5000"
    bad = get(gh, "/repos/kipoi/models", headers={"Authorization": "token wrong", "User-Agent": "t"})
    assert_error(bad, 401, "Bad credentials")
    anon = get(gh, "/repos/kipoi/models", headers=ANON)
    assert anon.status_code == 200 and anon.headers["x-ratelimit-limit"] == "60"
    assert "permissions" not in anon.json()
    # urllib3 adds its own User-Agent unless told to skip the header
    no_ua = requests.get(gh.url + "/repos/kipoi/models", headers={**AUTH, "User-Agent": SKIP_HEADER}, timeout=10)
    assert no_ua.status_code == 403
    assert "user-agent" not in gh.requests_log[-1]["headers"]
    anon_ref = requests.post(
        f"{gh.url}/repos/kipoi/models/git/refs", json={"ref": "refs/heads/x", "sha": "0" * 40}, headers=ANON, timeout=10
    )
    assert_error(anon_ref, 401, "Requires authentication")


def test_no_auth_mode(bare: Path) -> None:
    with GitHubEmulator({"kipoi/models": bare}, token=None) as gh:
        resp = put_file(gh, "free.txt", {"message": "m", "content": b64("x")}, headers=ANON)
        assert resp.status_code == 201
        assert get(gh, "/user", headers={"Authorization": "token anything", "User-Agent": "t"}).status_code == 200
    assert git(bare, "show", "master:free.txt") == "x"


def test_rate_limit_headers_and_exhaustion(gh: GitHubEmulator) -> None:
    first = get(gh, "/repos/kipoi/models")
    for header in (
        "x-ratelimit-limit",
        "x-ratelimit-remaining",
        "x-ratelimit-used",
        "x-ratelimit-reset",
        "x-ratelimit-resource",
    ):
        assert header in first.headers
    assert first.headers["x-ratelimit-resource"] == "core"
    second = get(gh, "/repos/kipoi/models")
    assert int(second.headers["x-ratelimit-remaining"]) == int(first.headers["x-ratelimit-remaining"]) - 1
    assert int(second.headers["x-ratelimit-used"]) == int(first.headers["x-ratelimit-used"]) + 1
    assert_error(get(gh, "/nope"), 404)
    assert "x-ratelimit-remaining" in get(gh, "/nope").headers  # on errors too

    gh.set_rate_limit(10, 1)
    last = get(gh, "/repos/kipoi/models")
    assert last.status_code == 200 and last.headers["x-ratelimit-remaining"] == "0"
    limited = get(gh, "/repos/kipoi/models")
    assert limited.status_code == 403
    assert limited.json()["message"].startswith("API rate limit exceeded for")
    assert limited.headers["x-ratelimit-remaining"] == "0" and limited.headers["x-ratelimit-used"] == "10"
    assert int(limited.headers["x-ratelimit-reset"]) > 0
    anon = get(gh, "/repos/kipoi/models", headers=ANON)  # the anonymous bucket is separate
    assert anon.status_code == 200
    rate = get(gh, "/rate_limit").json()
    assert rate["resources"]["core"]["remaining"] == 0 and rate["rate"]["limit"] == 10


def test_token_in_url_is_a_recorded_violation(gh: GitHubEmulator) -> None:
    assert get(gh, "/repos/kipoi/models").status_code == 200
    assert gh.token_in_url_violations == []
    get(gh, "/repos/kipoi/models", headers=ANON, access_token=TOKEN)
    get(gh, f"/repos/kipoi/models/contents/README.md?ref={TOKEN}", headers=ANON)
    assert len(gh.token_in_url_violations) == 2
    assert all(TOKEN not in v and "***" in v for v in gh.token_in_url_violations)
    log = json.dumps(gh.requests_log)
    assert TOKEN not in log
    assert gh.requests_log[-2]["query"] == {"access_token": ["***"]}


def test_requests_log(gh: GitHubEmulator) -> None:
    put_file(gh, "logged.txt", {"message": "m", "content": b64("x")})
    get(gh, "/repos/kipoi/models/branches", per_page="5")
    put_entry, get_entry = gh.requests_log[-2:]
    assert put_entry["method"] == "PUT" and put_entry["path"] == "/repos/kipoi/models/contents/logged.txt"
    assert put_entry["headers"]["authorization"] == "token ***"
    assert put_entry["json"]["message"] == "m" and put_entry["status"] == 201
    assert get_entry["query"] == {"per_page": ["5"]} and get_entry["status"] == 200
    assert get_entry["headers"]["user-agent"] == "emulator-tests"


# ----------------------------------------------------------------- fault injection


def test_inject_status_retry_after_and_html(gh: GitHubEmulator) -> None:
    gh.inject(500)
    assert_error(get(gh, "/repos/kipoi/models"), 500, "Server Error")
    assert get(gh, "/repos/kipoi/models").status_code == 200  # times=1: consumed

    gh.inject(429, retry_after=7, times=2)
    for _ in range(2):
        limited = get(gh, "/repos/kipoi/models")
        assert limited.status_code == 429 and limited.headers["Retry-After"] == "7"
        assert "secondary rate limit" in limited.json()["message"]
    assert get(gh, "/repos/kipoi/models").status_code == 200

    gh.inject(502)
    gateway = get(gh, "/repos/kipoi/models")
    assert gateway.status_code == 502 and gateway.headers["Content-Type"].startswith("text/html")
    assert "<html>" in gateway.text

    gh.inject(409, body={"message": "custom conflict"})
    assert get(gh, "/repos/kipoi/models").json() == {"message": "custom conflict"}


def test_inject_filters_by_method_and_path(gh: GitHubEmulator) -> None:
    gh.inject(503, method="PUT", path_prefix="/repos/kipoi/models/contents/")
    assert get(gh, "/repos/kipoi/models/contents/README.md").status_code == 200
    assert put_file(gh, "other.txt", {"message": "m", "content": b64("x")}).status_code == 503
    assert put_file(gh, "other.txt", {"message": "m", "content": b64("x")}).status_code == 201


def test_inject_drop_connection(gh: GitHubEmulator) -> None:
    gh.inject(0, drop_connection=True, path_prefix="/repos/kipoi/models/branches")
    with pytest.raises(requests.exceptions.ConnectionError):
        get(gh, "/repos/kipoi/models/branches")
    assert gh.requests_log[-1]["status"] is None
    assert get(gh, "/repos/kipoi/models/branches").status_code == 200


def test_injected_write_errors_carry_githubs_bodies(gh: GitHubEmulator, bare: Path, history: dict[str, Any]) -> None:
    path = "shared/containers/model-to-docker.json"
    prefix = f"/repos/kipoi/models/contents/{path}"
    sha = get(gh, prefix).json()["sha"]
    body = {"message": "m", "content": b64("{}"), "sha": sha}
    gh.inject(409, method="PUT", path_prefix=prefix)
    conflict = assert_error(put_file(gh, path, body), 409, f"{path} does not match {sha}")
    assert "errors" not in conflict, "GitHub's 409 has no errors array"
    gh.inject(422, method="PUT", path_prefix=prefix)
    assert_error(put_file(gh, path, body), 422, 'Invalid request.\n\n"sha" wasn\'t supplied.')
    assert git(bare, "rev-parse", "master") == history["c4"], "an injected fault writes nothing"

    gh.inject(422, method="POST", path_prefix="/repos/kipoi/models/git/refs")
    refs = requests.post(
        f"{gh.url}/repos/kipoi/models/git/refs",
        json={"ref": "refs/heads/new", "sha": history["c1"]},
        headers=AUTH,
        timeout=10,
    )
    assert_error(refs, 422, "Reference already exists")

    gh.inject(422, method="POST", path_prefix="/repos/kipoi/models/pulls")
    pull = requests.post(
        f"{gh.url}/repos/kipoi/models/pulls",
        json={"title": "t", "head": "update-json", "base": "master"},
        headers=AUTH,
        timeout=10,
    )
    assert assert_error(pull, 422, "Validation Failed")["errors"] == [
        {"resource": "PullRequest", "code": "custom", "message": "A pull request already exists for kipoi:update-json."}
    ]
    # The successful write goes through once the faults are used up.
    assert put_file(gh, path, body).status_code == 200


def test_before_hook_lands_a_write_between_read_and_put(gh: GitHubEmulator, bare: Path) -> None:
    path = "shared/containers/model-to-docker.json"
    prefix = f"/repos/kipoi/models/contents/{path}"
    stale = get(gh, prefix).json()["sha"]
    seen: list[str] = []

    def other_writer() -> None:
        seen.append("hook")
        assert put_file(gh, path, {"message": "other", "content": b64('{"Other": 1}'), "sha": stale}).status_code == 200

    gh.before(other_writer, method="PUT", path_prefix=prefix)
    late = put_file(gh, path, {"message": "late", "content": b64('{"Late": 1}'), "sha": stale})
    assert seen == ["hook"]
    assert_error(late, 409, f"{path} does not match {stale}")
    assert git(bare, "log", "-1", "--format=%s", "master") == "other"
    # Used once: the next PUT runs no hook.
    fresh = get(gh, prefix).json()["sha"]
    assert put_file(gh, path, {"message": "again", "content": b64("{}"), "sha": fresh}).status_code == 200
    assert seen == ["hook"]


def test_pull_request_head_and_base_are_complete(gh: GitHubEmulator, bare: Path) -> None:
    """octocrab's ``PullRequest`` needs ``head``/``base`` with ``ref``, ``sha``, ``label``, and
    the ``user`` and ``repo`` objects in full (login, id, node_id, URLs; name, url…)."""
    resp = requests.post(
        f"{gh.url}/repos/kipoi/models/pulls",
        json={"title": "t", "head": "feature", "base": "master"},
        headers=AUTH,
        timeout=10,
    )
    assert resp.status_code == 201
    listed = get(gh, "/repos/kipoi/models/pulls", head="kipoi:feature").json()
    for pr in (resp.json(), listed[0]):
        assert isinstance(pr["id"], int) and pr["url"].endswith("/pulls/1") and pr["html_url"]
        for side in ("head", "base"):
            ref = pr[side]
            assert {"label", "ref", "sha", "user", "repo"} <= set(ref)
            assert {"login", "id", "node_id", "avatar_url", "url", "html_url", "type", "site_admin"} <= set(ref["user"])
            assert ref["repo"]["full_name"] == "kipoi/models" and ref["repo"]["default_branch"] == "master"
        assert pr["user"]["login"] == "test-user"


# ----------------------------------------------------------------- command line


def test_standalone_entry_point(bare: Path) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.emulators.github",
            "--repo",
            f"kipoi/models={bare}",
            "--port",
            "0",
            "--token",
            "cli-token",
        ],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ)
        assert sel.select(timeout=15), "the emulator printed nothing"
        line = proc.stdout.readline().decode().strip()
        assert line.startswith("listening on http://127.0.0.1:")
        url = line.removeprefix("listening on ")
        resp = requests.get(
            f"{url}/repos/kipoi/models", headers={"Authorization": "token cli-token", "User-Agent": "t"}, timeout=10
        )
        assert resp.status_code == 200 and resp.json()["default_branch"] == "master"
        bad = requests.get(f"{url}/repos/kipoi/models", headers=AUTH, timeout=10)
        assert bad.status_code == 401
    finally:
        proc.terminate()
        _, stderr = proc.communicate(timeout=10)  # also closes the pipes
    assert proc.returncode == 0, stderr.decode()
