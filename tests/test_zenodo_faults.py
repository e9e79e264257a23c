"""Faults, retries, auth and checksums: the client against the emulator's fault injection."""

from __future__ import annotations

import logging
import time

import pytest

from kipoi_containers import singularityhelper
from kipoi_containers.errors import ChecksumMismatchError, ZenodoAuthError, ZenodoError
from tests.zenodo_fixtures import (
    BUSYBOX_MD5,
    SIF_DIR,
    TINY_MD5,
    TOKEN,
    make_client,
)

BUSYBOX = SIF_DIR / "busybox_1.34.1.sif"


def _requests(emu, method, fragment):
    return [r for r in emu.requests_log if r["method"] == method and fragment in r["path"]]


def _new_draft(client):
    dep = client.create_deposition()
    return dep["id"], dep["links"]["bucket"]


def test_429_with_retry_after_is_waited_out(zenodo_rdm):
    client = make_client(zenodo_rdm)
    zenodo_rdm.inject(429, method="GET", path_prefix="/api/deposit/depositions/6576723", retry_after=1)
    start = time.monotonic()
    dep = client.get_deposition(6576723)
    elapsed = time.monotonic() - start
    assert dep["id"] == 6576723
    assert elapsed >= 0.95, "Retry-After: 1 was not honoured"
    statuses = [r["status"] for r in _requests(zenodo_rdm, "GET", "/depositions/6576723")]
    assert statuses == [429, 200]


def test_retry_after_longer_than_allowed_fails_at_once(zenodo_rdm):
    client = make_client(zenodo_rdm, max_retry_after=2)
    zenodo_rdm.inject(429, method="GET", path_prefix="/api/deposit/depositions/6576723", retry_after=600)
    start = time.monotonic()
    with pytest.raises(ZenodoError) as err:
        client.get_deposition(6576723)
    assert time.monotonic() - start < 2
    assert err.value.status == 429
    assert "Zenodo answered 429" in str(err.value) and "100 per 1 minute" in str(err.value)


def test_three_503_then_success_stores_one_file(zenodo):
    client = make_client(zenodo)
    dep_id, bucket = _new_draft(client)
    zenodo.inject(503, method="PUT", path_prefix="/api/files/", times=3)
    obj = client.upload_file(bucket, "busybox_1.34.1.sif", BUSYBOX)
    assert obj["checksum"] == f"md5:{BUSYBOX_MD5}"
    puts = _requests(zenodo, "PUT", "/api/files/")
    assert [r["status"] for r in puts] == [503, 503, 503, 201 if zenodo.behaviour == "rdm" else 200]
    files = client.list_files(dep_id)
    assert [(f["filename"], f["checksum"]) for f in files] == [("busybox_1.34.1.sif", BUSYBOX_MD5)]
    client.delete_deposition(dep_id)


@pytest.mark.parametrize("status", [500, 502, 504])
def test_server_errors_are_retried_for_every_method(zenodo_rdm, status):
    client = make_client(zenodo_rdm)
    dep_id, _ = _new_draft(client)
    zenodo_rdm.inject(status, method="PUT", path_prefix=f"/api/deposit/depositions/{dep_id}")
    zenodo_rdm.inject(status, method="DELETE", path_prefix=f"/api/deposit/depositions/{dep_id}")
    metadata = {
        "title": "Retry test",
        "upload_type": "other",
        "description": "retried put",
        "creators": [{"name": "A"}],
    }
    assert client.update_metadata(dep_id, metadata)["title"] == "Retry test"
    client.delete_deposition(dep_id)
    assert zenodo_rdm.deposition(dep_id) is None
    assert [r["status"] for r in _requests(zenodo_rdm, "DELETE", f"/{dep_id}")] == [status, 204]


def test_dropped_upload_is_retried_and_the_checksum_matches(zenodo):
    client = make_client(zenodo)
    dep_id, bucket = _new_draft(client)
    zenodo.inject(method="PUT", path_prefix="/api/files/", drop_connection=True, drop_after_bytes=300_000)
    seen = []
    obj = client.upload_file(bucket, "busybox_1.34.1.sif", BUSYBOX, progress=lambda d, t: seen.append((d, t)))
    assert obj["checksum"] == f"md5:{BUSYBOX_MD5}"
    puts = _requests(zenodo, "PUT", "/api/files/")
    assert [r["status"] for r in puts] == [None, obj and (201 if zenodo.behaviour == "rdm" else 200)]
    assert puts[0]["bytes"] >= 300_000 and puts[0]["bytes"] < BUSYBOX.stat().st_size
    assert zenodo.file_bytes(dep_id, "busybox_1.34.1.sif") == BUSYBOX.read_bytes()
    size = BUSYBOX.stat().st_size
    assert seen[-1] == (size, size)
    client.delete_deposition(dep_id)


