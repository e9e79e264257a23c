"""A stateful Zenodo REST API emulator (the project's ``shared/specs/zenodo-github-apis.md``, part A).

Depositions, versions (concepts), buckets, files, publishing and record downloads, in either
behaviour of the spec's A.6 table: ``behaviour="rdm"`` (zenodo.org since October 2023, the
default) or ``behaviour="legacy"``.  Uploaded bytes are kept on disk (a temporary directory),
so multi-GB uploads cost no memory.

Python use::

    with ZenodoEmulator(token="t0k3n") as zen:
        zen.seed_kipoi(json.load(open("model-to-singularity.json")), sif_dir)
        requests.get(f"{zen.url}/api/deposit/depositions",
                     headers={"Authorization": "Bearer t0k3n"})

Standalone::

    python -m tests.emulators.zenodo [--port N] [--behaviour rdm|legacy] [--token T]
        [--seed-kipoi model-to-singularity.json [--sif-dir DIR]]

prints ``listening on http://127.0.0.1:PORT`` and serves until killed.

Endpoints
---------
- ``GET|POST /api/deposit/depositions``                               (Z1, Z2)
- ``GET|PUT|DELETE /api/deposit/depositions/{id}``                    (Z3, Z4, Z5)
- ``POST /api/deposit/depositions/{id}/actions/{newversion|publish|edit|discard}`` (Z6, Z7)
- ``GET /api/deposit/depositions/{id}/files``, ``DELETE …/files/{file_id}`` (Z8, Z9)
- ``PUT|GET|DELETE /api/files/{bucket}/{key}``, ``GET /api/files/{bucket}`` (Z10)
- ``GET /record/{id}/files/{name}`` (RDM: 301 to ``/records/…``; legacy: the bytes),
  ``GET /records/{id}/files/{name}``, ``GET /api/records/{id}/files/{name}/content`` (Z11)
- ``POST /_emulator/inject`` (JSON: the keyword arguments of :meth:`ZenodoEmulator.inject`)
  and ``GET /_emulator/requests`` for out-of-process control (no auth).

Behaviour (RDM / legacy, see A.6)
---------------------------------
- Auth: ``Authorization: Bearer <token>`` or ``?access_token=`` (accepted, but recorded in
  :attr:`ZenodoEmulator.token_in_url_violations`).  No token: 403 / 401; unknown token: 401;
  another owner's deposition: 403; missing scope (``deposit:write`` for changes,
  ``deposit:actions`` for publish/newversion/edit/discard): 403.
- Validation errors: ``errors[].messages`` (list) / ``errors[].message`` (str).  Legacy
  validates all metadata on create and update; RDM checks types on update and required
  fields at publish.  Unknown metadata keys: "Unknown field name." (both).
- New version: body is the new draft / the original deposition (``links.latest_draft`` is the
  draft in both); while a draft of the concept is open: 400 "Please remove all files first."
  / a no-op.  The draft inherits files (same ids and checksums) and metadata
  (``publication_date`` reset to today / copied).
- PUT, DELETE, publish on a published deposition: 404 / 403.  Bucket PUT answers 201 / 200.
- 500 bodies: JSON with ``error_id`` / empty.  502/503/504 from faults: gateway HTML.
- Publishing checks at least one file, and (``enforce_distinct_versions``, default on for
  legacy only) that the file checksums differ from every earlier version.

Choices where the spec says [U]
-------------------------------
- ``links.latest_draft`` of a *published* deposition: legacy points at the concept's open
  draft (else the latest version); RDM points at the deposition itself, so a client must
  search the drafts to find an open one.
- Listing (Z1): without ``all_versions``, the latest published version of each concept plus
  every draft; ``q`` matches all terms case-insensitively in title and description, and
  ``field:value`` terms on ``id``, ``recid``, ``conceptrecid`` and ``title``; default sort
  ``mostrecent`` (newest created first); default size 10, max 100.
- Bucket PUT without ``Content-Length`` (and not chunked): 411.  Over 100 files: 400.
- Seeded files without content answer 404 on download ("no content in the emulator").
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import datetime as dt
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import time
import urllib.parse
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from tests.emulators.base import (
    Dropped,
    Fault,
    HTTPEmulator,
    HTTPError,
    Request,
    Response,
    dropped,
    json_response,
    phrase,
)

__all__ = ["ZenodoEmulator", "main"]

SCOPES_ALL = frozenset({"deposit:write", "deposit:actions"})
UPLOAD_TYPES = {
    "publication", "poster", "presentation", "dataset", "image", "video",
    "software", "lesson", "physicalobject", "other",
}
ACCESS_RIGHTS = {"open", "embargoed", "restricted", "closed"}
LICENSES = {
    "mit", "cc-by-4.0", "cc-by-sa-4.0", "cc-by-nc-4.0", "cc0-1.0", "apache-2.0",
    "bsd-2-clause", "bsd-3-clause", "gpl-2.0-or-later", "gpl-3.0-or-later", "lgpl-3.0-or-later",
    "mpl-2.0", "other-open", "other-closed", "other-at", "other-nc", "other-pd",
}
METADATA_KEYS = {
    "title", "upload_type", "publication_type", "image_type", "publication_date", "description",
    "creators", "access_right", "license", "embargo_date", "access_conditions", "doi",
    "prereserve_doi", "keywords", "notes", "related_identifiers", "contributors", "references",
    "communities", "grants", "journal_title", "journal_volume", "journal_issue", "journal_pages",
    "conference_title", "conference_acronym", "conference_dates", "conference_place",
    "conference_url", "conference_session", "conference_session_part", "imprint_publisher",
    "imprint_isbn", "imprint_place", "partof_title", "partof_pages", "thesis_supervisors",
    "thesis_university", "subjects", "version", "language", "locations", "dates", "method",
}
MAX_FILES = 100
MAX_FILE_SIZE = 50 * 10**9
CHUNK = 1024 * 1024
_RATE_LIMIT = 100

_R_DEPS = re.compile(r"^/api/deposit/depositions$")
_R_DEP = re.compile(r"^/api/deposit/depositions/(?P<id>[^/]+)$")
_R_ACTION = re.compile(r"^/api/deposit/depositions/(?P<id>[^/]+)/actions/(?P<action>[a-z]+)$")
_R_FILES = re.compile(r"^/api/deposit/depositions/(?P<id>[^/]+)/files$")
_R_FILE = re.compile(r"^/api/deposit/depositions/(?P<id>[^/]+)/files/(?P<fid>[^/]+)$")
_R_BUCKET = re.compile(r"^/api/files/(?P<bucket>[^/]+)$")
_R_OBJECT = re.compile(r"^/api/files/(?P<bucket>[^/]+)/(?P<key>.+)$")
_R_OLD_RECORD = re.compile(r"^/record/(?P<id>\d+)/files/(?P<name>.+)$")
_R_RECORD_FILE = re.compile(r"^/records/(?P<id>\d+)/files/(?P<name>.+)$")
_R_API_RECORD_FILE = re.compile(r"^/api/records/(?P<id>\d+)/files/(?P<name>.+?)/content$")


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")


def _today() -> str:
    return dt.date.today().strftime("%Y-%m-%d")


# --------------------------------------------------------------------------- model


@dataclasses.dataclass
class _File:
    id: str
    key: str
    size: int
    md5: str
    blob: Path | None  # None: seeded without content
    created: str = dataclasses.field(default_factory=_now)


@dataclasses.dataclass
class _Dep:
    id: int
    owner: int
    concept: int
    bucket: str
    metadata: dict[str, Any]
    state: str = "unsubmitted"  # unsubmitted | inprogress | done
    submitted: bool = False
    files: list[_File] = dataclasses.field(default_factory=list)
    created: str = dataclasses.field(default_factory=_now)
    modified: str = dataclasses.field(default_factory=_now)
    seq: int = 0  # creation order, for sorting

    @property
    def published(self) -> bool:
        return self.state == "done"


@dataclasses.dataclass
class _Fault(Fault):
    """Zenodo's own fault kinds besides a status or a dropped connection (:meth:`ZenodoEmulator.inject`)."""

    drop_after_bytes: int | None = None
    corrupt: bool = False
    stall: float | None = None


