"""A stateful GitHub REST API emulator backed by real git repositories.

The emulator follows ``/work/shared/specs/zenodo-github-apis.md`` part B.  Every
read comes from git plumbing run against the repository given at construction
(``rev-parse``, ``ls-tree``, ``cat-file``, ``for-each-ref``, ``merge-base``,
``rev-list``, ``diff-tree``) and every write creates real objects and refs with
plumbing only (``hash-object -w``, ``mktree``, ``commit-tree``, ``update-ref``):
no work tree is ever read or written, so bare repositories and partial clones
work.  Lazy fetching of missing objects is disabled (``GIT_NO_LAZY_FETCH=1``).

Python use::

    with GitHubEmulator({"kipoi/models": repo_path}) as gh:
        requests.get(f"{gh.url}/repos/kipoi/models",
                     headers={"Authorization": "token test-token"})

Standalone::

    python -m tests.emulators.github --repo kipoi/models=/path/to/repo [--port N] [--token T]

prints ``listening on http://127.0.0.1:PORT`` and serves until killed.

Endpoints (``{o}/{r}`` is a served repository, names are case-insensitive)
--------------------------------------------------------------------------
- ``GET /user``, ``GET /users/{login}``, ``GET /orgs/{org}``, ``GET /rate_limit``
- ``GET /repos/{o}/{r}``                                         (G0)
- ``GET /repos/{o}/{r}/branches`` (paginated), ``.../branches/{b}`` (G2, G1)
- ``GET /repos/{o}/{r}/commits/{ref}``        single commit with ``stats`` and ``files``
- ``GET /repos/{o}/{r}/git/commits/{sha}``    git commit object
- ``GET /repos/{o}/{r}/git/trees/{sha|ref}[?recursive=...]``
- ``GET /repos/{o}/{r}/git/blobs/{sha}``
- ``GET /repos/{o}/{r}/git/ref/{ref}``, ``.../git/refs/{ref}``, ``.../git/matching-refs/{prefix}``
- ``POST /repos/{o}/{r}/git/refs``                               (G6)
- ``PATCH /repos/{o}/{r}/git/refs/{ref}`` ``{sha, force}``: 200; 422 "Reference does not
  exist", "Update is not a fast forward" (no ``force``), "Object does not exist"
- ``GET /repos/{o}/{r}/compare/{base}...{head}``                 (G3)
- ``GET /repos/{o}/{r}/contents[/{path}][?ref=]``                (G4)
- ``PUT /repos/{o}/{r}/contents/{path}``                         (G5)
- ``GET|POST /repos/{o}/{r}/pulls``, ``GET /repos/{o}/{r}/pulls/{number}`` (G7)
- ``PUT /repos/{o}/{r}/pulls/{number}/merge`` ``{merge_method, sha, commit_title}``: a
  maintainer merging (``merge``, a two-parent commit) or squash-merging (``squash``, one
  commit) the pull request into its base: 200 ``{sha, merged, message}``; 405 "Pull Request
  is not mergeable" (closed, or conflicting), 405 for ``rebase`` (not allowed here), 409
  "Head branch was modified" when ``sha`` is not the head
- ``GET /raw/{o}/{r}/{ref}/{path}``  raw bytes (the ``download_url`` host; no auth,
  no rate limit, like raw.githubusercontent.com)

Anything else answers 404 ``{"message": "Not Found", ...}``.

Cross-cutting behaviour
-----------------------
- Auth: ``Authorization: token <T>``, ``Bearer <T>`` or Basic with the token as
  password.  A wrong token gives 401 "Bad credentials"; no token is anonymous
  (reads allowed, rate limit 60, writes 401 "Requires authentication");
  ``token=None`` turns auth checking off.  A missing ``User-Agent`` gives 403.
- The configured token (or any ``access_token`` query parameter) appearing in a
  URL is recorded in ``token_in_url_violations`` (redacted); logs never hold it.
- ``x-ratelimit-{limit,remaining,used,reset,resource}`` on every API response;
  when ``remaining`` is 0 the next request gets 403 "API rate limit exceeded for ...".
- Errors are ``{"message", "documentation_url", "status": "<code>"}``; 422s add
  ``errors`` where GitHub does.
- Pagination: ``per_page`` (default 30, max 100) and ``page`` with a ``Link``
  header (``prev``, ``next``, ``last``, ``first``) of absolute URLs.
- Fault injection with :meth:`GitHubEmulator.inject`; injected write errors carry
  GitHub's own bodies (contents PUT 409 "does not match", 422 "sha wasn't supplied";
  create-ref 422 "Reference already exists"; create-pull 422 "A pull request already
  exists").  :meth:`GitHubEmulator.before` runs an action before matching requests
  (a concurrent writer landing between a client's read and its write).
- Success bodies are complete GitHub shapes, parsed strictly by octocrab's models
  (``Repository``, ``Ref``, ``Content``, ``FileUpdate``, ``PullRequest`` with
  ``head``/``base`` users and repositories).

Deviations and choices (spec items marked [U] are design choices here)
----------------------------------------------------------------------
- ``html_url``-style links point at ``{url}/html/...`` (not served);
  ``download_url``/``raw_url`` point at the served ``/raw`` endpoint;
  ``clone_url`` is the ``file://`` URI of the backing repository.
- Missing ``User-Agent`` answers a JSON error body (GitHub sends plain text).
- PUT contents on a missing branch: 404 "Branch {b} not found" [U];
  PUT on a path that is a directory, or through a file: 422 [U].
- Compare: only the three-dot form; no common ancestor gives 404
  "No common ancestor between {base} and {head}."; without paging parameters
  ``commits`` holds the oldest 250; ``files`` is capped at
  :attr:`GitHubEmulator.compare_files_limit` (300) and shown on page 1 only;
  no ``patch`` field.  A removed file's ``sha`` is the removed blob's sha.
  When blobs are missing (partial clone) rename detection and line counts are
  skipped (counts 0) instead of failing.
- Pull requests: "No commits between {base} and {head}" and "already exists"
  422s as in B.3; unrelated histories give 422 "The {head} branch has no
  history in common with {base}" [U].  PR state lives in memory only.
- Contents over :attr:`GitHubEmulator.content_inline_limit` (1 MiB) answer
  ``content: ""``/``encoding: "none"`` unless the raw media type is requested;
  over 100 MiB answer 403 ``too_large``.
- Commit ``author``/``committer`` (GitHub users) are ``null`` except for commits
  whose email is the emulated user's noreply address.
- ``GET /orgs/{org}`` knows every owner of a served repository that is not the
  emulated user's login.
- A ``ref`` is a branch, tag, full ``refs/...`` name, (abbreviated) sha or
  ``HEAD``; git revision syntax such as ``master~1`` is not accepted.
  Compare also accepts ``owner:branch``.
- Create ref: a name without ``refs/`` and two slashes gives 422 "Reference
  name must contain at least three slash-separated components." (GitHub's
  wording, octokit.rb#675); an invalid name "{ref} is not a valid ref name.";
  a directory/file ref conflict "Reference update failed".
- ``GET /rate_limit`` does not consume quota; fault injection happens before
  the User-Agent, auth and rate-limit checks and does not consume quota either.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import dataclasses
import datetime as dt
import hashlib
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from tests.emulators.base import (
    Fault,
    HTTPEmulator,
    HTTPError,
    Request,
    Response,
    Rule,
    RuleQueue,
    json_response,
    phrase,
)

__all__ = ["GitError", "GitHubEmulator", "GitRepo", "main"]

DOCS = "https://docs.github.com/rest"
EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
ZERO_SHA = "0" * 40
_HEX40 = re.compile(r"[0-9a-f]{40}")
_HEX_ABBREV = re.compile(r"[0-9a-fA-F]{4,40}")
_PERSON = re.compile(r"^(?P<name>.*?) ?<(?P<email>[^>]*)> (?P<epoch>-?\d+)(?: (?P<tz>[+-]\d{4}))?$")
_CREATED_AT = "2016-01-01T00:00:00Z"
_VERIFICATION = {"verified": False, "reason": "unsigned", "signature": None, "payload": None, "verified_at": None}
_SECONDARY_LIMIT = (
    "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. "
    "If you reach out to GitHub Support for help, please include the request ID."
)
_UA_MESSAGE = (
    "Request forbidden by administrative rules. Please make sure your request has a User-Agent header "
    "(https://docs.github.com/en/rest/overview/resources-in-the-rest-api#user-agent-required). "
    "Check https://developer.github.com for other possible causes."
)


# --------------------------------------------------------------------------- git


class GitError(RuntimeError):
    """A git command failed."""

    def __init__(self, args: Sequence[str], returncode: int, stderr: bytes) -> None:
        self.returncode = returncode
        self.stderr = stderr.decode("utf-8", "replace").strip()
        super().__init__(f"git {' '.join(args)} exited {returncode}: {self.stderr}")


@dataclasses.dataclass(frozen=True)
class TreeEntry:
    """One entry of a git tree: ``path`` is relative to the listed root."""

    mode: str
    type: str  # blob | tree | commit
    sha: str
    path: str

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


@dataclasses.dataclass(frozen=True)
class Person:
    """A git author or committer line."""

    name: str
    email: str
    epoch: int
    tz: str = "+0000"

    def iso(self) -> str:
        return dt.datetime.fromtimestamp(self.epoch, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

    def as_json(self) -> dict[str, str]:
        return {"name": self.name, "email": self.email, "date": self.iso()}

    def git_date(self) -> str:
        return f"@{self.epoch} {self.tz}"


@dataclasses.dataclass(frozen=True)
class CommitInfo:
    """A parsed git commit object."""

    sha: str
    tree: str
    parents: tuple[str, ...]
    author: Person
    committer: Person
    message: str


@dataclasses.dataclass(frozen=True)
class DiffFile:
    """One file of a tree diff (``git diff-tree --raw`` plus ``--numstat``)."""

    status: str  # git letter: A D M R C T U
    old_path: str
    path: str
    old_sha: str
    new_sha: str
    additions: int
    deletions: int


def _git_env() -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not (k.startswith("GIT_") and k not in ("GIT_EXEC_PATH", "GIT_CONFIG_GLOBAL", "GIT_CONFIG_NOSYSTEM"))
    }
    env.update(
        GIT_NO_LAZY_FETCH="1",  # never fetch missing objects of a partial clone
        GIT_TERMINAL_PROMPT="0",
        GIT_OPTIONAL_LOCKS="0",
        GIT_NO_REPLACE_OBJECTS="1",
        LC_ALL="C",
    )
    return env


def _parse_person(line: str) -> Person:
    m = _PERSON.match(line)
    if not m:
        return Person(line, "", 0)
    return Person(m["name"], m["email"], int(m["epoch"]), m["tz"] or "+0000")


class GitRepo:
    """Plumbing-only access to one git repository (bare or not)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._env = _git_env()
        proc = subprocess.run(
            ["git", "-C", os.fspath(path), "rev-parse", "--absolute-git-dir"],
            capture_output=True,
            env=self._env,
        )
        if proc.returncode != 0:
            raise ValueError(f"`{path}` is not a git repository: {proc.stderr.decode(errors='replace').strip()}")
        self.git_dir = proc.stdout.decode().strip()
        self._commits: dict[str, CommitInfo] = {}
        self._cache_lock = threading.Lock()

    # -- running git
    def run(
        self,
        *args: str,
        input: bytes | None = None,
        env: Mapping[str, str] | None = None,
        check: bool = True,
    ) -> subprocess.CompletedProcess[bytes]:
        full_env = self._env if env is None else {**self._env, **env}
        proc = subprocess.run(
            ["git", f"--git-dir={self.git_dir}", *args],
            input=input,
            capture_output=True,
            env=full_env,
            cwd=self.git_dir,
        )
        if check and proc.returncode != 0:
            raise GitError(args, proc.returncode, proc.stderr)
        return proc

    def _out(self, *args: str, input: bytes | None = None) -> str:
        return self.run(*args, input=input).stdout.decode("utf-8", "replace").strip()

    # -- refs
    def default_branch(self) -> str:
        proc = self.run("symbolic-ref", "-q", "--short", "HEAD", check=False)
        name = proc.stdout.decode().strip()
        if proc.returncode == 0 and name:
            return name
        branches = self.branches()
        return branches[0][0] if branches else "master"

    def refs(self, prefix: str = "refs/") -> list[tuple[str, str, str]]:
        """``(refname, sha, objecttype)`` of every ref under ``prefix``, sorted by name."""
        out = self.run("for-each-ref", "--sort=refname", "--format=%(refname)%00%(objectname)%00%(objecttype)", prefix)
        rows = []
        for line in out.stdout.decode("utf-8", "replace").splitlines():
            name, sha, kind = line.split("\0")
            rows.append((name, sha, kind))
        return rows

    def branches(self) -> list[tuple[str, str]]:
        """``(name, commit sha)`` of every branch, sorted by name."""
        return [(n[len("refs/heads/") :], s) for n, s, k in self.refs("refs/heads/") if k == "commit"]

    def ref_sha(self, ref: str) -> str | None:
        proc = self.run("rev-parse", "-q", "--verify", f"{ref}^{{commit}}", check=False)
        return proc.stdout.decode().strip() if proc.returncode == 0 else None

    def branch_sha(self, branch: str) -> str | None:
        if not branch or branch.startswith("-"):
            return None
        return self.ref_sha(f"refs/heads/{branch}")

    def ref_exists(self, ref: str) -> bool:
        return self.run("show-ref", "--verify", "-q", ref, check=False).returncode == 0

    def resolve_commit(self, ref: str) -> str | None:
        """Resolve a branch, tag, full ref or (abbreviated) sha to a commit sha."""
        if not ref or ref.startswith("-") or any(c in ref for c in "\0\n\r :^~?*[\\"):
            return None
        if ref == "HEAD":
            candidates = ["HEAD"]
        elif ref.startswith("refs/"):
            candidates = [ref]
        else:
            candidates = [f"refs/heads/{ref}", f"refs/tags/{ref}"]
        if _HEX_ABBREV.fullmatch(ref):
            candidates.append(ref.lower())
        for cand in candidates:
            sha = self.ref_sha(cand)
            if sha:
                return sha
        return None

    def resolve_tree(self, spec: str) -> str | None:
        """A tree sha, or the tree of a commit given by sha or ref."""
        if _HEX_ABBREV.fullmatch(spec):
            proc = self.run("rev-parse", "-q", "--verify", f"{spec.lower()}^{{tree}}", check=False)
            if proc.returncode == 0:
                return proc.stdout.decode().strip()
        commit = self.resolve_commit(spec)
        return self.read_commit(commit).tree if commit else None

    def check_ref_format(self, ref: str) -> bool:
        return self.run("check-ref-format", ref, check=False).returncode == 0

    def update_ref(self, ref: str, new: str, old: str, message: str = "github emulator") -> bool:
        """Compare-and-swap ``ref`` from ``old`` (``""`` = must not exist) to ``new``."""
        return self.run("update-ref", "-m", message, ref, new, old, check=False).returncode == 0

    # -- objects
    def object_info(self, shas: Iterable[str]) -> dict[str, tuple[str, int] | None]:
        """``sha -> (type, size)``, or ``None`` for objects absent from the store."""
        wanted = list(dict.fromkeys(shas))
        if not wanted:
            return {}
        out = self.run("cat-file", "--batch-check", input="".join(s + "\n" for s in wanted).encode())
        info: dict[str, tuple[str, int] | None] = {}
        for sha, line in zip(wanted, out.stdout.decode().splitlines()):
            parts = line.split()
            info[sha] = (parts[1], int(parts[2])) if len(parts) == 3 else None
        return info

    def object_type(self, sha: str) -> str | None:
        found = self.object_info([sha]).get(sha)
        return found[0] if found else None

    def read_blob(self, sha: str) -> bytes:
        return self.run("cat-file", "blob", sha).stdout

    def read_commit(self, sha: str) -> CommitInfo:
        return self.read_commits([sha])[sha]

    def read_commits(self, shas: Iterable[str]) -> dict[str, CommitInfo]:
        """Parse many commits with one ``cat-file --batch`` (results are cached)."""
        wanted = list(dict.fromkeys(shas))
        with self._cache_lock:
            missing = [s for s in wanted if s not in self._commits]
        if missing:
            data = self.run("cat-file", "--batch", input="".join(s + "\n" for s in missing).encode()).stdout
            pos = 0
            parsed: dict[str, CommitInfo] = {}
            for sha in missing:
                nl = data.index(b"\n", pos)
                header = data[pos:nl].decode().split()
                pos = nl + 1
                if len(header) != 3:
                    raise GitError(["cat-file", "--batch", sha], 1, b"object missing")
                size = int(header[2])
                body = data[pos : pos + size]
                pos += size + 1
                if header[1] != "commit":
                    raise GitError(["cat-file", "--batch", sha], 1, f"{sha} is a {header[1]}".encode())
                parsed[sha] = self._parse_commit(sha, body)
            with self._cache_lock:
                self._commits.update(parsed)
        with self._cache_lock:
            return {s: self._commits[s] for s in wanted}

    @staticmethod
    def _parse_commit(sha: str, raw: bytes) -> CommitInfo:
        head, _, message = raw.partition(b"\n\n")
        tree = ""
        parents: list[str] = []
        author = committer = Person("", "", 0)
        for line in head.decode("utf-8", "replace").split("\n"):
            if line.startswith(" "):
                continue  # continuation of a multi-line header (gpgsig, mergetag)
            key, _, value = line.partition(" ")
            if key == "tree":
                tree = value
            elif key == "parent":
                parents.append(value)
            elif key == "author":
                author = _parse_person(value)
            elif key == "committer":
                committer = _parse_person(value)
        text = message.decode("utf-8", "replace").rstrip("\n")
        return CommitInfo(sha, tree, tuple(parents), author, committer, text)

    # -- trees
    def ls_tree(self, treeish: str, recursive: bool = False) -> list[TreeEntry]:
        """List a tree without reading any blob (so it works on partial clones)."""
        args = ["ls-tree", "-z"]
        if recursive:
            args += ["-r", "-t"]
        out = self.run(*args, treeish).stdout
        entries = []
        for rec in out.split(b"\0"):
            if not rec:
                continue
            meta, _, path = rec.partition(b"\t")
            mode, kind, sha = meta.decode().split(" ")
            entries.append(TreeEntry(mode, kind, sha, path.decode("utf-8", "replace")))
        return entries

    def lookup(self, commit: str, path: str) -> TreeEntry | None:
        """The entry at ``path`` (``""`` is the root tree) in ``commit``, walking tree by tree."""
        tree = self.read_commit(commit).tree
        if not path:
            return TreeEntry("040000", "tree", tree, "")
        parts = path.split("/")
        current = tree
        for i, part in enumerate(parts):
            found = next((e for e in self.ls_tree(current) if e.path == part), None)
            if found is None:
                return None
            if i == len(parts) - 1:
                return TreeEntry(found.mode, found.type, found.sha, path)
            if found.type != "tree":
                return None
            current = found.sha
        return None  # pragma: no cover

    # -- history
    def merge_base(self, a: str, b: str) -> str | None:
        proc = self.run("merge-base", a, b, check=False)
        return proc.stdout.decode().strip() if proc.returncode == 0 else None

    def rev_list(self, exclude: str, include: str) -> list[str]:
        """Commits reachable from ``include`` but not ``exclude``, oldest first."""
        return self._out("rev-list", "--reverse", "--topo-order", include, f"^{exclude}").split()

    def count(self, exclude: str, include: str) -> int:
        return int(self._out("rev-list", "--count", include, f"^{exclude}"))

    def diff(self, old: str, new: str) -> list[DiffFile]:
        """Tree diff with rename detection and line counts.

        Falls back to a blob-free diff (no renames, zero counts) when blobs are
        missing from the object store.
        """
        try:
            raw = self.run("diff-tree", "-r", "-z", "-M", "--raw", "--no-commit-id", old, new).stdout
            numstat: bytes | None = self.run(
                "diff-tree", "-r", "-z", "-M", "--numstat", "--no-commit-id", old, new
            ).stdout
        except GitError:
            raw = self.run("diff-tree", "-r", "-z", "--no-renames", "--raw", "--no-commit-id", old, new).stdout
            numstat = None
        counts = self._parse_numstat(numstat) if numstat is not None else {}
        files = []
        toks = raw.split(b"\0")
        i = 0
        while i < len(toks) and toks[i]:
            meta = toks[i].decode()
            i += 1
            _old_mode, _new_mode, old_sha, new_sha, status = meta.lstrip(":").split(" ")
            letter = status[0]
            if letter in "RC":
                old_path, path = toks[i].decode("utf-8", "replace"), toks[i + 1].decode("utf-8", "replace")
                i += 2
            else:
                old_path = path = toks[i].decode("utf-8", "replace")
                i += 1
            adds, dels = counts.get(path, (0, 0))
            files.append(DiffFile(letter, old_path, path, old_sha, new_sha, adds, dels))
        return files

    @staticmethod
    def _parse_numstat(data: bytes) -> dict[str, tuple[int, int]]:
        counts: dict[str, tuple[int, int]] = {}
        toks = data.split(b"\0")
        i = 0
        while i < len(toks) and toks[i]:
            adds, dels, path = toks[i].decode("utf-8", "replace").split("\t", 2)
            i += 1
            if path == "":  # rename/copy: the two paths follow
                path = toks[i + 1].decode("utf-8", "replace")
                i += 2
            counts[path] = (int(adds) if adds.isdigit() else 0, int(dels) if dels.isdigit() else 0)
        return counts

    # -- writes (plumbing only; never touches a work tree)
    def write_blob(self, data: bytes) -> str:
        return self._out("hash-object", "-w", "--no-filters", "--stdin", input=data)

    def mktree(self, entries: Iterable[TreeEntry]) -> str:
        payload = b"".join(f"{e.mode} {e.type} {e.sha}\t{e.name}".encode() + b"\0" for e in entries)
        return self._out("mktree", "-z", "--missing", input=payload)

    def tree_with_file(self, tree: str | None, path: str, blob: str, mode: str) -> str:
        """A new tree: ``tree`` with ``path`` set to ``blob`` (intermediate trees created).

        Raises :class:`ValueError` when ``path`` is a directory or goes through a file.
        """
        head, _, rest = path.partition("/")
        entries = self.ls_tree(tree) if tree else []
        existing = next((e for e in entries if e.path == head), None)
        if not rest:
            if existing is not None and existing.type != "blob":
                raise ValueError(f"{path} is a directory")
            new = TreeEntry(mode, "blob", blob, head)
        else:
            if existing is not None and existing.type != "tree":
                raise ValueError(f"{head} is a file, not a directory")
            sub = self.tree_with_file(existing.sha if existing else None, rest, blob, mode)
            new = TreeEntry("040000", "tree", sub, head)
        return self.mktree([e for e in entries if e.path != head] + [new])

    def commit_tree(self, tree: str, parents: Sequence[str], message: str, author: Person, committer: Person) -> str:
        args = ["commit-tree", tree]
        for p in parents:
            args += ["-p", p]
        env = {
            "GIT_AUTHOR_NAME": author.name,
            "GIT_AUTHOR_EMAIL": author.email,
            "GIT_AUTHOR_DATE": author.git_date(),
            "GIT_COMMITTER_NAME": committer.name,
            "GIT_COMMITTER_EMAIL": committer.email,
            "GIT_COMMITTER_DATE": committer.git_date(),
        }
        return self.run(*args, input=message.encode(), env=env).stdout.decode().strip()