def test_wrong_token_is_a_clear_auth_error_without_the_token(zenodo):
    wrong = "wrong-" + TOKEN[::-1]
    client = make_client(zenodo, token=wrong)
    with pytest.raises(ZenodoAuthError) as err:
        client.get_deposition(6576723)
    assert isinstance(err.value, PermissionError) and isinstance(err.value, ZenodoError)
    assert err.value.status == 401
    text = str(err.value)
    assert "read deposition `6576723`" in text and "401" in text and "ZENODO_ACCESS_TOKEN" in text
    assert wrong not in text and TOKEN not in text and wrong not in repr(err.value.args)
    assert wrong not in zenodo.token_in_url_violations.__repr__()


def test_missing_token_answers_403_rdm_401_legacy(zenodo):
    client = make_client(zenodo, token="")
    with pytest.raises(ZenodoAuthError) as err:
        client.get_content(f"{zenodo.url}/api/deposit/depositions")
    assert err.value.status == (403 if zenodo.behaviour == "rdm" else 401)


def test_token_without_the_actions_scope_cannot_publish(zenodo_rdm):
    zenodo_rdm._tokens["write-only-" + TOKEN] = (zenodo_rdm.owner_id, frozenset({"deposit:write"}))
    client = make_client(zenodo_rdm, token="write-only-" + TOKEN)
    dep_id, bucket = _new_draft(client)
    client.upload_file(bucket, "busybox_1.34.1.sif", BUSYBOX)
    with pytest.raises(ZenodoAuthError, match="publish deposition"):
        client.publish(dep_id)
    assert zenodo_rdm.deposition(dep_id)["state"] == "unsubmitted"


def test_token_is_never_in_a_url_even_when_the_caller_puts_it_there(zenodo_rdm, caplog):
    client = make_client(zenodo_rdm)
    caplog.set_level(logging.DEBUG, logger="kipoi_containers")
    response = client.get_content(f"{zenodo_rdm.url}/api/deposit/depositions?access_token={TOKEN}", size=3)
    assert len(response) == 3
    assert zenodo_rdm.token_in_url_violations == []
    last = zenodo_rdm.requests_log[-1]
    assert "access_token" not in last["query"] and last["query"]["size"] == ["3"]
    assert last["headers"]["authorization"] == "Bearer ***"
    assert TOKEN not in caplog.text
    assert "removed an `access_token` query parameter" in caplog.text


def test_token_is_not_sent_to_another_origin(zenodo_rdm):
    from tests.emulators.zenodo import ZenodoEmulator

    with ZenodoEmulator(TOKEN) as other:
        client = make_client(zenodo_rdm)
        with pytest.raises(ZenodoAuthError):
            client.get_content(f"{other.url}/api/deposit/depositions")
        assert "authorization" not in other.requests_log[-1]["headers"]


def test_md5_mismatch_fails_and_leaves_nothing_recorded(zenodo):
    client = make_client(zenodo)
    dep_id, bucket = _new_draft(client)
    zenodo.inject(method="PUT", path_prefix="/api/files/", corrupt=True)
    with pytest.raises(ChecksumMismatchError) as err:
        client.upload_file(bucket, "busybox_1.34.1.sif", BUSYBOX)
    text = str(err.value)
    assert f"sent with md5 {BUSYBOX_MD5}" in text and "the upload was removed" in text
    assert isinstance(err.value, ValueError)
    assert client.list_files(dep_id) == []
    client.delete_deposition(dep_id)


def test_md5_mismatch_in_the_helper_returns_no_entry(zenodo, helper_env):
    client = helper_env(zenodo)
    zenodo.inject(method="PUT", path_prefix="/api/files/", corrupt=True)
    entry = {"url": "", "name": "busybox_1.34.1", "md5": ""}
    with pytest.raises(ChecksumMismatchError):
        singularityhelper.push_new_singularity_image(client, SIF_DIR, entry, "Dummy", push=True)
    # Nothing published, and the draft created for it was deleted again (no empty draft).
    assert [d for d in zenodo.depositions() if d["state"] != "done"] == []
    assert entry == {"url": "", "name": "busybox_1.34.1", "md5": ""}