class _Request(Request):
    def json(self) -> Any:
        raw = self.body()
        if not raw.strip():
            return {}
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype != "application/json":
            message = "Unsupported media type: the request body must be JSON."
            raise HTTPError(json_response(415, {"status": 415, "message": message}))
        try:
            return json.loads(raw)
        except ValueError:
            message = "Could not parse the request body as JSON."
            raise HTTPError(json_response(400, {"status": 400, "message": message})) from None


# --------------------------------------------------------------------------- emulator


class ZenodoEmulator(HTTPEmulator[_Request]):
    """Zenodo REST emulator.

    Args:
        token: the token of the main account (owner id :attr:`owner_id`, all scopes);
            ``None`` disables authentication.
        behaviour: ``"rdm"`` (default) or ``"legacy"`` (spec A.6).
        extra_tokens: more tokens, ``{token: {"owner": int, "scopes": [..]}}``.
        enforce_distinct_versions: publishing refuses a new version whose file checksums
            equal an earlier version's (default: legacy only).
        storage: directory for uploaded bytes (default: a temporary one, removed on stop).
        rate_limit: requests per minute per token before 429 (default: unlimited).
        prefix: a path prefix the whole API lives under (``"/zenodo"`` serves
            ``http://HOST:PORT/zenodo/api/...``, as behind a reverse proxy); requests
            outside it answer 404. :attr:`url` includes it; ``requests_log`` paths are as
            received (with the prefix), fault ``path_prefix``es are matched without it.

    Attributes:
        requests_log: every request: ``method``, ``path``, ``query`` (redacted), ``headers``
            (``authorization`` redacted), ``status`` (``None`` when dropped), ``bytes`` read.
        token_in_url_violations: redacted URLs that carried a token or ``access_token``.
        server_errors: tracebacks of unexpected exceptions (answered with 500).
    """

    owner_id = 64785
    default_page_size = 10
    max_page_size = 100
    server_header = "nginx"
    thread_name = "zenodo-emulator"
    request_type = _Request

    def __init__(
        self,
        token: str | None = "test-token",
        *,
        behaviour: str = "rdm",
        extra_tokens: Mapping[str, Mapping[str, Any]] | None = None,
        enforce_distinct_versions: bool | None = None,
        storage: str | os.PathLike[str] | None = None,
        rate_limit: int | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        prefix: str = "",
    ) -> None:
        if behaviour not in ("rdm", "legacy"):
            raise ValueError("behaviour is `rdm` or `legacy`")
        super().__init__(host, port)
        prefix = prefix.strip("/")
        self.prefix = f"/{prefix}" if prefix else ""
        self.behaviour = behaviour
        self.token = token
        self._tokens: dict[str, tuple[int, frozenset[str]]] = {}
        if token is not None:
            self._tokens[token] = (self.owner_id, SCOPES_ALL)
        for tok, info in (extra_tokens or {}).items():
            self._tokens[tok] = (int(info.get("owner", self.owner_id)), frozenset(info.get("scopes", SCOPES_ALL)))
        self.enforce_distinct_versions = (
            behaviour == "legacy" if enforce_distinct_versions is None else enforce_distinct_versions
        )
        self.rate_limit = rate_limit
        self._own_storage = storage is None
        self.storage = Path(storage) if storage is not None else Path(tempfile.mkdtemp(prefix="zenodo-emulator-"))
        self.storage.mkdir(parents=True, exist_ok=True)
        self._deps: dict[int, _Dep] = {}
        self._buckets: dict[str, int] = {}
        self._rate: dict[str, tuple[int, int]] = {}
        self._next_id = 7_000_001
        self._seq = 0

    # ------------------------------------------------------------ lifecycle
    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:PORT`` plus the ``prefix`` (available once started)."""
        return f"{super().url}{self.prefix}"

    @property
    def deposition_url(self) -> str:
        return f"{self.url}/api/deposit/depositions"

    def start(self) -> ZenodoEmulator:
        self.storage.mkdir(parents=True, exist_ok=True)  # removed by a previous stop()
        return super().start()

    def stop(self) -> None:
        """Stop serving (a stalled request is dropped) and remove the storage the emulator made."""
        super().stop()
        if self._own_storage:
            shutil.rmtree(self.storage, ignore_errors=True)

    # ------------------------------------------------------------ test controls
    def inject(
        self,
        status: int | None = None,
        *,
        method: str | None = None,
        path_prefix: str | None = None,
        times: int = 1,
        after: int = 0,
        retry_after: int | None = None,
        body: Any = None,
        drop_connection: bool = False,
        drop_after_bytes: int | None = None,
        corrupt: bool = False,
        stall: float | None = None,
    ) -> None:
        """Make the next ``times`` requests matching ``method``/``path_prefix`` (after
        letting ``after`` matching ones through) fail:

        - ``status``: 429 (``retry_after`` adds ``Retry-After``), 500 (JSON in RDM, empty
          in legacy), 502/503/504 (gateway HTML), or any other with a JSON body (``body``
          replaces it). The request body is read first.
        - ``drop_connection``: close the socket without answering; for a bucket PUT after
          ``drop_after_bytes`` of the body (default: half of it).
        - ``corrupt``: a bucket PUT stores the bytes with the first one flipped (so its md5
          differs from what the client sent).
        - ``stall``: hold the request this many seconds before reading its body (a slow or
          hung server; an upload's client blocks once the socket buffers are full), then
          serve it normally, or with ``status`` etc. when given too. Stopping the emulator
          ends the wait and drops the connection.
        """
        if status is None and not drop_connection and not corrupt and not stall:
            raise ValueError("give a status, drop_connection, corrupt or stall")
        self._faults.add(_Fault(
            method=method, path_prefix=path_prefix, times=times, after=after, status=status,
            retry_after=retry_after, body=body, drop_connection=drop_connection,
            drop_after_bytes=drop_after_bytes, corrupt=corrupt, stall=stall,
        ))

    def deposition(self, dep_id: int) -> dict[str, Any] | None:
        """The deposition as the API would render it (``None`` if absent), without a request."""
        with self._lock:
            dep = self._deps.get(int(dep_id))
            return None if dep is None else self._dep_json(dep)

    def depositions(self) -> list[dict[str, Any]]:
        with self._lock:
            return [self._dep_json(d) for d in sorted(self._deps.values(), key=lambda d: d.seq)]

    def file_bytes(self, dep_id: int, filename: str) -> bytes | None:
        """The stored bytes of a deposition's file (``None`` if absent or content-less)."""
        with self._lock:
            dep = self._deps.get(int(dep_id))
            f = next((f for f in dep.files if f.key == filename), None) if dep else None
        return f.blob.read_bytes() if f and f.blob else None

    # ------------------------------------------------------------ seeding
    def seed_published(
        self,
        dep_id: int,
        *,
        title: str,
        description: str = "",
        files: Iterable[tuple[str, str | os.PathLike[str] | tuple[str, int]]] = (),
        concept: int | None = None,
        owner: int | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> int:
        """Add a published deposition ``dep_id`` (a new version of ``concept`` when given).

        ``files`` are ``(name, path)`` (real bytes) or ``(name, (md5, size))`` (no content).
        Versions of one concept must be seeded oldest first. Returns ``dep_id``.
        """
        with self._lock:
            if dep_id in self._deps:
                raise ValueError(f"deposition {dep_id} exists")
            if concept is None:
                concept = dep_id - 1
                while concept in self._deps or any(d.concept == concept for d in self._deps.values()):
                    concept -= 1_000_000
            md = {
                "title": title,
                "upload_type": "physicalobject",
                "description": description or title,
                "creators": [{"name": "Haimasree, Bhattacharya", "affiliation": "EMBL"}],
                "publication_date": "2022-06-01",
                "access_right": "open",
                "license": "mit" if self.behaviour == "rdm" else "MIT",
            }
            md.update(metadata or {})
            dep = self._new_dep(owner if owner is not None else self.owner_id, concept, md, dep_id=dep_id)
            for name, src in files:
                if isinstance(src, tuple):
                    md5, size = src
                    dep.files.append(_File(str(uuid.uuid4()), name, int(size), md5, None))
                else:
                    blob = self._new_blob()
                    shutil.copyfile(src, blob)
                    data_md5, size = _md5_path(blob)
                    dep.files.append(_File(str(uuid.uuid4()), name, size, data_md5, blob))
            dep.state, dep.submitted = "done", True
            self._next_id = max(self._next_id, dep_id + 1)
            return dep_id

    def seed_kipoi(
        self, singularity_index: Mapping[str, Mapping[str, str]], sif_dir: str | os.PathLike[str] | None = None
    ) -> None:
        """Seed the account as spec C.4 describes: one published concept per unique image of
        ``model-to-singularity.json`` (its record id, file ``<name>.sif`` with the index md5),
        ``5821666`` as an older version of the deeptarget concept, and ``6576723`` holding
        ``tiny-container_latest.sif`` and ``busybox_1.34.1.sif`` (real bytes from ``sif_dir``
        when given) plus two unrelated records."""
        by_name: dict[str, tuple[int, str, list[str]]] = {}
        for key, entry in singularity_index.items():
            rec = int(entry["url"].split("/")[4])
            by_name.setdefault(entry["name"], (rec, entry["md5"], []))[2].append(key)
        deeptarget = by_name.get("kipoi-docker_deeptarget-slim")
        if deeptarget:  # an older version of the deeptarget concept (spec C.1 item 3)
            self.seed_published(5821666, title="DeepTarget singularity container", concept=deeptarget[0] - 1,
                                description=_group_description("DeepTarget"),
                                files=[("kipoi-docker_deeptarget.sif", ("4c56f1ff2b6b1e8f1f3fba4bcb1d6e8a", 1))])
        for name, (rec, md5, keys) in sorted(by_name.items(), key=lambda item: item[1][0]):
            title, description = _kipoi_title(name, keys)
            self.seed_published(rec, title=title, description=description, concept=rec - 1,
                                files=[(f"{name}.sif", (md5, 1))])
        sif = Path(sif_dir) if sif_dir is not None else None
        tiny: list[tuple[str, Any]] = []
        for fname, md5 in (("tiny-container_latest.sif", "0a85bfc85e749894210d1e53b4add11d"),
                           ("busybox_1.34.1.sif", "3d5d20b1c64ffb55c86ec35623e8dfee")):
            if sif is not None and (sif / fname).is_file():
                tiny.append((fname, sif / fname))
            else:
                tiny.append((fname, (md5, 1)))
        self.seed_published(6576723, title="tiny-container test image", description="Test record of kipoi-containers",
                            files=tiny)
        self.seed_published(5000001, title="Kipoi model zoo paper figures", description="Figures",
                            files=[("figures.zip", ("0" * 32, 1))])
        self.seed_published(5000011, title="Kipoi workshop slides", description="Slides",
                            files=[("slides.pdf", ("1" * 32, 1))])

    # ------------------------------------------------------------ internals
    def _new_blob(self) -> Path:
        return self.storage / f"{uuid.uuid4().hex}.bin"

    def _new_dep(self, owner: int, concept: int, metadata: dict[str, Any], dep_id: int | None = None) -> _Dep:
        if dep_id is None:
            dep_id = self._next_id
            self._next_id += 1
        bucket = str(uuid.uuid4())
        self._seq += 1
        dep = _Dep(dep_id, owner, concept, bucket, metadata, seq=self._seq)
        self._deps[dep_id] = dep
        self._buckets[bucket] = dep_id
        return dep

    def _versions(self, concept: int) -> list[_Dep]:
        return sorted((d for d in self._deps.values() if d.concept == concept), key=lambda d: d.seq)

    def _latest_published(self, concept: int) -> _Dep | None:
        pub = [d for d in self._versions(concept) if d.published]
        return pub[-1] if pub else None

    def _open_draft(self, concept: int) -> _Dep | None:
        drafts = [d for d in self._versions(concept) if not d.published]
        return drafts[-1] if drafts else None

    # rendering
    def _links(self, dep: _Dep) -> dict[str, str]:
        base = self.url
        api = f"{base}/api/deposit/depositions/{dep.id}"
        if dep.published and self.behaviour == "legacy":
            open_draft = self._open_draft(dep.concept)
            latest = open_draft or self._latest_published(dep.concept) or dep
            latest_draft = latest.id
        else:
            latest_draft = dep.id
        links = {
            "self": api,
            "html": f"{base}/deposit/{dep.id}",
            "files": f"{api}/files",
            "bucket": f"{base}/api/files/{dep.bucket}",
            "latest_draft": f"{base}/api/deposit/depositions/{latest_draft}",
            "latest_draft_html": f"{base}/deposit/{latest_draft}",
            "publish": f"{api}/actions/publish",
            "edit": f"{api}/actions/edit",
            "discard": f"{api}/actions/discard",
            "newversion": f"{api}/actions/newversion",
        }
        if dep.published:
            latest_pub = self._latest_published(dep.concept) or dep
            links.update({
                "record": f"{base}/api/records/{dep.id}",
                "record_html": f"{base}/records/{dep.id}",
                "latest": f"{base}/api/records/{latest_pub.id}",
                "latest_html": f"{base}/records/{latest_pub.id}",
                "doi": f"https://doi.org/10.5281/zenodo.{dep.id}",
            })
        return links

    def _file_json(self, dep: _Dep, f: _File) -> dict[str, Any]:
        return {
            "id": f.id,
            "filename": f.key,
            "filesize": f.size,
            "checksum": f.md5,
            "links": {
                "self": f"{self.url}/api/deposit/depositions/{dep.id}/files/{f.id}",
                "download": f"{self.url}/api/files/{dep.bucket}/{urllib.parse.quote(f.key)}",
            },
        }

    def _object_json(self, dep: _Dep, f: _File) -> dict[str, Any]:
        link = f"{self.url}/api/files/{dep.bucket}/{urllib.parse.quote(f.key)}"
        return {
            "key": f.key,
            "size": f.size,
            "mimetype": "application/octet-stream",
            "checksum": f"md5:{f.md5}",
            "version_id": f.id,
            "created": f.created,
            "updated": f.created,
            "is_head": True,
            "delete_marker": False,
            "links": {"self": link, "version": f"{link}?versionId={f.id}", "uploads": f"{link}?uploads"},
        }

    def _dep_json(self, dep: _Dep) -> dict[str, Any]:
        md = copy.deepcopy(dep.metadata)
        md["prereserve_doi"] = {"doi": f"10.5281/zenodo.{dep.id}", "recid": dep.id}
        out: dict[str, Any] = {
            "created": dep.created,
            "modified": dep.modified,
            "id": dep.id,
            "record_id": dep.id,
            "conceptrecid": str(dep.concept),
            "owner": dep.owner,
            "title": md.get("title", ""),
            "state": dep.state,
            "submitted": dep.submitted,
            "files": [self._file_json(dep, f) for f in dep.files],
            "metadata": md,
            "links": self._links(dep),
        }
        if dep.published:
            out["doi"] = f"10.5281/zenodo.{dep.id}"
            out["doi_url"] = f"https://doi.org/10.5281/zenodo.{dep.id}"
            out["conceptdoi"] = f"10.5281/zenodo.{dep.concept}"
        return out

    # errors
    def _error(self, status: int, message: str, errors: list[tuple[str, str]] | None = None) -> Response:
        if status == 500:
            if self.behaviour == "legacy":
                return Response(500, b"", "text/plain")
            return json_response(500, {"error_id": uuid.uuid4().hex, "message": message, "status": 500})
        obj: dict[str, Any] = {"status": status, "message": message}
        if errors:
            if self.behaviour == "rdm":
                grouped: dict[str, list[str]] = {}
                for field, msg in errors:
                    grouped.setdefault(field, []).append(msg)
                obj["errors"] = [{"field": k, "messages": v} for k, v in grouped.items()]
            else:
                obj["errors"] = [{"field": k, "message": v} for k, v in errors]
        return json_response(status, obj)

    def _not_found(self) -> Response:
        msg = "The persistent identifier does not exist." if self.behaviour == "rdm" else "PID does not exist."
        return self._error(404, msg)

    def _published_refusal(self) -> Response:
        if self.behaviour == "rdm":
            return self._not_found()
        return self._error(403, "You do not have permission to edit this deposition: it is published.")

    def _validation(self, errors: list[tuple[str, str]]) -> Response:
        msg = "A validation error occurred." if self.behaviour == "rdm" else "Validation error."
        return self._error(400, msg, errors)

    def _error_answer(self, status: int, req: _Request, fault: Fault | None) -> Response:
        if status in (502, 503, 504):
            title = f"{status} {phrase(status)}"
            html = (f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
                    f"<center><h1>{title}</h1></center>\r\n<hr><center>nginx</center>\r\n"
                    "</body>\r\n</html>\r\n")
            return Response(status, html.encode(), "text/html")
        if status == 429:
            return json_response(429, {"status": 429, "message": f"{_RATE_LIMIT} per 1 minute"})
        if status == 500:
            return self._error(500, "Internal server error.")
        return self._error(status, phrase(status))

    # auth
    def _token_of(self, req: _Request) -> str | None:
        auth = req.headers.get("Authorization") or ""
        if auth.lower().startswith("bearer "):
            return auth[7:].strip()
        values = req.query.get("access_token")
        return values[0] if values else None

    def _authenticate(self, req: _Request, scope: str | None = None) -> int:
        """The caller's owner id; raises a 401/403 answer."""
        if self.token is None and not self._tokens:
            return self.owner_id
        tok = self._token_of(req)
        if not tok:
            if self.behaviour == "legacy":
                raise HTTPError(self._error(401, "The server could not verify that you are authorized to access the "
                                                 "URL requested. You either supplied the wrong credentials (e.g. a bad "
                                                 "password), or your browser doesn't understand how to supply the "
                                                 "credentials required."))
            raise HTTPError(self._error(403, "You don't have the permission to access the requested resource. It is "
                                             "either read-protected or not readable by the server."))
        info = self._tokens.get(tok)
        if info is None:
            raise HTTPError(self._error(401, "The access token provided is invalid or expired."))
        owner, scopes = info
        if scope is not None and scope not in scopes:
            raise HTTPError(self._error(403, f"The access token does not have the `{scope}` scope required."))
        if self.rate_limit is not None:
            window = int(time.time() // 60)
            with self._lock:
                w, n = self._rate.get(tok, (window, 0))
                if w != window:
                    w, n = window, 0
                n += 1
                self._rate[tok] = (w, n)
            if n > self.rate_limit:
                resp = json_response(429, {"status": 429, "message": f"{self.rate_limit} per 1 minute"})
                resp.headers.append(("Retry-After", str(60 - int(time.time()) % 60)))
                raise HTTPError(resp)
        return owner

    def _dep_for(self, req: _Request, raw_id: str, owner: int) -> _Dep:
        try:
            dep = self._deps.get(int(raw_id))
        except ValueError:
            dep = None
        if dep is None:
            raise HTTPError(self._not_found())
        if dep.owner != owner:
            raise HTTPError(self._error(403, "You don't have the permission to access this deposition."))
        return dep

    # request pipeline
    def _route_path(self, path: str) -> str:
        if self.prefix:
            if path == self.prefix or path.startswith(f"{self.prefix}/"):
                path = path[len(self.prefix):]
            else:
                path = f"/_outside_prefix{path}"  # matches no route: 404
        return super()._route_path(path)

    def _secrets(self) -> Iterable[str]:
        return list(self._tokens)

    def _log_extra(self, req: _Request) -> dict[str, Any]:
        return {"bytes": req.bytes_read}

    def _response_headers(self, req: _Request) -> list[tuple[str, str]]:
        if not req.path.startswith("/api/"):
            return []
        reset = (int(time.time()) // 60 + 1) * 60
        return [("X-RateLimit-Limit", str(self.rate_limit or _RATE_LIMIT)),
                ("X-RateLimit-Remaining", str(self.rate_limit or _RATE_LIMIT)),
                ("X-RateLimit-Reset", str(reset))]

    def _respond(self, req: _Request) -> Response:
        method, path = req.method, req.path
        fault = None if path.startswith("/_emulator/") else self._faults.take(method, path)
        if fault is not None and fault.stall is not None and self._stopping.wait(fault.stall):
            return dropped()  # the emulator stops
        if (fault is not None and (fault.status is not None or fault.drop_connection) and not fault.corrupt
                and not (fault.drop_connection and _R_OBJECT.match(path) and method == "PUT")):
            req.discard_body()
            return self._fault_response(fault, req)
        return self._route(req, fault)

    def _route(self, req: _Request, fault: _Fault | None) -> Response:
        p, m = req.path, req.method
        if p == "/_emulator/inject" and m == "POST":
            self.inject(**req.json())
            return json_response(200, {"ok": True})
        if p == "/_emulator/requests" and m == "GET":
            with self._lock:
                return json_response(200, {"requests": self.requests_log,
                                           "token_in_url_violations": self.token_in_url_violations})
        if (mt := _R_OBJECT.match(p)) is not None:
            key = urllib.parse.unquote(mt["key"])
            if m == "PUT":
                return self._put_object(req, mt["bucket"], key, fault)
            if m == "GET":
                return self._get_object(req, mt["bucket"], key)
            if m == "DELETE":
                return self._delete_object(req, mt["bucket"], key)
        elif (mt := _R_BUCKET.match(p)) is not None and m == "GET":
            return self._get_bucket(req, mt["bucket"])
        elif _R_DEPS.match(p):
            if m == "GET":
                return self._list(req)
            if m == "POST":
                return self._create(req)
        elif (mt := _R_DEP.match(p)) is not None:
            if m == "GET":
                return self._get(req, mt["id"])
            if m == "PUT":
                return self._update(req, mt["id"])
            if m == "DELETE":
                return self._delete(req, mt["id"])
        elif (mt := _R_ACTION.match(p)) is not None and m == "POST":
            return self._action(req, mt["id"], mt["action"])
        elif (mt := _R_FILES.match(p)) is not None:
            if m == "GET":
                return self._list_files(req, mt["id"])
            if m == "POST":
                req.discard_body()
                return self._error(400, "Multipart upload is not supported by the emulator; use the bucket API.")
        elif (mt := _R_FILE.match(p)) is not None:
            if m == "GET":
                return self._get_file(req, mt["id"], mt["fid"])
            if m == "DELETE":
                return self._delete_file(req, mt["id"], mt["fid"])
        elif (mt := _R_OLD_RECORD.match(p)) is not None and m in ("GET", "HEAD"):
            if self.behaviour == "rdm":
                location = f"{self.url}/records/{mt['id']}/files/{mt['name']}"
                if req.raw_query:
                    location += f"?{req.raw_query}"
                return Response(301, b"", "text/html", headers=[("Location", location)])
            return self._download(int(mt["id"]), urllib.parse.unquote(mt["name"]))
        elif (mt := _R_RECORD_FILE.match(p) or _R_API_RECORD_FILE.match(p)) is not None and m in ("GET", "HEAD"):
            return self._download(int(mt["id"]), urllib.parse.unquote(mt["name"]))
        else:
            req.discard_body()
            return self._error(404, "The requested URL was not found on the server.")
        req.discard_body()
        return self._error(405, "The method is not allowed for the requested URL.")

    # ---- Z1
    def _list(self, req: _Request) -> Response:
        owner = self._authenticate(req)
        q = req.q("q") or ""
        status = req.q("status")
        sort = req.q("sort") or "mostrecent"
        all_versions = (req.q("all_versions") or "").lower() in ("1", "true", "yes")
        try:
            page = int(req.q("page") or 1)
            size = int(req.q("size") or self.default_page_size)
        except ValueError:
            return self._validation([("size", "Not a valid integer.")])
        if size > self.max_page_size or size < 1 or page < 1:
            return self._error(400, f"Invalid pagination parameters: size must be between 1 and {self.max_page_size}.")
        if status not in (None, "draft", "published"):
            return self._validation([("status", "Must be one of: draft, published.")])
        if sort.lstrip("-") not in ("bestmatch", "mostrecent"):
            return self._validation([("sort", "Invalid sort option.")])
        with self._lock:
            deps = [d for d in self._deps.values() if d.owner == owner]
            if not all_versions:
                deps = [d for d in deps if not d.published or d is self._latest_published(d.concept)]
            if status == "draft":
                deps = [d for d in deps if not d.published]
            elif status == "published":
                deps = [d for d in deps if d.published]
            deps = [d for d in deps if _matches(d, q)]
            deps.sort(key=lambda d: d.seq, reverse=not sort.startswith("-"))
            page_items = deps[(page - 1) * size : page * size]
            return json_response(200, [self._dep_json(d) for d in page_items])

    # ---- Z2
    def _create(self, req: _Request) -> Response:
        owner = self._authenticate(req, "deposit:write")
        body = req.json()
        if not isinstance(body, dict):
            return self._error(400, "Request body must be a JSON object.")
        unknown = [k for k in body if k != "metadata"]
        if unknown:
            return self._validation([(k, "Unknown field name.") for k in unknown])
        metadata = body.get("metadata") or {}
        errors = self._check_metadata(metadata, required=self.behaviour == "legacy" and bool(body.get("metadata")))
        if errors:
            return self._validation(errors)
        with self._lock:
            concept = self._next_id
            self._next_id += 1
            dep = self._new_dep(owner, concept, self._store_metadata(metadata))
            return json_response(201, self._dep_json(dep))

    # ---- Z3
    def _get(self, req: _Request, raw_id: str) -> Response:
        owner = self._authenticate(req)
        req.discard_body()
        with self._lock:
            return json_response(200, self._dep_json(self._dep_for(req, raw_id, owner)))

    # ---- Z4
    def _update(self, req: _Request, raw_id: str) -> Response:
        owner = self._authenticate(req, "deposit:write")
        body = req.json()
        with self._lock:
            dep = self._dep_for(req, raw_id, owner)
            if dep.published:
                return self._published_refusal()
        if not isinstance(body, dict):
            return self._error(400, "Request body must be a JSON object.")
        unknown = [k for k in body if k != "metadata"]
        if unknown:
            return self._validation([(k, "Unknown field name.") for k in unknown])
        metadata = body.get("metadata")
        if not isinstance(metadata, dict):
            return self._validation([("metadata", "Field may not be null.")])
        errors = self._check_metadata(metadata, required=self.behaviour == "legacy")
        if errors:
            return self._validation(errors)
        with self._lock:
            dep.metadata = self._store_metadata(metadata)
            dep.modified = _now()
            return json_response(200, self._dep_json(dep))

    # ---- Z5
    def _delete(self, req: _Request, raw_id: str) -> Response:
        owner = self._authenticate(req, "deposit:write")
        req.discard_body()
        with self._lock:
            dep = self._dep_for(req, raw_id, owner)
            if dep.published or dep.state == "inprogress":
                return self._published_refusal()
            self._remove(dep)
            return Response(204)

    def _remove(self, dep: _Dep) -> None:
        self._deps.pop(dep.id, None)
        self._buckets.pop(dep.bucket, None)

    # ---- Z6, Z7, edit, discard
    def _action(self, req: _Request, raw_id: str, action: str) -> Response:
        owner = self._authenticate(req, "deposit:actions")
        req.discard_body()
        with self._lock:
            dep = self._dep_for(req, raw_id, owner)
            if action == "newversion":
                return self._newversion(dep)
            if action == "publish":
                return self._publish(dep)
            if action == "edit":
                if not dep.published:
                    return self._error(400, "Deposition is not published.")
                dep.state = "inprogress"
                return json_response(201, self._dep_json(dep))
            if action == "discard":
                if dep.state == "inprogress":
                    dep.state = "done"
                    return json_response(201, self._dep_json(dep))
                if dep.published:
                    return self._published_refusal()
                self._remove(dep)
                return json_response(201, {"status": 201, "message": "Draft discarded."})
            return self._error(404, "The requested URL was not found on the server.")

    def _newversion(self, dep: _Dep) -> Response:
        if not dep.published:
            if self.behaviour == "legacy":
                return self._error(403, "Invalid action: the deposition is not published.")
            return self._not_found()
        open_draft = self._open_draft(dep.concept)
        if open_draft is not None:
            if self.behaviour == "rdm":
                return self._validation([("files.enabled", "Please remove all files first.")])
            return json_response(201, self._dep_json(dep))
        source = self._latest_published(dep.concept) or dep
        metadata = copy.deepcopy(source.metadata)
        metadata.pop("version", None)
        metadata.pop("doi", None)
        if self.behaviour == "rdm":
            metadata["publication_date"] = _today()
        draft = self._new_dep(dep.owner, dep.concept, metadata)
        draft.files = [dataclasses.replace(f) for f in source.files]
        if self.behaviour == "rdm":
            return json_response(201, self._dep_json(draft))
        return json_response(201, self._dep_json(dep))

    def _publish(self, dep: _Dep) -> Response:
        if dep.published:
            return self._published_refusal()
        if not dep.files:
            field = "files.enabled" if self.behaviour == "rdm" else "files"
            return self._validation([(field, "Minimum one file must be provided.")])
        errors = self._check_metadata(dep.metadata, required=True)
        if errors:
            return self._validation(errors)
        if self.enforce_distinct_versions:
            mine = sorted(f.md5 for f in dep.files)
            for other in self._versions(dep.concept):
                if other.published and sorted(f.md5 for f in other.files) == mine:
                    return self._validation([("files", "New version's files must differ from all previous versions.")])
        dep.state, dep.submitted = "done", True
        dep.modified = _now()
        return json_response(202, self._dep_json(dep))

    # ---- Z8, Z9
    def _list_files(self, req: _Request, raw_id: str) -> Response:
        owner = self._authenticate(req)
        with self._lock:
            dep = self._dep_for(req, raw_id, owner)
            return json_response(200, [self._file_json(dep, f) for f in dep.files])

    def _get_file(self, req: _Request, raw_id: str, fid: str) -> Response:
        owner = self._authenticate(req)
        with self._lock:
            dep = self._dep_for(req, raw_id, owner)
            f = next((f for f in dep.files if f.id == fid), None)
            if f is None:
                return self._error(404, "File does not exist.")
            return json_response(200, self._file_json(dep, f))

    def _delete_file(self, req: _Request, raw_id: str, fid: str) -> Response:
        owner = self._authenticate(req, "deposit:write")
        req.discard_body()
        with self._lock:
            dep = self._dep_for(req, raw_id, owner)
            if dep.published:
                return self._error(403, "You cannot delete files of a published deposition.")
            f = next((f for f in dep.files if f.id == fid), None)
            if f is None:
                return self._error(404, "File does not exist.")
            dep.files.remove(f)
            dep.modified = _now()
            return Response(204)

    # ---- Z10
    def _bucket_dep(self, req: _Request, bucket: str, owner: int) -> _Dep:
        dep_id = self._buckets.get(bucket)
        dep = self._deps.get(dep_id) if dep_id is not None else None
        if dep is None:
            raise HTTPError(self._error(404, "Bucket does not exist."))
        if dep.owner != owner:
            raise HTTPError(self._error(403, "You don't have the permission to access this bucket."))
        return dep

    def _put_object(self, req: _Request, bucket: str, key: str, fault: _Fault | None) -> Response:
        owner = self._authenticate(req, "deposit:write")
        with self._lock:
            dep = self._bucket_dep(req, bucket, owner)
            if dep.published:
                return self._error(403, "Bucket is locked.")
            if len(dep.files) >= MAX_FILES and all(f.key != key for f in dep.files):
                return self._error(400, f"Too many files: a record holds at most {MAX_FILES}.")
        length = req.content_length()
        if length is None and not req.chunked:
            return self._error(411, "Length Required")
        if length is not None and length > MAX_FILE_SIZE:
            return self._error(400, "File is larger than the 50 GB quota.")
        drop_at = None
        if fault is not None and fault.drop_connection:
            drop_at = fault.drop_after_bytes if fault.drop_after_bytes is not None else (length or 0) // 2
        blob = self._new_blob()
        md5 = hashlib.md5()
        size = 0
        first = True
        try:
            with open(blob, "wb") as out:
                for chunk in req.iter_body(limit=drop_at):
                    if first and fault is not None and fault.corrupt and chunk:
                        chunk = bytes([chunk[0] ^ 0xFF]) + chunk[1:]
                    first = False
                    md5.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
        except Dropped:
            blob.unlink(missing_ok=True)
            raise
        if drop_at is not None:
            blob.unlink(missing_ok=True)
            raise Dropped()
        with self._lock:
            dep = self._bucket_dep(req, bucket, owner)
            if dep.published:
                blob.unlink(missing_ok=True)
                return self._error(403, "Bucket is locked.")
            dep.files = [f for f in dep.files if f.key != key]
            f = _File(str(uuid.uuid4()), key, size, md5.hexdigest(), blob)
            dep.files.append(f)
            dep.modified = _now()
            return json_response(201 if self.behaviour == "rdm" else 200, self._object_json(dep, f))

    def _get_object(self, req: _Request, bucket: str, key: str) -> Response:
        owner = self._authenticate(req)
        with self._lock:
            dep = self._bucket_dep(req, bucket, owner)
            f = next((f for f in dep.files if f.key == key), None)
        return self._serve_file(f)

    def _delete_object(self, req: _Request, bucket: str, key: str) -> Response:
        owner = self._authenticate(req, "deposit:write")
        req.discard_body()
        with self._lock:
            dep = self._bucket_dep(req, bucket, owner)
            if dep.published:
                return self._error(403, "Bucket is locked.")
            before = len(dep.files)
            dep.files = [f for f in dep.files if f.key != key]
            if len(dep.files) == before:
                return self._error(404, "Object does not exists.")
            return Response(204)

    def _get_bucket(self, req: _Request, bucket: str) -> Response:
        owner = self._authenticate(req)
        with self._lock:
            dep = self._bucket_dep(req, bucket, owner)
            return json_response(200, {"id": bucket, "contents": [self._object_json(dep, f) for f in dep.files],
                                       "links": {"self": f"{self.url}/api/files/{bucket}"}})

    # ---- Z11
    def _download(self, rec: int, name: str) -> Response:
        with self._lock:
            dep = self._deps.get(rec)
            if dep is None or not dep.published:
                return self._not_found()
            f = next((f for f in dep.files if f.key == name), None)
        return self._serve_file(f)

    def _serve_file(self, f: _File | None) -> Response:
        if f is None:
            return self._error(404, "File does not exist.")
        if f.blob is None:
            return self._error(404, "The emulator holds no content for this seeded file.")
        return Response(200, content_type="application/octet-stream", file=f.blob, file_size=f.size,
                        headers=[("Content-MD5", f.md5)])

    # ---- metadata
    def _store_metadata(self, metadata: Mapping[str, Any]) -> dict[str, Any]:
        md = copy.deepcopy(dict(metadata))
        md.pop("prereserve_doi", None)
        lic = md.get("license")
        if self.behaviour == "rdm" and lic is not None:
            md["license"] = (lic.get("id") if isinstance(lic, dict) else str(lic)).lower()
        md.setdefault("access_right", "open")
        if self.behaviour == "legacy":
            md.setdefault("publication_date", _today())
        return md

    def _check_metadata(self, md: Any, *, required: bool) -> list[tuple[str, str]]:
        if not isinstance(md, dict):
            return [("metadata", "Not a valid object.")]
        errs: list[tuple[str, str]] = []
        for key in md:
            if key not in METADATA_KEYS:
                errs.append((f"metadata.{key}", "Unknown field name."))
        for key in ("title", "description"):
            if key in md and not isinstance(md[key], str):
                errs.append((f"metadata.{key}", "Not a valid string."))
            elif required and len(str(md.get(key) or "").strip()) < 3:
                errs.append((f"metadata.{key}", "Shorter than minimum length 3."))
        ut = md.get("upload_type")
        if ut is not None and ut not in UPLOAD_TYPES:
            errs.append(("metadata.upload_type", "Invalid upload type."))
        elif ut is None and required:
            errs.append(("metadata.upload_type", "Missing data for required field."))
        if ut == "publication" and not md.get("publication_type"):
            errs.append(("metadata.publication_type", "Missing data for required field."))
        if ut == "image" and not md.get("image_type"):
            errs.append(("metadata.image_type", "Missing data for required field."))
        creators = md.get("creators")
        if creators is not None:
            if not isinstance(creators, list):
                errs.append(("metadata.creators", "Not a valid list."))
            else:
                for i, c in enumerate(creators):
                    if not isinstance(c, dict) or not isinstance(c.get("name"), str) or not c["name"].strip():
                        errs.append((f"metadata.creators.{i}.name", "Missing data for required field."))
                    elif "affiliation" in c and c["affiliation"] is not None and not isinstance(c["affiliation"], str):
                        errs.append((f"metadata.creators.{i}.affiliation", "Not a valid string."))
        if required and not creators:
            errs.append(("metadata.creators", "Shorter than minimum length 1."))
        pd = md.get("publication_date")
        if pd is not None:
            try:
                dt.date.fromisoformat(str(pd))
            except ValueError:
                errs.append(("metadata.publication_date", "Not a valid date."))
        ar = md.get("access_right")
        if ar is not None and ar not in ACCESS_RIGHTS:
            errs.append(("metadata.access_right", "Not a valid choice."))
        lic = md.get("license")
        if lic is not None:
            lic_id = lic.get("id") if isinstance(lic, dict) else lic
            if not isinstance(lic_id, str):
                errs.append(("metadata.license", "Not a valid string."))
            elif lic_id.lower() not in LICENSES:
                errs.append(("metadata.license", "Invalid license."))
        return errs


def _md5_path(path: Path) -> tuple[str, int]:
    h = hashlib.md5()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def _matches(dep: _Dep, q: str) -> bool:
    terms = [t.strip("\"'") for t in q.split()]
    text = f"{dep.metadata.get('title', '')} {dep.metadata.get('description', '')}".lower()
    for term in terms:
        if not term:
            continue
        field, sep, value = term.partition(":")
        if sep and field in ("id", "recid", "conceptrecid", "title"):
            if field in ("id", "recid") and str(dep.id) != value:
                return False
            if field == "conceptrecid" and str(dep.concept) != value:
                return False
            if field == "title" and value.lower() not in str(dep.metadata.get("title", "")).lower():
                return False
            continue
        if term.lower() not in text:
            return False
    return True


def _group_description(group: str) -> str:
    return f"This is a singularity container for models under https://kipoi.org/models/{group}/"


def _kipoi_title(name: str, keys: list[str]) -> tuple[str, str]:
    core = name.removeprefix("kipoi-docker_").removesuffix("-slim")
    if core.startswith("shared"):
        return (f"{core} singularity container",
                f"Singularity container with the conda environment "
                f"https://github.com/kipoi/kipoi-containers/blob/main/envfiles/{core}.yml")
    if core == "mmsplice":
        return ("MMSplice singularity container except mtsplice",
                "Singularity container for MMSplice models except mtsplice")
    group = sorted(keys, key=len)[0]
    return f"{group} singularity container", _group_description(group)


# -------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.emulators.zenodo", description=__doc__.split("\n", 1)[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--behaviour", choices=("rdm", "legacy"), default="rdm")
    parser.add_argument("--token", default="test-token", help="the accepted token (default: test-token)")
    parser.add_argument("--no-auth", action="store_true", help="accept requests without a token")
    parser.add_argument("--storage", help="directory for uploaded bytes (default: a temporary one)")
    parser.add_argument("--seed-kipoi", metavar="MODEL_TO_SINGULARITY_JSON",
                        help="seed the account from this index file (spec C.4)")
    parser.add_argument("--sif-dir", help="real tiny-container_latest.sif / busybox_1.34.1.sif for the seed")
    parser.add_argument("--prefix", default="", help="serve the API under this path prefix, e.g. /zenodo")
    args = parser.parse_args(argv)
    emulator = ZenodoEmulator(None if args.no_auth else args.token, behaviour=args.behaviour,
                              storage=args.storage, host=args.host, port=args.port, prefix=args.prefix)
    if args.seed_kipoi:
        with open(args.seed_kipoi, encoding="utf-8") as f:
            emulator.seed_kipoi(json.load(f), args.sif_dir)
    return emulator.serve_until_signalled()


if __name__ == "__main__":
    sys.exit(main())