# ------------------------------------------------------------------------- HTTP


class _Request(Request):
    authenticated = False  # set once the credentials are checked

    def sent_json(self) -> Any:
        """The body as JSON once read (``None`` when unread, empty or not JSON)."""
        body = self.body() if self.body_consumed else b""
        try:
            return json.loads(body) if body else None
        except (ValueError, UnicodeDecodeError):
            return None

    def json_body(self) -> Any:
        body = self.body()
        if not body.strip():
            return {}
        try:
            return json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise HTTPError(_error(400, "Problems parsing JSON")) from None


_JSON = "application/json; charset=utf-8"


def _json(status: int, obj: Any, headers: Iterable[tuple[str, str]] = ()) -> Response:
    return json_response(status, obj, headers, content_type=_JSON)


def _error(status: int, message: str, errors: list[dict[str, Any]] | None = None, doc: str = DOCS) -> Response:
    obj: dict[str, Any] = {"message": message}
    if errors is not None:
        obj["errors"] = errors
    obj["documentation_url"] = doc
    obj["status"] = str(status)
    return _json(status, obj)


def _not_found(doc: str = DOCS) -> Response:
    return _error(404, "Not Found", doc=doc)


def _b64_wrapped(data: bytes) -> str:
    """Base64 with a newline after every 60 characters, as GitHub (Ruby ``encode64``) sends it."""
    text = base64.b64encode(data).decode()
    return "".join(text[i : i + 60] + "\n" for i in range(0, len(text), 60))