def test_left_over_draft_is_continued_not_failed(zenodo, helper_env):
    """A run that died after opening a new version: RDM answers the next newversion with 400
    "Please remove all files first."; the client finds the open draft and continues."""
    client = helper_env(zenodo)
    first = client.new_version(6576723)
    again = client.new_version(6576723)
    assert again == first
    newversions = _requests(zenodo, "POST", "/6576723/actions/newversion")
    if zenodo.behaviour == "rdm":
        assert [r["status"] for r in newversions] == [201, 400]
    else:
        assert [r["status"] for r in newversions] == [201, 201]
    entry = {
        "url": f"{zenodo.url}/record/6576723/files/tiny-container_latest.sif?download=1",
        "name": "tiny-container_latest",
        "md5": TINY_MD5,
    }
    result = singularityhelper.update_existing_singularity_container(
        client, entry, SIF_DIR, "Test", file_to_upload="busybox_1.34.1.sif", push=False
    )
    assert result["new_deposition_id"] == str(first)
    assert sorted(f["filename"] for f in zenodo.deposition(first)["files"]) == [
        "busybox_1.34.1.sif",
        "tiny-container_latest.sif",
    ]
    client.delete_deposition(first)
    # The slot is free again.
    second = client.new_version(6576723)
    assert second != first
    client.delete_deposition(second)


def test_newversion_retried_after_a_lost_answer_continues_from_the_draft(zenodo_rdm):
    """The first newversion goes through but its answer is a 502: the repeat gets RDM's 400,
    and the client continues from the draft instead of failing or opening another."""
    client = make_client(zenodo_rdm)
    # Seen from the client, "processed but the answer was lost" is: a draft is open and the
    # call answered 502.
    draft = zenodo_rdm_open_draft(zenodo_rdm, 6576723)
    zenodo_rdm.inject(502, method="POST", path_prefix="/api/deposit/depositions/6576723/actions/newversion")
    assert client.new_version(6576723) == draft
    concept = zenodo_rdm.deposition(6576723)["conceptrecid"]
    assert len([d for d in zenodo_rdm.depositions() if d["conceptrecid"] == concept]) == 2
    statuses = [r["status"] for r in _requests(zenodo_rdm, "POST", "/6576723/actions/newversion")]
    assert statuses == [201, 502, 400]


def zenodo_rdm_open_draft(emu, dep_id):
    client = make_client(emu)
    return client._engine.post(f"{emu.url}/api/deposit/depositions/{dep_id}/actions/newversion")[1]["id"]


def test_publish_repeated_after_a_lost_answer_is_accepted(zenodo_rdm):
    client = make_client(zenodo_rdm)
    dep_id, bucket = _new_draft(client)
    client.upload_file(bucket, "busybox_1.34.1.sif", BUSYBOX)
    client.update_metadata(
        dep_id,
        {
            "title": "Lost answer",
            "upload_type": "other",
            "description": "xyz",
            "creators": [{"name": "A"}],
            "license": "MIT",
        },
    )
    # A gateway timeout on publish is repeated (POST publish is safe to repeat).
    zenodo_rdm.inject(504, method="POST", path_prefix=f"/api/deposit/depositions/{dep_id}/actions/publish")
    dep = client.publish(dep_id)
    assert dep["state"] == "done"
    posts = _requests(zenodo_rdm, "POST", f"/{dep_id}/actions/publish")
    assert [r["status"] for r in posts] == [504, 202]
    # Publishing an already published deposition after an ambiguous failure: read back, done.
    zenodo_rdm.inject(502, method="POST", path_prefix=f"/api/deposit/depositions/{dep_id}/actions/publish")
    assert client.publish(dep_id)["state"] == "done"
    assert [r["status"] for r in _requests(zenodo_rdm, "POST", f"/{dep_id}/actions/publish")][2:] == [502, 404]


