"""The emulator itself behaves like Zenodo (spec A), in both columns of the A.6 table.
Plain ``requests`` calls, so these hold whatever our client does."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from datetime import date

import pytest
import requests

from tests.emulators.zenodo import ZenodoEmulator
from tests.zenodo_fixtures import BUSYBOX_MD5, SIF_DIR, TOKEN

AUTH = {"Authorization": f"Bearer {TOKEN}"}
META = {
    "title": "A title",
    "upload_type": "physicalobject",
    "description": "A description",
    "creators": [{"name": "Doe, Jane", "affiliation": "EMBL"}],
    "publication_date": "2022-01-02",
    "license": "MIT",
}


def _api(emu, path=""):
    return f"{emu.url}/api/deposit/depositions{path}"


def _rdm(emu):
    return emu.behaviour == "rdm"


def _draft_with_file(emu):
    dep = requests.post(_api(emu), json={}, headers=AUTH).json()
    with open(SIF_DIR / "busybox_1.34.1.sif", "rb") as f:
        r = requests.put(f"{dep['links']['bucket']}/busybox_1.34.1.sif", data=f, headers=AUTH)
    assert r.status_code == (201 if _rdm(emu) else 200)
    return dep, r.json()


def test_create_shape(zenodo):
    r = requests.post(_api(zenodo), json={}, headers=AUTH)
    assert r.status_code == 201
    dep = r.json()
    assert dep["state"] == "unsubmitted" and dep["submitted"] is False and dep["files"] == [] and dep["title"] == ""
    assert dep["metadata"]["prereserve_doi"] == {"doi": f"10.5281/zenodo.{dep['id']}", "recid": dep["id"]}
    assert dep["record_id"] == dep["id"] and isinstance(dep["conceptrecid"], str)
    assert set(dep["links"]) >= {
        "self",
        "html",
        "files",
        "bucket",
        "latest_draft",
        "latest_draft_html",
        "publish",
        "edit",
        "discard",
        "newversion",
    }
    assert "/api/files/" in dep["links"]["bucket"]
    assert requests.post(_api(zenodo), json={"bogus": 1}, headers=AUTH).status_code == 400
    r = requests.post(_api(zenodo), data="{}", headers={**AUTH, "Content-Type": "text/plain"})
    assert r.status_code == 415


def test_bucket_and_file_checksum_forms(zenodo):
    dep, obj = _draft_with_file(zenodo)
    assert obj["checksum"] == f"md5:{BUSYBOX_MD5}" and obj["key"] == "busybox_1.34.1.sif" and obj["is_head"] is True
    files = requests.get(_api(zenodo, f"/{dep['id']}/files"), headers=AUTH).json()
    assert [(f["filename"], f["checksum"]) for f in files] == [("busybox_1.34.1.sif", BUSYBOX_MD5)]
    # Re-upload of a key replaces it.
    with open(SIF_DIR / "tiny-container_latest.sif", "rb") as f:
        requests.put(f"{dep['links']['bucket']}/busybox_1.34.1.sif", data=f, headers=AUTH)
    files2 = requests.get(_api(zenodo, f"/{dep['id']}/files"), headers=AUTH).json()
    assert len(files2) == 1 and files2[0]["id"] != files[0]["id"]
    assert files2[0]["checksum"] != BUSYBOX_MD5


def test_validation_error_shapes(zenodo):
    dep = requests.post(_api(zenodo), json={}, headers=AUTH).json()
    r = requests.put(
        _api(zenodo, f"/{dep['id']}"), json={"metadata": dict(META, license="no-such", extra=1)}, headers=AUTH
    )
    assert r.status_code == 400
    errors = {e["field"]: e for e in r.json()["errors"]}
    assert set(errors) == {"metadata.license", "metadata.extra"}
    if _rdm(zenodo):
        assert errors["metadata.extra"]["messages"] == ["Unknown field name."]
    else:
        assert errors["metadata.extra"]["message"] == "Unknown field name."
    # Missing required fields: legacy refuses on update, RDM at publish.
    r = requests.put(_api(zenodo, f"/{dep['id']}"), json={"metadata": {"title": "x"}}, headers=AUTH)
    assert r.status_code == (200 if _rdm(zenodo) else 400)


def test_update_replaces_metadata_and_license_form(zenodo):
    dep = requests.post(_api(zenodo), json={}, headers=AUTH).json()
    requests.put(_api(zenodo, f"/{dep['id']}"), json={"metadata": dict(META, keywords=["a"])}, headers=AUTH)
    r = requests.put(_api(zenodo, f"/{dep['id']}"), json={"metadata": META}, headers=AUTH)
    md = r.json()["metadata"]
    assert "keywords" not in md  # replaced, not merged
    assert md["license"] == ("mit" if _rdm(zenodo) else "MIT")
    assert r.json()["title"] == "A title"


def test_publish_newversion_and_delete(zenodo):
    dep, _ = _draft_with_file(zenodo)
    dep_id = dep["id"]
    assert requests.post(_api(zenodo, f"/{dep_id}/actions/newversion"), headers=AUTH).status_code == (
        404 if _rdm(zenodo) else 403
    )
    requests.put(_api(zenodo, f"/{dep_id}"), json={"metadata": META}, headers=AUTH)
    r = requests.post(_api(zenodo, f"/{dep_id}/actions/publish"), headers=AUTH)
    assert r.status_code == 202 and r.json()["state"] == "done" and r.json()["submitted"] is True
    assert r.json()["doi"] == f"10.5281/zenodo.{dep_id}"
    published_refusal = 404 if _rdm(zenodo) else 403
    assert requests.post(_api(zenodo, f"/{dep_id}/actions/publish"), headers=AUTH).status_code == published_refusal
    assert (
        requests.put(_api(zenodo, f"/{dep_id}"), json={"metadata": META}, headers=AUTH).status_code == published_refusal
    )
    assert requests.delete(_api(zenodo, f"/{dep_id}"), headers=AUTH).status_code == published_refusal

    r = requests.post(_api(zenodo, f"/{dep_id}/actions/newversion"), headers=AUTH)
    assert r.status_code == 201
    body = r.json()
    draft_id = int(body["links"]["latest_draft"].rsplit("/", 1)[1])
    assert draft_id != dep_id
    assert body["id"] == (draft_id if _rdm(zenodo) else dep_id)
    draft = requests.get(_api(zenodo, f"/{draft_id}"), headers=AUTH).json()
    original = requests.get(_api(zenodo, f"/{dep_id}"), headers=AUTH).json()
    assert [(f["id"], f["checksum"]) for f in draft["files"]] == [(f["id"], f["checksum"]) for f in original["files"]]
    expected_date = date.today().strftime("%Y-%m-%d") if _rdm(zenodo) else "2022-01-02"
    assert draft["metadata"]["publication_date"] == expected_date
    assert draft["conceptrecid"] == original["conceptrecid"]

    again = requests.post(_api(zenodo, f"/{dep_id}/actions/newversion"), headers=AUTH)
    if _rdm(zenodo):
        assert again.status_code == 400
        assert again.json()["errors"] == [{"field": "files.enabled", "messages": ["Please remove all files first."]}]
    else:
        assert again.status_code == 201 and again.json()["links"]["latest_draft"].endswith(f"/{draft_id}")

    # Legacy refuses a version whose files equal an earlier one's (switchable); RDM does not by default.
    r = requests.post(_api(zenodo, f"/{draft_id}/actions/publish"), headers=AUTH)
    if _rdm(zenodo):
        assert r.status_code == 202
    else:
        assert r.status_code == 400 and "must differ" in r.text
        assert requests.delete(_api(zenodo, f"/{draft_id}"), headers=AUTH).status_code == 204
        assert requests.delete(_api(zenodo, f"/{draft_id}"), headers=AUTH).status_code == 404
        assert requests.get(_api(zenodo, f"/{draft_id}"), headers=AUTH).status_code == 404


def test_publish_without_files_is_refused(zenodo):
    dep = requests.post(_api(zenodo), json={"metadata": META}, headers=AUTH).json()
    r = requests.post(_api(zenodo, f"/{dep['id']}/actions/publish"), headers=AUTH)
    assert r.status_code == 400 and "Minimum one file must be provided." in r.text


def test_rdm_checks_required_fields_at_publish():
    with ZenodoEmulator(TOKEN) as emu:
        dep, _ = _draft_with_file(emu)
        r = requests.post(_api(emu, f"/{dep['id']}/actions/publish"), headers=AUTH)
        assert r.status_code == 400
        fields = {e["field"] for e in r.json()["errors"]}
        assert {"metadata.title", "metadata.upload_type", "metadata.creators"} <= fields


def test_auth_and_ownership(zenodo):
    other = "other-" + TOKEN
    zenodo._tokens[other] = (1, frozenset({"deposit:write", "deposit:actions"}))
    assert requests.get(_api(zenodo, "/6576723")).status_code == (403 if _rdm(zenodo) else 401)
    assert requests.get(_api(zenodo, "/6576723"), headers={"Authorization": "Bearer nope"}).status_code == 401
    assert requests.get(_api(zenodo, "/6576723"), headers={"Authorization": f"Bearer {other}"}).status_code == 403
    r = requests.get(_api(zenodo, "/6576723"), params={"access_token": TOKEN})
    assert r.status_code == 200  # accepted, as Zenodo does, but recorded
    assert len(zenodo.token_in_url_violations) == 1 and TOKEN not in zenodo.token_in_url_violations[0]
    zenodo.token_in_url_violations.clear()
    assert requests.get(_api(zenodo, "/999")).status_code in (401, 403)
    assert requests.get(_api(zenodo, "/999"), headers=AUTH).status_code == 404


def test_record_download_redirect(zenodo):
    r = requests.get(f"{zenodo.url}/record/6576723/files/busybox_1.34.1.sif?download=1", allow_redirects=False)
    if _rdm(zenodo):
        assert r.status_code == 301
        assert r.headers["Location"] == f"{zenodo.url}/records/6576723/files/busybox_1.34.1.sif?download=1"
    else:
        assert r.status_code == 200
    r = requests.get(f"{zenodo.url}/record/6576723/files/busybox_1.34.1.sif?download=1")
    assert r.status_code == 200 and hashlib.md5(r.content).hexdigest() == BUSYBOX_MD5
    r = requests.get(f"{zenodo.url}/api/records/6576723/files/busybox_1.34.1.sif/content")
    assert hashlib.md5(r.content).hexdigest() == BUSYBOX_MD5


def test_faults_shapes(zenodo):
    zenodo.inject(429, retry_after=7)
    r = requests.get(_api(zenodo), headers=AUTH)
    assert r.status_code == 429 and r.headers["Retry-After"] == "7" and r.json()["status"] == 429
    zenodo.inject(500)
    r = requests.get(_api(zenodo), headers=AUTH)
    if _rdm(zenodo):
        assert set(r.json()) == {"error_id", "message", "status"}
    else:
        assert r.content == b""
    zenodo.inject(504, after=1)
    assert requests.get(_api(zenodo), headers=AUTH).status_code == 200
    r = requests.get(_api(zenodo), headers=AUTH)
    assert r.status_code == 504 and "<title>504 Gateway Timeout</title>" in r.text
    assert "X-RateLimit-Limit" in requests.get(_api(zenodo), headers=AUTH).headers


def test_stall_fault_delays_then_serves(zenodo):
    import threading
    import time

    zenodo.inject(method="GET", path_prefix="/api/deposit/depositions/6576723", stall=0.5)
    start = time.monotonic()
    r = requests.get(_api(zenodo, "/6576723"), headers=AUTH)
    assert r.status_code == 200 and r.json()["id"] == 6576723
    assert time.monotonic() - start >= 0.5
    zenodo.inject(503, method="GET", stall=0.2)
    assert requests.get(_api(zenodo), headers=AUTH).status_code == 503
    # Stopping the emulator ends a stalled request at once (the connection is dropped).
    zenodo.inject(method="GET", stall=60)
    outcome: list = []

    def call() -> None:
        try:
            outcome.append(requests.get(_api(zenodo), headers=AUTH, timeout=30).status_code)
        except requests.ConnectionError:
            outcome.append("dropped")

    worker = threading.Thread(target=call)
    worker.start()
    while not any(r["method"] == "GET" and r["status"] is None for r in zenodo.requests_log):
        time.sleep(0.01)
    start = time.monotonic()
    zenodo.stop()
    worker.join(timeout=10)
    assert outcome == ["dropped"] and time.monotonic() - start < 5
    zenodo.start()  # the fixture stops it again


def test_upload_without_length_is_refused(zenodo):
    dep = requests.post(_api(zenodo), json={}, headers=AUTH).json()
    chunks = iter([b"abc", b"def"])
    r = requests.put(f"{dep['links']['bucket']}/x.bin", data=chunks, headers=AUTH)  # chunked: accepted
    assert r.status_code in (200, 201) and r.json()["size"] == 6
    import http.client
    import urllib.parse

    u = urllib.parse.urlsplit(dep["links"]["bucket"])
    conn = http.client.HTTPConnection(u.hostname, u.port)
    conn.putrequest("PUT", f"{u.path}/y.bin")
    conn.putheader("Authorization", AUTH["Authorization"])
    conn.endheaders()
    try:
        assert conn.getresponse().status == 411
    finally:
        conn.close()


def test_standalone_entry_point_prints_its_url(tmp_path):
    repo = __import__("pathlib").Path(__file__).resolve().parents[1]
    with subprocess.Popen(
        [sys.executable, "-m", "tests.emulators.zenodo", "--port", "0", "--token", TOKEN],
        stdout=subprocess.PIPE,
        text=True,
        cwd=str(repo),
    ) as proc:
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline().strip()
            assert line.startswith("listening on http://127.0.0.1:")
            url = line.split()[-1]
            assert requests.get(f"{url}/api/deposit/depositions", headers=AUTH).json() == []
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    assert proc.returncode == 0


@pytest.mark.parametrize("behaviour", ["rdm", "legacy"])
def test_listing_parameters(behaviour):
    with ZenodoEmulator(TOKEN, behaviour=behaviour) as emu:
        ids = [emu.seed_published(100 + i, title=f"Item {i} singularity container", concept=50 + i) for i in range(12)]
        assert [d["id"] for d in requests.get(_api(emu), headers=AUTH).json()] == ids[::-1][:10]
        page2 = requests.get(_api(emu), params={"page": 2}, headers=AUTH).json()
        assert [d["id"] for d in page2] == ids[::-1][10:]
        assert requests.get(_api(emu), params={"size": 101}, headers=AUTH).status_code == 400
        assert requests.get(_api(emu), params={"q": "item 3"}, headers=AUTH).json()[0]["id"] == 103
        assert requests.get(_api(emu), params={"status": "draft"}, headers=AUTH).json() == []