def _q(value: str, safe: str = "/") -> str:
    return urllib.parse.quote(value, safe=safe)


def _stable_id(kind: str, name: str) -> int:
    return int(hashlib.sha1(f"{kind}:{name}".encode()).hexdigest()[:7], 16) + 1


def _node_id(kind: str, ident: object) -> str:
    return base64.b64encode(f"0{len(kind)}:{kind}{ident}".encode()).decode().rstrip("=")


@dataclasses.dataclass
class _Hook(Rule):
    action: Callable[[], object]


@dataclasses.dataclass
class _Bucket:
    limit: int
    remaining: int
    reset: int

    def refill_if_due(self, now: float) -> None:
        if now >= self.reset:
            self.remaining = self.limit
            self.reset = int(now) + 3600

    def headers(self) -> list[tuple[str, str]]:
        return [
            ("x-ratelimit-limit", str(self.limit)),
            ("x-ratelimit-remaining", str(self.remaining)),
            ("x-ratelimit-reset", str(self.reset)),
            ("x-ratelimit-used", str(self.limit - self.remaining)),
            ("x-ratelimit-resource", "core"),
        ]


@dataclasses.dataclass
class _PullRequest:
    number: int
    title: str
    body: str | None
    head: str
    head_sha: str
    base: str
    base_sha: str
    draft: bool
    maintainer_can_modify: bool
    created_at: str
    state: str = "open"
    merged_at: str | None = None
    merge_commit_sha: str | None = None


class _Repo:
    """One served repository: its git store plus in-memory GitHub-only state."""

    def __init__(self, full_name: str, path: str | os.PathLike[str]) -> None:
        owner, sep, name = full_name.partition("/")
        if not sep or not owner or not name or "/" in name:
            raise ValueError(f"repository name must be `owner/repo`, got `{full_name}`")
        self.owner = owner
        self.name = name
        self.full_name = full_name
        self.git = GitRepo(path)
        self.id = _stable_id("repo", full_name.lower())
        self.pulls: list[_PullRequest] = []


_REPO = r"/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)"
_ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    (m, re.compile(p + r"\Z"), h)
    for m, p, h in [
        ("GET", r"/user", "_h_user"),
        ("GET", r"/users/(?P<login>[^/]+)", "_h_users"),
        ("GET", r"/orgs/(?P<org>[^/]+)", "_h_org"),
        ("GET", _REPO, "_h_repo"),
        ("GET", _REPO + r"/branches", "_h_branches"),
        ("GET", _REPO + r"/branches/(?P<branch>.+)", "_h_branch"),
        ("GET", _REPO + r"/commits/(?P<ref>.+)", "_h_commit"),
        ("GET", _REPO + r"/git/commits/(?P<sha>[^/]+)", "_h_git_commit"),
        ("GET", _REPO + r"/git/trees/(?P<tree>.+)", "_h_tree"),
        ("GET", _REPO + r"/git/blobs/(?P<sha>[^/]+)", "_h_blob"),
        ("GET", _REPO + r"/git/ref/(?P<ref>.+)", "_h_git_ref"),
        ("GET", _REPO + r"/git/refs(?:/(?P<ref>.*))?", "_h_git_refs"),
        ("GET", _REPO + r"/git/matching-refs/(?P<ref>.*)", "_h_matching_refs"),
        ("POST", _REPO + r"/git/refs", "_h_create_ref"),
        ("PATCH", _REPO + r"/git/refs/(?P<ref>.+)", "_h_update_ref"),
        ("GET", _REPO + r"/compare/(?P<basehead>.+)", "_h_compare"),
        ("GET", _REPO + r"/contents(?:/(?P<path>.*))?", "_h_get_contents"),
        ("PUT", _REPO + r"/contents/(?P<path>.+)", "_h_put_contents"),
        ("GET", _REPO + r"/pulls", "_h_list_pulls"),
        ("POST", _REPO + r"/pulls", "_h_create_pull"),
        ("GET", _REPO + r"/pulls/(?P<number>\d+)", "_h_get_pull"),
        ("PUT", _REPO + r"/pulls/(?P<number>\d+)/merge", "_h_merge_pull"),
    ]
]
_RAW = re.compile(r"/raw/(?P<owner>[^/]+)/(?P<repo>[^/]+)/(?P<rest>.+)\Z")