def test_create_is_not_repeated_after_an_ambiguous_500(zenodo_rdm):
    client = make_client(zenodo_rdm)
    zenodo_rdm.inject(500, method="POST", path_prefix="/api/deposit/depositions", times=1)
    with pytest.raises(ZenodoError) as err:
        client.create_deposition()
    assert err.value.status == 500 and "could not create a deposition" in str(err.value)
    assert len(_requests(zenodo_rdm, "POST", "/api/deposit/depositions")) == 1
    # ...but 429/503 (nothing was done) are repeated.
    zenodo_rdm.inject(503, method="POST", path_prefix="/api/deposit/depositions", times=2)
    dep = client.create_deposition()
    assert [r["status"] for r in _requests(zenodo_rdm, "POST", "/api/deposit/depositions")][1:] == [503, 503, 201]
    assert sum(1 for d in zenodo_rdm.depositions() if d["state"] == "unsubmitted") == 1
    client.delete_deposition(dep["id"])


def test_retries_exhausted_report_status_message_and_step(zenodo):
    client = make_client(zenodo, max_retries=2)
    zenodo.inject(502, method="GET", path_prefix="/api/deposit/depositions/6576723", times=3)
    with pytest.raises(ZenodoError) as err:
        client.get_deposition(6576723)
    text = str(err.value)
    assert err.value.status == 502 and err.value.step == "read deposition `6576723`"
    assert "502 Bad Gateway" in text and "after 3 attempts" in text


def test_validation_errors_carry_zenodos_field_messages(zenodo):
    client = make_client(zenodo)
    dep_id, _ = _new_draft(client)
    with pytest.raises(ZenodoError) as err:
        client.update_metadata(
            dep_id, {"title": "ok title", "upload_type": "bogus", "creators": [{"affiliation": "x"}]}
        )
    text = str(err.value)
    assert err.value.status == 400
    assert f"could not update the metadata of deposition `{dep_id}`" in text
    assert "metadata.upload_type: Invalid upload type." in text
    assert "metadata.creators.0.name" in text
    client.delete_deposition(dep_id)


def test_upload_of_a_missing_file_is_a_local_error_without_request(zenodo_rdm, tmp_path):
    client = make_client(zenodo_rdm)
    dep_id, bucket = _new_draft(client)
    before = len(zenodo_rdm.requests_log)
    with pytest.raises(ZenodoError, match=r"could not open `.*nope\.sif`"):
        client.upload_file(bucket, "nope.sif", tmp_path / "nope.sif")
    assert len(zenodo_rdm.requests_log) == before
    client.delete_deposition(dep_id)


# ------------------------------------------------------------------ review fixes


def test_huge_retry_after_on_a_download_fails_at_once(zenodo_rdm, tmp_path):
    """A download honours ``max_retry_after`` like every other request: a longer
    ``Retry-After`` is not slept through."""
    client = make_client(zenodo_rdm, max_retry_after=1)
    # After the RDM redirect /record/... -> /records/...
    zenodo_rdm.inject(429, method="GET", path_prefix="/records/6576723/files/", retry_after=5)
    url = f"{zenodo_rdm.url}/record/6576723/files/tiny-container_latest.sif?download=1"
    start = time.monotonic()
    with pytest.raises(ZenodoError) as err:
        client.download(url, tmp_path / "t.sif", md5=TINY_MD5)
    assert time.monotonic() - start < 1, "the 5 s Retry-After was waited out"
    assert err.value.status == 429
    text = str(err.value)
    assert "Zenodo answered 429" in text and "100 per 1 minute" in text
    assert "not retried: the server asked to wait 5s (Retry-After), more than max_retry_after (1.0s)" in text
    assert list(tmp_path.iterdir()) == []
    # Within the limit it is waited out and the download completes.
    zenodo_rdm.inject(429, method="GET", path_prefix="/records/6576723/files/", retry_after=1)
    assert client.download(url, tmp_path / "t.sif", md5=TINY_MD5) == TINY_MD5


@pytest.mark.parametrize("value", ["1e30", "99999999999999999999", "inf"])
def test_absurd_retry_after_fails_fast_instead_of_panicking(zenodo_rdm, value):
    client = make_client(zenodo_rdm, max_retry_after=2)
    zenodo_rdm.inject(503, method="GET", path_prefix="/api/deposit/depositions/6576723", retry_after=value)
    start = time.monotonic()
    with pytest.raises(ZenodoError) as err:
        client.get_deposition(6576723)
    assert time.monotonic() - start < 2
    assert err.value.status == 503 and "an unbounded time" in str(err.value)


@pytest.mark.parametrize("step", ["upload", "metadata", "publish"])
def test_failed_push_new_deletes_its_draft(zenodo, helper_env, step):
    client = helper_env(zenodo)
    if step == "upload":
        zenodo.inject(400, method="PUT", path_prefix="/api/files/")
    elif step == "metadata":
        zenodo.inject(400, method="PUT", path_prefix="/api/deposit/depositions/")
    else:
        zenodo.inject(400, method="POST", path_prefix="/api/deposit/depositions/", body={"message": "nope"})
    before = {d["id"] for d in zenodo.depositions()}
    with pytest.raises(ZenodoError) as err:
        singularityhelper.push_new_singularity_image(
            client, SIF_DIR, {"url": "", "name": "busybox_1.34.1", "md5": ""}, "Dummy", push=True
        )
    assert err.value.status == 400
    assert {d["id"] for d in zenodo.depositions()} == before  # the draft is gone
    created = [r for r in zenodo.requests_log if r["method"] == "POST" and r["path"] == "/api/deposit/depositions"]
    assert len(created) == 1
    deletes = [
        r for r in zenodo.requests_log if r["method"] == "DELETE" and r["path"].startswith("/api/deposit/depositions/")
    ]
    assert [r["status"] for r in deletes] == [204]


def test_failed_cleanup_keeps_the_original_error_and_notes_the_draft(zenodo_rdm, helper_env, caplog):
    client = helper_env(zenodo_rdm)
    zenodo_rdm.inject(400, method="PUT", path_prefix="/api/files/")
    zenodo_rdm.inject(403, method="DELETE", path_prefix="/api/deposit/depositions/")
    with pytest.raises(ZenodoError) as err:
        singularityhelper.push_new_singularity_image(
            client, SIF_DIR, {"url": "", "name": "busybox_1.34.1", "md5": ""}, "Dummy"
        )
    assert err.value.status == 400 and "upload" in str(err.value)
    draft = next(d for d in zenodo_rdm.depositions() if d["state"] != "done")
    text = str(err.value)
    assert f"its draft deposition `{draft['id']}` could not be deleted" in text and "delete it by hand" in text
    assert "Zenodo answered 400" in text  # the original error stays the cause
    assert err.value.draft_id == draft["id"]
    assert f"`{draft['id']}` could not be deleted" in caplog.text


def test_md5_file_failures_are_kipoi_errors(tmp_path):
    import errno

    from kipoi_containers import _engine, singularityhandler
    from kipoi_containers.errors import FileIOError, KipoiContainersError

    missing = tmp_path / "missing.sif"
    with pytest.raises(FileIOError) as err:
        _engine.md5_file(missing)
    assert isinstance(err.value, KipoiContainersError) and isinstance(err.value, OSError)
    assert err.value.errno == errno.ENOENT
    assert str(err.value) == f"could not open `{missing}`: No such file or directory (os error 2)"
    with pytest.raises(FileIOError) as err:
        _engine.md5_file(tmp_path)  # a directory opens, but cannot be read
    assert err.value.errno == errno.EISDIR and "could not read" in str(err.value)
    assert singularityhandler.check_integrity(missing, "0" * 32) is False


_DURATIONS = ["initial_backoff", "max_backoff", "max_retry_after", "connect_timeout", "read_timeout"]


@pytest.mark.parametrize("value", [-1, float("nan"), float("inf"), -0.5, 1e300])
@pytest.mark.parametrize("name", _DURATIONS)
def test_bad_durations_are_value_errors_not_panics(name, value):
    from kipoi_containers import _engine, zenodoclient

    for make in (zenodoclient.Client, _engine.ZenodoClient):
        with pytest.raises(ValueError, match=f"`{name}` must be a finite, non-negative number of seconds"):
            make("http://127.0.0.1:9", None, **{name: value})


@pytest.mark.parametrize("name", ["connect_timeout", "read_timeout"])
def test_zero_timeouts_are_refused(name):
    from kipoi_containers import zenodoclient

    with pytest.raises(ValueError, match=f"`{name}` must be more than 0 seconds"):
        zenodoclient.Client("http://127.0.0.1:9", None, **{name: 0})
    # Zero backoffs are fine (retry at once).
    zenodoclient.Client("http://127.0.0.1:9", None, initial_backoff=0, max_backoff=0, max_retry_after=0)