class GitHubEmulator(HTTPEmulator[_Request]):
    """GitHub REST emulator serving one or more local git repositories over HTTP.

    Args:
        repos: ``{"owner/repo": path}``; each path is a bare or non-bare git repository.
        token: the only accepted token; ``None`` disables authentication.
        host, port: where to listen (``port=0`` picks a free port).
        login: login of the authenticated user; repository owners other than it are organizations.
        tree_entry_limit: entries returned by ``git/trees`` before ``truncated: true``.

    Attributes:
        requests_log: every request: ``method``, ``path``, ``query``, ``headers``
            (lower-case names, ``authorization`` redacted), ``json`` (parsed body
            or ``None``) and ``status`` (``None`` when the connection was dropped).
        token_in_url_violations: redacted URLs that carried the token.
        server_errors: tracebacks of unexpected exceptions (answered with 500).
    """

    compare_files_limit = 300
    compare_commits_limit = 250
    content_inline_limit = 1024 * 1024
    content_max_size = 100 * 1024 * 1024
    directory_entry_limit = 1000
    server_header = "GitHub.com"
    methods = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
    thread_name = "github-emulator"
    json_content_type = _JSON
    request_type = _Request

    def __init__(
        self,
        repos: Mapping[str, str | os.PathLike[str]],
        token: str | None = "test-token",
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        login: str = "test-user",
        tree_entry_limit: int = 100_000,
    ) -> None:
        if not repos:
            raise ValueError("at least one repository is needed")
        super().__init__(host, port)
        self._repos = {name.lower(): _Repo(name, path) for name, path in repos.items()}
        self.token = token
        self.login = login
        self.user_id = _stable_id("user", login.lower())
        self.tree_entry_limit = tree_entry_limit
        self._hooks: RuleQueue[_Hook] = RuleQueue()
        now = int(time.time())
        self._buckets = {"auth": _Bucket(5000, 5000, now + 3600), "anon": _Bucket(60, 60, now + 3600)}
        self._write_lock = threading.Lock()

    # ------------------------------------------------------------ test controls
    def inject(
        self,
        status: int,
        *,
        method: str | None = None,
        path_prefix: str | None = None,
        times: int = 1,
        retry_after: int | None = None,
        body: dict[str, Any] | None = None,
        drop_connection: bool = False,
    ) -> None:
        """Make the next ``times`` requests matching ``method``/``path_prefix`` fail.

        502/503/504 answer a gateway HTML page; write conflicts GitHub's own body
        (see the module docstring); other statuses a JSON error (``body`` replaces
        any of these); ``retry_after`` adds ``Retry-After``;
        ``drop_connection`` closes the socket without any response.
        """
        self._faults.add(Fault(method=method, path_prefix=path_prefix, times=times, after=0, status=status,
                               retry_after=retry_after, body=body, drop_connection=drop_connection))

    def before(
        self,
        action: Callable[[], object],
        *,
        method: str | None = None,
        path_prefix: str | None = None,
        times: int = 1,
    ) -> None:
        """Run ``action()`` before the next ``times`` requests matching ``method``/``path_prefix``
        are handled (and before fault injection), in the handling thread.

        The action may itself call the emulator (another thread serves it), e.g. to make a
        concurrent write land between a client's read and its write.
        """
        self._hooks.add(_Hook(method=method, path_prefix=path_prefix, times=times, after=0, action=action))

    def set_rate_limit(self, limit: int, remaining: int, *, anonymous: bool = False) -> None:
        """Set the core rate-limit bucket of authenticated (default) or anonymous requests."""
        with self._lock:
            bucket = self._buckets["anon" if anonymous else "auth"]
            bucket.limit = limit
            bucket.remaining = remaining
            bucket.reset = int(time.time()) + 3600

    # ------------------------------------------------------------ request pipeline
    def _secrets(self) -> Iterable[str]:
        return [self.token] if self.token else []

    def _log_extra(self, req: _Request) -> dict[str, Any]:
        return {"json": req.sent_json()}

    def _response_headers(self, req: _Request) -> list[tuple[str, str]]:
        request_id = hashlib.sha1(f"{time.time_ns()}{req.target}".encode()).hexdigest()[:20].upper()
        return [
            ("X-GitHub-Media-Type", "github.v3; format=json"),
            ("X-GitHub-Api-Version-Selected", req.headers.get("X-GitHub-Api-Version") or "2022-11-28"),
            ("X-GitHub-Request-Id", request_id),
        ]

    def _error_answer(self, status: int, req: _Request, fault: Fault | None) -> Response:
        if status in (502, 503, 504):
            title = f"{status} {phrase(status)}"
            html = (
                f"<!DOCTYPE html>\n<html><head><title>{title}</title></head>"
                f"<body><h1>{title}</h1><p>We couldn't respond to your request in time. "
                "Sorry about that. Please try resubmitting your request and contact us if the problem "
                "persists.</p></body></html>\n"
            )
            return Response(status, html.encode(), "text/html; charset=utf-8")
        real = self._real_write_error(status, req)
        if real is not None:
            return real
        if status in (403, 429) and fault is not None and fault.retry_after is not None:
            return _error(status, _SECONDARY_LIMIT)
        message = {401: "Bad credentials", 404: "Not Found", 422: "Validation Failed", 500: "Server Error"}
        return _error(status, message.get(status, phrase(status)))

    def _fault_response(self, fault: Fault, req: _Request) -> Response:
        return self._with_limits(super()._fault_response(fault, req), "auth")

    def _real_write_error(self, status: int, req: _Request) -> Response | None:
        """The body GitHub sends for ``status`` on this write, for the write conflicts and
        validation failures the spec lists (B.3): contents PUT 409 "does not match" and 422
        "sha wasn't supplied", create-ref 422 "Reference already exists", create-pull 422
        "A pull request already exists"."""
        method, raw_path = req.method, req.path
        data = req.sent_json()
        data = data if isinstance(data, dict) else {}
        contents = re.fullmatch(_REPO + r"/contents/(?P<path>.+)", raw_path)
        if method == "PUT" and contents:
            doc = f"{DOCS}/repos/contents#create-or-update-file-contents"
            path = urllib.parse.unquote(contents["path"])
            if status == 409:
                return _error(409, f"{path} does not match {data.get('sha') or ''}".rstrip(), doc=doc)
            if status == 422:
                return _error(422, 'Invalid request.\n\n"sha" wasn\'t supplied.', doc=doc)
        if method == "POST" and status == 422:
            if re.fullmatch(_REPO + r"/git/refs", raw_path):
                return _error(422, "Reference already exists", doc=f"{DOCS}/git/refs#create-a-reference")
            pulls = re.fullmatch(_REPO + r"/pulls", raw_path)
            if pulls:
                head = str(data.get("head") or "")
                owner = urllib.parse.unquote(pulls["owner"])
                label = head if ":" in head else f"{owner}:{head}"
                message = f"A pull request already exists for {label}."
                return _error(
                    422,
                    "Validation Failed",
                    [{"resource": "PullRequest", "code": "custom", "message": message}],
                    doc=f"{DOCS}/pulls/pulls#create-a-pull-request",
                )
        return None

    def _respond(self, req: _Request) -> Response:
        req.body()  # small JSON bodies: read first, for the log and the write faults
        for hook in self._hooks.take_all(req.method, req.path):
            hook.action()
        fault = self._faults.take(req.method, req.path)
        if fault is not None:
            return self._fault_response(fault, req)
        route_method = "GET" if req.method == "HEAD" else req.method
        raw = _RAW.match(req.path)
        if raw and route_method == "GET":
            return self._h_raw(raw["owner"], raw["repo"], raw["rest"])

        if not req.headers.get("User-Agent"):
            return self._with_limits(_error(403, _UA_MESSAGE), "anon")
        authenticated, bad = self._authenticate(req.headers.get("Authorization"))
        if bad:
            return self._with_limits(_error(401, "Bad credentials"), "anon")
        bucket_name = "auth" if authenticated else "anon"
        if req.path == "/rate_limit":
            return self._with_limits(self._h_rate_limit(bucket_name), bucket_name)
        if route_method not in ("GET", "OPTIONS") and not authenticated:
            return self._with_limits(_error(401, "Requires authentication"), bucket_name)
        with self._lock:
            bucket = self._buckets[bucket_name]
            bucket.refill_if_due(time.time())
            if bucket.remaining <= 0:
                who = (
                    f"user ID {self.user_id}."
                    if authenticated
                    else (
                        "127.0.0.1. (But here's the good news: Authenticated requests get a higher rate limit. "
                        "Check out the documentation for more details.)"
                    )
                )
                return self._with_limits(
                    _error(
                        403,
                        f"API rate limit exceeded for {who}",
                        doc="https://docs.github.com/rest/overview/resources-in-the-rest-api#rate-limiting",
                    ),
                    bucket_name,
                )
            bucket.remaining -= 1
        req.authenticated = authenticated
        try:
            resp = self._dispatch(req)
        except HTTPError as err:
            resp = err.response
        return self._with_limits(resp, bucket_name)

    def _with_limits(self, resp: Response, bucket_name: str) -> Response:
        with self._lock:
            resp.headers += self._buckets[bucket_name].headers()
        return resp

    def _authenticate(self, header: str | None) -> tuple[bool, bool]:
        """``(authenticated, bad_credentials)``."""
        if self.token is None:
            return True, False
        if header is None:
            return False, False
        scheme, _, cred = header.strip().partition(" ")
        cred = cred.strip()
        if scheme.lower() == "basic":
            try:
                cred = base64.b64decode(cred, validate=True).decode().partition(":")[2]
            except (binascii.Error, UnicodeDecodeError):
                return False, True
        elif scheme.lower() not in ("token", "bearer"):
            return False, True
        return (True, False) if cred == self.token else (False, True)

    def _dispatch(self, req: _Request) -> Response:
        route_method = "GET" if req.method == "HEAD" else req.method
        for method, pattern, handler_name in _ROUTES:
            m = pattern.match(req.path)
            if not m or method != route_method:
                continue
            params = {k: urllib.parse.unquote(v) for k, v in m.groupdict().items() if v is not None}
            handler: Callable[..., Response] = getattr(self, handler_name)
            if "owner" in params:
                repo = self._repos.get(f"{params.pop('owner')}/{params.pop('repo')}".lower())
                if repo is None:
                    return _not_found("https://docs.github.com/rest/repos/repos#get-a-repository")
                return handler(req, repo, **params)
            return handler(req, **params)
        return _not_found()

    # ------------------------------------------------------------ URLs and shapes
    def _api(self, repo: _Repo) -> str:
        return f"{self.url}/repos/{repo.full_name}"

    def _html(self, repo: _Repo | None = None) -> str:
        return f"{self.url}/html/{repo.full_name}" if repo else f"{self.url}/html"

    def _account(self, login: str) -> dict[str, Any]:
        """A simple-user object (``type`` Organization for owners other than the user)."""
        is_user = login.lower() == self.login.lower()
        kind = "User" if is_user else "Organization"
        uid = self.user_id if is_user else _stable_id("org", login.lower())
        base = f"{self.url}/users/{login}"
        return {
            "login": login,
            "id": uid,
            "node_id": _node_id(kind, uid),
            "avatar_url": f"{self.url}/avatars/u/{uid}?v=4",
            "gravatar_id": "",
            "url": base,
            "html_url": f"{self._html()}/{login}",
            "followers_url": f"{base}/followers",
            "following_url": f"{base}/following{{/other_user}}",
            "gists_url": f"{base}/gists{{/gist_id}}",
            "starred_url": f"{base}/starred{{/owner}}{{/repo}}",
            "subscriptions_url": f"{base}/subscriptions",
            "organizations_url": f"{base}/orgs",
            "repos_url": f"{base}/repos",
            "events_url": f"{base}/events{{/privacy}}",
            "received_events_url": f"{base}/received_events",
            "type": kind,
            "user_view_type": "public",
            "site_admin": False,
        }

    def _noreply_email(self) -> str:
        return f"{self.user_id}+{self.login}@users.noreply.github.com"

    def _repo_json(self, repo: _Repo, authenticated: bool) -> dict[str, Any]:
        api = self._api(repo)
        html = self._html(repo)
        host = urllib.parse.urlsplit(self.url).netloc
        default = repo.git.default_branch()
        head = repo.git.branch_sha(default)
        pushed = repo.git.read_commit(head).committer.iso() if head else _CREATED_AT
        owner = self._account(repo.owner)
        out: dict[str, Any] = {
            "id": repo.id,
            "node_id": _node_id("Repository", repo.id),
            "name": repo.name,
            "full_name": repo.full_name,
            "private": False,
            "owner": owner,
            "html_url": html,
            "description": None,
            "fork": False,
            "url": api,
        }
        templates = {
            "forks_url": "/forks",
            "keys_url": "/keys{/key_id}",
            "collaborators_url": "/collaborators{/collaborator}",
            "teams_url": "/teams",
            "hooks_url": "/hooks",
            "issue_events_url": "/issues/events{/number}",
            "events_url": "/events",
            "assignees_url": "/assignees{/user}",
            "branches_url": "/branches{/branch}",
            "tags_url": "/tags",
            "blobs_url": "/git/blobs{/sha}",
            "git_tags_url": "/git/tags{/sha}",
            "git_refs_url": "/git/refs{/sha}",
            "trees_url": "/git/trees{/sha}",
            "statuses_url": "/statuses/{sha}",
            "languages_url": "/languages",
            "stargazers_url": "/stargazers",
            "contributors_url": "/contributors",
            "subscribers_url": "/subscribers",
            "subscription_url": "/subscription",
            "commits_url": "/commits{/sha}",
            "git_commits_url": "/git/commits{/sha}",
            "comments_url": "/comments{/number}",
            "issue_comment_url": "/issues/comments{/number}",
            "contents_url": "/contents/{+path}",
            "compare_url": "/compare/{base}...{head}",
            "merges_url": "/merges",
            "archive_url": "/{archive_format}{/ref}",
            "downloads_url": "/downloads",
            "issues_url": "/issues{/number}",
            "pulls_url": "/pulls{/number}",
            "milestones_url": "/milestones{/number}",
            "notifications_url": "/notifications{?since,all,participating}",
            "labels_url": "/labels{/name}",
            "releases_url": "/releases{/id}",
            "deployments_url": "/deployments",
        }
        out.update({k: api + v for k, v in templates.items()})
        open_prs = sum(1 for p in repo.pulls if p.state == "open")
        out.update(
            {
                "created_at": _CREATED_AT,
                "updated_at": pushed,
                "pushed_at": pushed,
                "git_url": f"git://{host}/{repo.full_name}.git",
                "ssh_url": f"git@{urllib.parse.urlsplit(self.url).hostname}:{repo.full_name}.git",
                "clone_url": Path(repo.git.git_dir).as_uri(),
                "svn_url": html,
                "homepage": None,
                "size": 0,
                "stargazers_count": 0,
                "watchers_count": 0,
                "language": None,
                "has_issues": True,
                "has_projects": True,
                "has_downloads": True,
                "has_wiki": True,
                "has_pages": False,
                "has_discussions": False,
                "forks_count": 0,
                "mirror_url": None,
                "archived": False,
                "disabled": False,
                "open_issues_count": open_prs,
                "license": None,
                "allow_forking": True,
                "is_template": False,
                "web_commit_signoff_required": False,
                "topics": [],
                "visibility": "public",
                "forks": 0,
                "open_issues": open_prs,
                "watchers": 0,
                "default_branch": default,
            }
        )
        if authenticated:
            out["permissions"] = {"admin": True, "maintain": True, "push": True, "triage": True, "pull": True}
        if owner["type"] == "Organization":
            out["organization"] = owner
        out.update({"network_count": 0, "subscribers_count": 0})
        return out

    def _user_of(self, person: Person) -> dict[str, Any] | None:
        return self._account(self.login) if person.email == self._noreply_email() else None

    def _commit_json(self, repo: _Repo, c: CommitInfo) -> dict[str, Any]:
        """The REST "commit" shape (list/compare/branch), as octocrab's ``RepoCommit``."""
        api = self._api(repo)
        html = self._html(repo)
        return {
            "sha": c.sha,
            "node_id": _node_id("Commit", f"{repo.id}:{c.sha}"),
            "commit": {
                "author": c.author.as_json(),
                "committer": c.committer.as_json(),
                "message": c.message,
                "tree": {"sha": c.tree, "url": f"{api}/git/trees/{c.tree}"},
                "url": f"{api}/git/commits/{c.sha}",
                "comment_count": 0,
                "verification": dict(_VERIFICATION),
            },
            "url": f"{api}/commits/{c.sha}",
            "html_url": f"{html}/commit/{c.sha}",
            "comments_url": f"{api}/commits/{c.sha}/comments",
            "author": self._user_of(c.author),
            "committer": self._user_of(c.committer),
            "parents": [{"sha": p, "url": f"{api}/commits/{p}", "html_url": f"{html}/commit/{p}"} for p in c.parents],
        }

    def _git_commit_json(self, repo: _Repo, c: CommitInfo) -> dict[str, Any]:
        """The git-data commit shape (``git/commits``, contents PUT ``commit``)."""
        api = self._api(repo)
        html = self._html(repo)
        return {
            "sha": c.sha,
            "node_id": _node_id("Commit", f"{repo.id}:{c.sha}"),
            "url": f"{api}/git/commits/{c.sha}",
            "html_url": f"{html}/commit/{c.sha}",
            "author": c.author.as_json(),
            "committer": c.committer.as_json(),
            "tree": {"sha": c.tree, "url": f"{api}/git/trees/{c.tree}"},
            "message": c.message,
            "parents": [
                {"sha": p, "url": f"{api}/git/commits/{p}", "html_url": f"{html}/commit/{p}"} for p in c.parents
            ],
            "verification": dict(_VERIFICATION),
        }

    def _diff_files_json(
        self, repo: _Repo, files: Sequence[DiffFile], old_commit: str, new_commit: str
    ) -> list[dict[str, Any]]:
        api = self._api(repo)
        html = self._html(repo)
        statuses = {"A": "added", "D": "removed", "M": "modified", "R": "renamed", "C": "copied", "T": "changed"}
        out = []
        for f in files:
            removed = f.status == "D"
            at = old_commit if removed else new_commit
            entry: dict[str, Any] = {
                "sha": f.old_sha if removed else f.new_sha,
                "filename": f.path,
                "status": statuses.get(f.status, "changed"),
                "additions": f.additions,
                "deletions": f.deletions,
                "changes": f.additions + f.deletions,
                "blob_url": f"{html}/blob/{at}/{_q(f.path)}",
                "raw_url": f"{self.url}/raw/{repo.full_name}/{at}/{_q(f.path)}",
                "contents_url": f"{api}/contents/{_q(f.path)}?ref={at}",
            }
            if f.status == "R":
                entry["previous_filename"] = f.old_path
            out.append(entry)
        return out

    def _content_json(
        self,
        repo: _Repo,
        entry: TreeEntry,
        ref: str,
        size: int | None,
        content: bytes | None = None,
        *,
        inline: bool = True,
    ) -> dict[str, Any]:
        api = self._api(repo)
        html = self._html(repo)
        kind = {"tree": "dir", "commit": "submodule"}.get(entry.type, "symlink" if entry.mode == "120000" else "file")
        path_q = _q(entry.path)
        self_url = f"{api}/contents/{path_q}?ref={_q(ref, safe='')}"
        git_url = None if kind == "submodule" else f"{api}/git/{'trees' if kind == 'dir' else 'blobs'}/{entry.sha}"
        html_url = f"{html}/{'tree' if kind == 'dir' else 'blob'}/{_q(ref)}/{path_q}"
        obj: dict[str, Any] = {"type": kind}
        if content is not None:
            obj["encoding"] = "base64" if inline else "none"
        obj.update({"size": size or 0, "name": entry.name, "path": entry.path})
        if content is not None:
            obj["content"] = _b64_wrapped(content) if inline else ""
            if kind == "symlink":
                obj["target"] = content.decode("utf-8", "replace")
        obj.update(
            {
                "sha": entry.sha,
                "url": self_url,
                "git_url": git_url,
                "html_url": html_url,
                "download_url": f"{self.url}/raw/{repo.full_name}/{_q(ref)}/{path_q}"
                if kind in ("file", "symlink")
                else None,
                "_links": {"self": self_url, "git": git_url, "html": html_url},
            }
        )
        return obj

    def _paginate(self, req: _Request, items: Sequence[Any]) -> tuple[list[Any], list[tuple[str, str]]]:
        """Slice ``items`` by ``page``/``per_page`` and build the ``Link`` header."""
        per_page = _int_param(req.q("per_page"), 30, 1, 100)
        page = _int_param(req.q("page"), 1, 1, None)
        last = max(1, -(-len(items) // per_page))
        chunk = list(items[(page - 1) * per_page : page * per_page])
        if last == 1 and page == 1:
            return chunk, []
        params = [(k, v) for k, vs in req.query.items() for v in vs if k not in ("page", "access_token")]

        def link(n: int) -> str:
            return f"{self.url}{req.path}?{urllib.parse.urlencode([*params, ('page', str(n))])}"

        rels = []
        if page > 1:
            rels.append(f'<{link(min(page - 1, last))}>; rel="prev"')
        if page < last:
            rels.append(f'<{link(page + 1)}>; rel="next"')
            rels.append(f'<{link(last)}>; rel="last"')
        if page > 1:
            rels.append(f'<{link(1)}>; rel="first"')
        return chunk, [("Link", ", ".join(rels))]

    # ------------------------------------------------------------ handlers: accounts
    def _h_user(self, req: _Request) -> Response:
        if self.token is not None and not req.authenticated:
            return _error(401, "Requires authentication", doc=f"{DOCS}/users/users#get-the-authenticated-user")
        user = self._account(self.login)
        user.update(
            {
                "name": self.login,
                "company": None,
                "blog": "",
                "location": None,
                "email": None,
                "hireable": None,
                "bio": None,
                "twitter_username": None,
                "notification_email": None,
                "public_repos": sum(1 for r in self._repos.values() if r.owner.lower() == self.login.lower()),
                "public_gists": 0,
                "followers": 0,
                "following": 0,
                "created_at": _CREATED_AT,
                "updated_at": _CREATED_AT,
                "private_gists": 0,
                "total_private_repos": 0,
                "owned_private_repos": 0,
                "disk_usage": 0,
                "collaborators": 0,
                "two_factor_authentication": True,
                "plan": {"name": "free", "space": 976562499, "collaborators": 0, "private_repos": 10000},
            }
        )
        return _json(200, user)

    def _owners(self) -> dict[str, str]:
        return {r.owner.lower(): r.owner for r in self._repos.values()}

    def _h_users(self, req: _Request, login: str) -> Response:
        known = self._owners()
        known[self.login.lower()] = self.login
        if login.lower() not in known:
            return _not_found(f"{DOCS}/users/users#get-a-user")
        acct = self._account(known[login.lower()])
        acct.update(
            {
                "name": acct["login"],
                "public_repos": 0,
                "public_gists": 0,
                "followers": 0,
                "following": 0,
                "created_at": _CREATED_AT,
                "updated_at": _CREATED_AT,
            }
        )
        return _json(200, acct)

    def _h_org(self, req: _Request, org: str) -> Response:
        owners = self._owners()
        if org.lower() not in owners or org.lower() == self.login.lower():
            return _not_found(f"{DOCS}/orgs/orgs#get-an-organization")
        login = owners[org.lower()]
        oid = _stable_id("org", login.lower())
        base = f"{self.url}/orgs/{login}"
        return _json(
            200,
            {
                "login": login,
                "id": oid,
                "node_id": _node_id("Organization", oid),
                "url": base,
                "repos_url": f"{base}/repos",
                "events_url": f"{base}/events",
                "hooks_url": f"{base}/hooks",
                "issues_url": f"{base}/issues",
                "members_url": f"{base}/members{{/member}}",
                "public_members_url": f"{base}/public_members{{/member}}",
                "avatar_url": f"{self.url}/avatars/u/{oid}?v=4",
                "description": None,
                "name": login,
                "company": None,
                "blog": "",
                "location": None,
                "email": None,
                "twitter_username": None,
                "is_verified": False,
                "has_organization_projects": True,
                "has_repository_projects": True,
                "public_repos": sum(1 for r in self._repos.values() if r.owner.lower() == org.lower()),
                "public_gists": 0,
                "followers": 0,
                "following": 0,
                "html_url": f"{self._html()}/{login}",
                "created_at": _CREATED_AT,
                "updated_at": _CREATED_AT,
                "archived_at": None,
                "type": "Organization",
            },
        )

    def _h_rate_limit(self, bucket_name: str) -> Response:
        with self._lock:
            b = self._buckets[bucket_name]
            core = {"limit": b.limit, "used": b.limit - b.remaining, "remaining": b.remaining, "reset": b.reset}
        other = {"limit": 30, "used": 0, "remaining": 30, "reset": core["reset"]}
        resources = {
            name: dict(other)
            for name in (
                "search",
                "graphql",
                "integration_manifest",
                "source_import",
                "code_scanning_upload",
                "actions_runner_registration",
                "scim",
                "dependency_snapshots",
                "code_search",
            )
        }
        resources["core"] = core
        return _json(200, {"resources": resources, "rate": core})

    # ------------------------------------------------------------ handlers: repository reads
    def _h_repo(self, req: _Request, repo: _Repo) -> Response:
        return _json(200, self._repo_json(repo, req.authenticated))

    def _h_branches(self, req: _Request, repo: _Repo) -> Response:
        api = self._api(repo)
        items = [
            {"name": name, "commit": {"sha": sha, "url": f"{api}/commits/{sha}"}, "protected": False}
            for name, sha in repo.git.branches()
        ]
        page, headers = self._paginate(req, items)
        return _json(200, page, headers)

    def _h_branch(self, req: _Request, repo: _Repo, branch: str) -> Response:
        sha = repo.git.branch_sha(branch)
        if sha is None:
            return _error(404, "Branch not found", doc=f"{DOCS}/branches/branches#get-a-branch")
        api = self._api(repo)
        return _json(
            200,
            {
                "name": branch,
                "commit": self._commit_json(repo, repo.git.read_commit(sha)),
                "_links": {"self": f"{api}/branches/{_q(branch)}", "html": f"{self._html(repo)}/tree/{_q(branch)}"},
                "protected": False,
                "protection": {
                    "enabled": False,
                    "required_status_checks": {"enforcement_level": "off", "contexts": [], "checks": []},
                },
                "protection_url": f"{api}/branches/{_q(branch)}/protection",
            },
        )

    def _h_commit(self, req: _Request, repo: _Repo, ref: str) -> Response:
        sha = repo.git.resolve_commit(ref)
        if sha is None:
            return _error(422, f"No commit found for SHA: {ref}", doc=f"{DOCS}/commits/commits#get-a-commit")
        c = repo.git.read_commit(sha)
        parent = c.parents[0] if c.parents else EMPTY_TREE
        diff = repo.git.diff(parent, sha)
        body = self._commit_json(repo, c)
        adds = sum(f.additions for f in diff)
        dels = sum(f.deletions for f in diff)
        body["stats"] = {"total": adds + dels, "additions": adds, "deletions": dels}
        body["files"] = self._diff_files_json(repo, diff[: self.compare_files_limit], parent, sha)
        return _json(200, body)

    def _h_git_commit(self, req: _Request, repo: _Repo, sha: str) -> Response:
        full = repo.git.ref_sha(sha.lower()) if _HEX_ABBREV.fullmatch(sha) else None
        if full is None or not full.startswith(sha.lower()):
            return _not_found(f"{DOCS}/git/commits#get-a-commit-object")
        return _json(200, self._git_commit_json(repo, repo.git.read_commit(full)))

    def _h_tree(self, req: _Request, repo: _Repo, tree: str) -> Response:
        tree_sha = repo.git.resolve_tree(tree)
        if tree_sha is None:
            return _not_found(f"{DOCS}/git/trees#get-a-tree")
        recursive = "recursive" in req.query  # any value, even "0" or "false", recurses (GitHub docs)
        entries = repo.git.ls_tree(tree_sha, recursive=recursive)
        truncated = len(entries) > self.tree_entry_limit
        entries = entries[: self.tree_entry_limit]
        sizes = repo.git.object_info(e.sha for e in entries if e.type == "blob")
        api = self._api(repo)
        out = []
        for e in entries:
            item: dict[str, Any] = {"path": e.path, "mode": e.mode, "type": e.type, "sha": e.sha}
            if e.type == "blob":
                info = sizes.get(e.sha)
                if info is not None:
                    item["size"] = info[1]
                item["url"] = f"{api}/git/blobs/{e.sha}"
            elif e.type == "tree":
                item["url"] = f"{api}/git/trees/{e.sha}"
            out.append(item)
        return _json(200, {"sha": tree_sha, "url": f"{api}/git/trees/{tree_sha}", "tree": out, "truncated": truncated})

    def _h_blob(self, req: _Request, repo: _Repo, sha: str) -> Response:
        sha = sha.lower()
        info = repo.git.object_info([sha]).get(sha) if _HEX40.fullmatch(sha) else None
        if info is None or info[0] != "blob":
            return _not_found(f"{DOCS}/git/blobs#get-a-blob")
        data = repo.git.read_blob(sha)
        return _json(
            200,
            {
                "sha": sha,
                "node_id": _node_id("Blob", f"{repo.id}:{sha}"),
                "size": len(data),
                "url": f"{self._api(repo)}/git/blobs/{sha}",
                "content": _b64_wrapped(data),
                "encoding": "base64",
            },
        )

    def _ref_json(self, repo: _Repo, name: str, sha: str, kind: str) -> dict[str, Any]:
        api = self._api(repo)
        return {
            "ref": name,
            "node_id": _node_id("Ref", f"{repo.id}:{name}"),
            "url": f"{api}/git/{_q(name)}",
            "object": {"sha": sha, "type": kind, "url": f"{api}/git/{'tags' if kind == 'tag' else 'commits'}/{sha}"},
        }

    def _h_git_ref(self, req: _Request, repo: _Repo, ref: str) -> Response:
        full = f"refs/{ref}"
        for name, sha, kind in repo.git.refs(full):
            if name == full:
                return _json(200, self._ref_json(repo, name, sha, kind))
        return _not_found(f"{DOCS}/git/refs#get-a-reference")

    def _h_git_refs(self, req: _Request, repo: _Repo, ref: str = "") -> Response:
        full = f"refs/{ref}"
        rows = [r for r in repo.git.refs("refs/") if r[0] == full or r[0].startswith(full.rstrip("/") + "/")]
        exact = [r for r in rows if r[0] == full]
        if exact:
            return _json(200, self._ref_json(repo, *exact[0]))
        if not rows:
            return _not_found(f"{DOCS}/git/refs#get-a-reference")
        return _json(200, [self._ref_json(repo, *r) for r in rows])

    def _h_matching_refs(self, req: _Request, repo: _Repo, ref: str) -> Response:
        full = f"refs/{ref}"
        rows = [r for r in repo.git.refs("refs/") if r[0].startswith(full)]
        page, headers = self._paginate(req, [self._ref_json(repo, *r) for r in rows])
        return _json(200, page, headers)

    def _h_compare(self, req: _Request, repo: _Repo, basehead: str) -> Response:
        doc = f"{DOCS}/commits/commits#compare-two-commits"
        base_name, sep, head_name = basehead.partition("...")
        if not sep or not base_name or not head_name:
            return _not_found(doc)
        base = repo.git.resolve_commit(self._strip_owner(repo, base_name))
        head = repo.git.resolve_commit(self._strip_owner(repo, head_name))
        if base is None or head is None:
            return _not_found(doc)
        merge_base = repo.git.merge_base(base, head)
        if merge_base is None:
            return _error(404, f"No common ancestor between {base_name} and {head_name}.", doc=doc)
        ahead = repo.git.count(base, head)
        behind = repo.git.count(head, base)
        status = (
            "identical"
            if not ahead and not behind
            else "ahead"
            if not behind
            else "behind"
            if not ahead
            else "diverged"
        )
        commit_shas = repo.git.rev_list(base, head) if ahead else []
        paged = "page" in req.query or "per_page" in req.query
        link_headers: list[tuple[str, str]] = []
        if paged:
            commit_shas, link_headers = self._paginate(req, commit_shas)
        else:
            commit_shas = commit_shas[: self.compare_commits_limit]
        infos = repo.git.read_commits([base, merge_base, *commit_shas])
        api = self._api(repo)
        html = self._html(repo)
        body: dict[str, Any] = {
            "url": f"{api}/compare/{_q(base_name)}...{_q(head_name)}",
            "html_url": f"{html}/compare/{_q(base_name)}...{_q(head_name)}",
            "permalink_url": f"{html}/compare/{repo.owner}:{base[:7]}...{repo.owner}:{head[:7]}",
            "diff_url": f"{html}/compare/{_q(base_name)}...{_q(head_name)}.diff",
            "patch_url": f"{html}/compare/{_q(base_name)}...{_q(head_name)}.patch",
            "base_commit": self._commit_json(repo, infos[base]),
            "merge_base_commit": self._commit_json(repo, infos[merge_base]),
            "status": status,
            "ahead_by": ahead,
            "behind_by": behind,
            "total_commits": ahead,
            "commits": [self._commit_json(repo, infos[s]) for s in commit_shas],
        }
        if not paged or _int_param(req.q("page"), 1, 1, None) == 1:
            files = repo.git.diff(merge_base, head) if merge_base != head else []
            body["files"] = self._diff_files_json(repo, files[: self.compare_files_limit], merge_base, head)
        return _json(200, body, link_headers)

    @staticmethod
    def _strip_owner(repo: _Repo, name: str) -> str:
        owner, sep, rest = name.partition(":")
        if sep and owner.lower() == repo.owner.lower():
            return (
                rest.split(":", 1)[-1] if ":" in rest and rest.split(":", 1)[0].lower() == repo.name.lower() else rest
            )
        return name

    def _h_get_contents(self, req: _Request, repo: _Repo, path: str = "") -> Response:
        doc = f"{DOCS}/repos/contents#get-repository-content"
        ref = req.q("ref") or repo.git.default_branch()
        commit = repo.git.resolve_commit(ref)
        if commit is None:
            return _error(404, f"No commit found for the ref {ref}", doc=doc)
        path = path.strip("/")
        entry = repo.git.lookup(commit, path) if _valid_path(path) or not path else None
        if entry is None:
            return _not_found(doc)
        accept = (req.headers.get("Accept") or "").lower()
        if entry.type == "tree":
            children = repo.git.ls_tree(entry.sha)[: self.directory_entry_limit]
            sizes = repo.git.object_info(c.sha for c in children if c.type == "blob")
            listing = []
            for child in children:
                full = TreeEntry(child.mode, child.type, child.sha, f"{path}/{child.path}" if path else child.path)
                info = sizes.get(child.sha)
                listing.append(self._content_json(repo, full, ref, info[1] if info else 0))
            if "application/vnd.github.object" in accept:
                obj = self._content_json(repo, entry, ref, 0)
                obj["entries"] = listing
                return _json(200, obj)
            return _json(200, listing)
        if entry.type == "commit":
            obj = self._content_json(repo, entry, ref, 0)
            obj["submodule_git_url"] = None
            return _json(200, obj)
        info = repo.git.object_info([entry.sha]).get(entry.sha)
        if info is None:
            raise RuntimeError(f"blob {entry.sha} of `{path}` is missing from the object store")
        if info[1] > self.content_max_size:
            return _error(
                403,
                "This API returns blobs up to 100 MB in size. The requested blob is too large to fetch via the API.",
                [{"resource": "Blob", "field": "data", "code": "too_large"}],
                doc=doc,
            )
        data = repo.git.read_blob(entry.sha)
        if "application/vnd.github.raw" in accept or "application/vnd.github.v3.raw" in accept:
            return Response(200, data, "application/vnd.github.raw")
        inline = len(data) <= self.content_inline_limit
        return _json(200, self._content_json(repo, entry, ref, len(data), data, inline=inline))

    def _h_raw(self, owner: str, name: str, rest: str) -> Response:
        not_found = Response(404, b"404: Not Found", "text/plain; charset=utf-8")
        repo = self._repos.get(f"{urllib.parse.unquote(owner)}/{urllib.parse.unquote(name)}".lower())
        if repo is None:
            return not_found
        parts = [urllib.parse.unquote(p) for p in rest.split("/")]
        for i in range(1, len(parts)):  # refs may contain slashes: try the shortest ref first
            commit = repo.git.resolve_commit("/".join(parts[:i]))
            if commit is None:
                continue
            entry = repo.git.lookup(commit, "/".join(parts[i:]))
            if entry is not None and entry.type == "blob":
                return Response(200, repo.git.read_blob(entry.sha), "text/plain; charset=utf-8")
        return not_found

    # ------------------------------------------------------------ handlers: writes
    def _person_from(self, value: Any, field: str, default: Person) -> Person:
        if value is None:
            return default
        if not isinstance(value, dict):
            message = f"Invalid request.\n\nFor 'properties/{field}', {json.dumps(value)} is not an object."
            raise HTTPError(_error(422, message))
        for key in ("name", "email"):
            if not isinstance(value.get(key), str) or not value.get(key):
                raise HTTPError(
                    _error(
                        422,
                        f'Invalid request.\n\n"{key}" wasn\'t supplied.',
                        doc=f"{DOCS}/repos/contents#create-or-update-file-contents",
                    )
                )
        epoch, tz = default.epoch, "+0000"
        if value.get("date") is not None:
            try:
                when = dt.datetime.fromisoformat(str(value["date"]).replace("Z", "+00:00"))
            except ValueError:
                raise HTTPError(
                    _error(422, f"Invalid request.\n\n{value['date']!r} is not a valid date-time.")
                ) from None
            if when.tzinfo is None:
                when = when.replace(tzinfo=dt.timezone.utc)
            epoch = int(when.timestamp())
            offset = int(when.utcoffset().total_seconds() // 60)  # type: ignore[union-attr]
            tz = f"{'+' if offset >= 0 else '-'}{abs(offset) // 60:02d}{abs(offset) % 60:02d}"
        return Person(value["name"], value["email"], epoch, tz)

    def _h_put_contents(self, req: _Request, repo: _Repo, path: str) -> Response:
        doc = f"{DOCS}/repos/contents#create-or-update-file-contents"
        data = req.json_body()
        if not isinstance(data, dict):
            return _error(400, "Problems parsing JSON", doc=doc)
        missing = [k for k in ("message", "content") if not isinstance(data.get(k), str)]
        if missing:
            names = ", ".join(f'"{k}"' for k in missing)
            return _error(
                422, f"Invalid request.\n\n{names} {'wasn' if len(missing) == 1 else 'weren'}'t supplied.", doc=doc
            )
        path = path.strip("/")
        if not _valid_path(path):
            return _error(
                422,
                "path contains a malformed path component",
                [{"resource": "Commit", "field": "path", "code": "invalid"}],
                doc=doc,
            )
        try:
            content = base64.b64decode("".join(data["content"].split()), validate=True)
        except (binascii.Error, ValueError):
            return _error(422, "content is not valid Base64", doc=doc)
        now = int(time.time())
        default_person = Person(self.login, self._noreply_email(), now)
        committer = self._person_from(data.get("committer"), "committer", default_person)
        author = self._person_from(data.get("author"), "author", committer)
        branch = data.get("branch") or repo.git.default_branch()
        sha_given = data.get("sha")
        with self._write_lock:
            head = repo.git.branch_sha(str(branch))
            if head is None:
                return _error(404, f"Branch {branch} not found", doc=doc)
            existing = repo.git.lookup(head, path)
            if existing is not None and existing.type != "blob":
                return _error(422, f"Invalid request.\n\n{path} is a directory.", doc=doc)
            if existing is not None:
                if not sha_given:
                    return _error(422, 'Invalid request.\n\n"sha" wasn\'t supplied.', doc=doc)
                if sha_given != existing.sha:
                    return _error(409, f"{path} does not match {sha_given}", doc=doc)
            blob = repo.git.write_blob(content)
            mode = existing.mode if existing is not None else "100644"
            try:
                tree = repo.git.tree_with_file(repo.git.read_commit(head).tree, path, blob, mode)
            except ValueError as err:
                return _error(422, f"Invalid request.\n\n{err}.", doc=doc)
            commit = repo.git.commit_tree(tree, [head], data["message"], author, committer)
            if not repo.git.update_ref(f"refs/heads/{branch}", commit, head, f"github emulator: {data['message']}"):
                return _error(409, f"Could not update refs/heads/{branch}: it moved concurrently", doc=doc)
        entry = TreeEntry(mode, "blob", blob, path)
        content_obj = self._content_json(repo, entry, str(branch), len(content))
        return _json(
            201 if existing is None else 200,
            {"content": content_obj, "commit": self._git_commit_json(repo, repo.git.read_commit(commit))},
        )

    def _h_create_ref(self, req: _Request, repo: _Repo) -> Response:
        doc = f"{DOCS}/git/refs#create-a-reference"
        data = req.json_body()
        if not isinstance(data, dict):
            return _error(400, "Problems parsing JSON", doc=doc)
        for key in ("ref", "sha"):
            if not isinstance(data.get(key), str):
                return _error(422, f'Invalid request.\n\n"{key}" wasn\'t supplied.', doc=doc)
        ref, sha = data["ref"], data["sha"].lower()
        if not ref.startswith("refs/") or ref.count("/") < 2:
            return _error(422, "Reference name must contain at least three slash-separated components.", doc=doc)
        if not repo.git.check_ref_format(ref):
            return _error(422, f"{ref} is not a valid ref name.", doc=doc)
        with self._write_lock:
            if repo.git.ref_exists(ref):
                return _error(422, "Reference already exists", doc=doc)
            kind = repo.git.object_type(sha) if _HEX40.fullmatch(sha) else None
            if kind not in ("commit", "tag"):
                return _error(422, "Object does not exist", doc=doc)
            if not repo.git.update_ref(ref, sha, "", "github emulator: create ref"):
                return _error(422, "Reference update failed", doc=doc)
        body = self._ref_json(repo, ref, sha, kind)
        return _json(201, body, [("Location", body["url"])])

    def _h_update_ref(self, req: _Request, repo: _Repo, ref: str) -> Response:
        doc = f"{DOCS}/git/refs#update-a-reference"
        data = req.json_body()
        if not isinstance(data, dict):
            return _error(400, "Problems parsing JSON", doc=doc)
        if not isinstance(data.get("sha"), str):
            return _error(422, 'Invalid request.\n\n"sha" wasn\'t supplied.', doc=doc)
        full, sha, force = f"refs/{ref}", data["sha"].lower(), bool(data.get("force", False))
        with self._write_lock:
            old = repo.git.ref_sha(full)
            if old is None:
                return _error(422, "Reference does not exist", doc=doc)
            kind = repo.git.object_type(sha) if _HEX40.fullmatch(sha) else None
            if kind not in ("commit", "tag"):
                return _error(422, "Object does not exist", doc=doc)
            if not force and repo.git.merge_base(old, sha) != old:
                return _error(422, "Update is not a fast forward", doc=doc)
            if not repo.git.update_ref(full, sha, old, "github emulator: update ref"):
                return _error(422, "Reference update failed", doc=doc)
        return _json(200, self._ref_json(repo, full, sha, kind))

    # ------------------------------------------------------------ handlers: pulls
    def _pull_json(self, repo: _Repo, pr: _PullRequest, detail: bool) -> dict[str, Any]:
        api = self._api(repo)
        html = self._html(repo)
        head_sha = repo.git.branch_sha(pr.head) or pr.head_sha
        base_sha = repo.git.branch_sha(pr.base) or pr.base_sha
        owner = self._account(repo.owner)
        repo_json = self._repo_json(repo, True)
        pr_id = _stable_id("pull", f"{repo.full_name}#{pr.number}")
        links = {
            "self": f"{api}/pulls/{pr.number}",
            "html": f"{html}/pull/{pr.number}",
            "issue": f"{api}/issues/{pr.number}",
            "comments": f"{api}/issues/{pr.number}/comments",
            "review_comments": f"{api}/pulls/{pr.number}/comments",
            "review_comment": f"{api}/pulls/comments{{/number}}",
            "commits": f"{api}/pulls/{pr.number}/commits",
            "statuses": f"{api}/statuses/{head_sha}",
        }
        body: dict[str, Any] = {
            "url": links["self"],
            "id": pr_id,
            "node_id": _node_id("PullRequest", pr_id),
            "html_url": links["html"],
            "diff_url": f"{html}/pull/{pr.number}.diff",
            "patch_url": f"{html}/pull/{pr.number}.patch",
            "issue_url": links["issue"],
            "number": pr.number,
            "state": pr.state,
            "locked": False,
            "title": pr.title,
            "user": self._account(self.login),
            "body": pr.body,
            "created_at": pr.created_at,
            "updated_at": pr.created_at,
            "closed_at": pr.merged_at,
            "merged_at": pr.merged_at,
            "merge_commit_sha": pr.merge_commit_sha,
            "assignee": None,
            "assignees": [],
            "requested_reviewers": [],
            "requested_teams": [],
            "labels": [],
            "milestone": None,
            "draft": pr.draft,
            "commits_url": links["commits"],
            "review_comments_url": links["review_comments"],
            "review_comment_url": links["review_comment"],
            "comments_url": links["comments"],
            "statuses_url": links["statuses"],
            "head": {
                "label": f"{repo.owner}:{pr.head}",
                "ref": pr.head,
                "sha": head_sha,
                "user": owner,
                "repo": repo_json,
            },
            "base": {
                "label": f"{repo.owner}:{pr.base}",
                "ref": pr.base,
                "sha": base_sha,
                "user": owner,
                "repo": repo_json,
            },
            "_links": {k: {"href": v} for k, v in links.items()},
            "author_association": "OWNER" if repo.owner.lower() == self.login.lower() else "MEMBER",
            "auto_merge": None,
            "active_lock_reason": None,
        }
        if detail:
            base_mb = repo.git.merge_base(base_sha, head_sha)
            diff = repo.git.diff(base_mb, head_sha) if base_mb else []
            body.update(
                {
                    "merged": pr.merged_at is not None,
                    "mergeable": None,
                    "rebaseable": None,
                    "mergeable_state": "unknown",
                    "merged_by": None,
                    "comments": 0,
                    "review_comments": 0,
                    "maintainer_can_modify": pr.maintainer_can_modify,
                    "commits": repo.git.count(base_sha, head_sha),
                    "additions": sum(f.additions for f in diff),
                    "deletions": sum(f.deletions for f in diff),
                    "changed_files": len(diff),
                }
            )
        return body

    def _h_list_pulls(self, req: _Request, repo: _Repo) -> Response:
        state = req.q("state", "open")
        head = req.q("head")
        base = req.q("base")
        pulls = []
        for pr in sorted(repo.pulls, key=lambda p: p.number, reverse=True):
            if state != "all" and pr.state != state:
                continue
            if head:
                owner, sep, branch = head.partition(":")
                if sep and (owner.lower() != repo.owner.lower() or branch != pr.head):
                    continue
                if not sep and head != pr.head:
                    continue
            if base and base != pr.base:
                continue
            pulls.append(pr)
        page, headers = self._paginate(req, pulls)
        return _json(200, [self._pull_json(repo, p, detail=False) for p in page], headers)

    def _h_get_pull(self, req: _Request, repo: _Repo, number: str) -> Response:
        for pr in repo.pulls:
            if pr.number == int(number):
                return _json(200, self._pull_json(repo, pr, detail=True))
        return _not_found(f"{DOCS}/pulls/pulls#get-a-pull-request")

    def _h_merge_pull(self, req: _Request, repo: _Repo, number: str) -> Response:
        doc = f"{DOCS}/pulls/pulls#merge-a-pull-request"
        data = req.json_body()
        data = data if isinstance(data, dict) else {}
        method = data.get("merge_method", "merge")
        with self._write_lock:
            pr = next((p for p in repo.pulls if p.number == int(number)), None)
            if pr is None:
                return _not_found(doc)
            if method not in ("merge", "squash"):
                return _error(405, f"{str(method).capitalize()} merges are not allowed on this repository.", doc=doc)
            head_sha, base_sha = repo.git.branch_sha(pr.head), repo.git.branch_sha(pr.base)
            if pr.state != "open" or head_sha is None or base_sha is None:
                return _error(405, "Pull Request is not mergeable", doc=doc)
            if data.get("sha") not in (None, head_sha):
                return _error(409, "Head branch was modified. Review and try the merge again.", doc=doc)
            merged = repo.git.run("merge-tree", "--write-tree", base_sha, head_sha, check=False)
            if merged.returncode != 0:
                return _error(405, "Pull Request is not mergeable", doc=doc)
            tree = merged.stdout.decode().split("\n", 1)[0].strip()
            person = Person(self.login, self._noreply_email(), int(time.time()))
            if method == "squash":
                title = data.get("commit_title") or f"{pr.title} (#{pr.number})"
                parents = [base_sha]
            else:
                title = data.get("commit_title") or f"Merge pull request #{pr.number} from {repo.owner}/{pr.head}"
                parents = [base_sha, head_sha]
            message = f"{title}\n\n{data.get('commit_message') or pr.title}\n"
            sha = repo.git.commit_tree(tree, parents, message, person, person)
            if not repo.git.update_ref(f"refs/heads/{pr.base}", sha, base_sha, "github emulator: merge pull"):
                return _error(409, "Base branch was modified. Review and try the merge again.", doc=doc)
            pr.state = "closed"
            pr.head_sha, pr.base_sha = head_sha, base_sha
            pr.merged_at = person.iso()
            pr.merge_commit_sha = sha
        return _json(200, {"sha": sha, "merged": True, "message": "Pull Request successfully merged"})

    def _h_create_pull(self, req: _Request, repo: _Repo) -> Response:
        doc = f"{DOCS}/pulls/pulls#create-a-pull-request"
        data = req.json_body()
        if not isinstance(data, dict):
            return _error(400, "Problems parsing JSON", doc=doc)

        def invalid(*errors: dict[str, Any]) -> Response:
            return _error(422, "Validation Failed", list(errors), doc=doc)

        for key in ("head", "base"):
            if not isinstance(data.get(key), str) or not data[key]:
                return invalid({"resource": "PullRequest", "field": key, "code": "missing_field"})
        if not isinstance(data.get("title"), str) or not data["title"]:
            return invalid({"resource": "Issue", "field": "title", "code": "missing_field"})
        head_owner, sep, head = data["head"].rpartition(":")
        if not sep:
            head_owner, head = repo.owner, data["head"]
        base = data["base"]
        with self._write_lock:
            head_sha = repo.git.branch_sha(head) if head_owner.lower() == repo.owner.lower() else None
            if head_sha is None:
                return invalid({"resource": "PullRequest", "field": "head", "code": "invalid"})
            base_sha = repo.git.branch_sha(base)
            if base_sha is None:
                return invalid({"resource": "PullRequest", "field": "base", "code": "invalid"})
            if any(p.state == "open" and p.head == head and p.base == base for p in repo.pulls):
                return invalid(
                    {
                        "resource": "PullRequest",
                        "code": "custom",
                        "message": f"A pull request already exists for {repo.owner}:{head}.",
                    }
                )
            if repo.git.merge_base(base_sha, head_sha) is None:
                return invalid(
                    {
                        "resource": "PullRequest",
                        "code": "custom",
                        "message": f"The {head} branch has no history in common with {base}",
                    }
                )
            if repo.git.count(base_sha, head_sha) == 0:
                return invalid(
                    {"resource": "PullRequest", "code": "custom", "message": f"No commits between {base} and {head}"}
                )
            number = max((p.number for p in repo.pulls), default=0) + 1
            pr = _PullRequest(
                number=number,
                title=data["title"],
                body=data.get("body"),
                head=head,
                head_sha=head_sha,
                base=base,
                base_sha=base_sha,
                draft=bool(data.get("draft", False)),
                maintainer_can_modify=bool(data.get("maintainer_can_modify", False)),
                created_at=dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            )
            repo.pulls.append(pr)
        body = self._pull_json(repo, pr, detail=True)
        return _json(201, body, [("Location", body["url"])])


def _int_param(value: str | None, default: int, lo: int, hi: int | None) -> int:
    try:
        n = int(value) if value is not None else default
    except ValueError:
        n = default
    n = max(lo, n)
    return min(hi, n) if hi is not None else n


def _valid_path(path: str) -> bool:
    return bool(path) and all(p not in ("", ".", "..", ".git") and "\0" not in p for p in path.split("/"))


# -------------------------------------------------------------------------- CLI


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: serve repositories until SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser(prog="python -m tests.emulators.github", description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--repo",
        action="append",
        required=True,
        metavar="OWNER/NAME=PATH",
        help="serve the git repository at PATH as OWNER/NAME (repeatable)",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token", default="test-token", help="the accepted token (default: test-token)")
    parser.add_argument("--no-auth", action="store_true", help="accept any request without a token")
    parser.add_argument("--login", default="test-user", help="login of the authenticated user")
    args = parser.parse_args(argv)
    repos: dict[str, str] = {}
    for spec in args.repo:
        name, sep, path = spec.partition("=")
        if not sep:
            parser.error(f"--repo needs OWNER/NAME=PATH, got `{spec}`")
        repos[name] = path
    emulator = GitHubEmulator(repos, None if args.no_auth else args.token, args.host, args.port, login=args.login)
    return emulator.serve_until_signalled()


if __name__ == "__main__":
    sys.exit(main())
