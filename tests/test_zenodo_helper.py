"""Spec C.1: what upstream's ``test_singularity_helper.py`` asserted against live Zenodo,
here against the emulator in both behaviours (RDM and legacy)."""

from __future__ import annotations

from datetime import date

import pytest

from kipoi_containers import helper, singularityhandler, singularityhelper
from tests.zenodo_fixtures import (
    BUSYBOX_MD5,
    SIF_DIR,
    TINY_MD5,
    singularity_index,
)

TODAY = date.today().strftime("%Y-%m-%d")


@pytest.fixture
def test_singularity_dict() -> dict:
    return {
        "url": f"{singularityhelper.ZENODO_BASE}/record/6576723/files/tiny-container_latest.sif?download=1",
        "name": "tiny-container_latest",
        "md5": TINY_MD5,
    }


def _draft_files(client, dep_id) -> list[str]:
    return sorted(f["filename"] for f in singularityhelper.get_deposit(client, dep_id)["files"])


def test_listing_without_parameters_returns_exactly_ten(zenodo, helper_env):
    client = helper_env(zenodo)
    response = client.get_content(singularityhelper.ZENODO_DEPOSITION)
    assert len(response) == 10  # Zenodo's default page size
    assert len(client.get_content(singularityhelper.ZENODO_DEPOSITION, size=25)) > 10


def test_published_container_search_returns_one_per_unique_image(zenodo, helper_env):
    client = helper_env(zenodo)
    index = singularity_index()
    handler = singularityhandler.SingularityHandler("Basset", "Dummy", index, {}, zenodo_client=client)
    names = [c["name"] for c in handler.model_group_to_singularity_dict.values()]
    n = helper.total_number_of_unique_containers(names)
    assert n == 19
    found = client.get_content(
        singularityhelper.ZENODO_DEPOSITION, status="published", q="singularity container", size=n
    )
    assert len(found) == n
    # Stronger than upstream: with room to spare, exactly the latest version of each image.
    everything = client.get_content(
        singularityhelper.ZENODO_DEPOSITION, status="published", q="singularity container", size=100
    )
    files = sorted(f["filename"] for d in everything for f in d["files"])
    assert files == sorted(f"{name}.sif" for name in set(names))
    assert 5821666 not in [d["id"] for d in everything]  # an older deeptarget version


def test_old_record_lookup(zenodo, helper_env):
    client = helper_env(zenodo)
    response = client.get_content(f"{singularityhelper.ZENODO_DEPOSITION}/5821666")
    assert response["files"][0]["filename"] == "kipoi-docker_deeptarget.sif"


@pytest.mark.parametrize("file_to_upload", ["busybox_1.34.1.sif", ""], ids=["other-file", "same-filename"])
def test_update_existing_singularity_container(zenodo, helper_env, test_singularity_dict, file_to_upload):
    client = helper_env(zenodo)
    result = singularityhelper.update_existing_singularity_container(
        zenodo_client=client,
        singularity_dict=test_singularity_dict,
        singularity_image_folder=SIF_DIR,
        model_group="Test",
        file_to_upload=file_to_upload,
        push=False,
    )
    new_id = result["new_deposition_id"]
    try:
        assert isinstance(new_id, str) and new_id != "6576723"
        response = singularityhelper.get_deposit(client, new_id)
        assert sorted(f["filename"] for f in response["files"]) == ["busybox_1.34.1.sif", "tiny-container_latest.sif"]
        assert response["metadata"]["publication_date"] == TODAY
        assert response["metadata"]["title"] == "Test singularity container"
        for key in ("url", "md5", "name"):
            assert result[key] == test_singularity_dict[key]
        assert result["file_id"] == ""
        # The replaced file was really uploaded again (new file id, same bytes).
        uploaded = "busybox_1.34.1.sif" if file_to_upload else "tiny-container_latest.sif"
        old = {f["filename"]: f["id"] for f in zenodo.deposition(6576723)["files"]}
        new = {f["filename"]: f for f in response["files"]}
        assert new[uploaded]["id"] != old[uploaded]
        assert new[uploaded]["checksum"] == (BUSYBOX_MD5 if file_to_upload else TINY_MD5)
        assert zenodo.file_bytes(int(new_id), uploaded) == (SIF_DIR / uploaded).read_bytes()
    finally:
        client.delete_content(f"{singularityhelper.ZENODO_DEPOSITION}/{new_id}")
    assert zenodo.deposition(int(new_id)) is None


def test_push_new_singularity_image(zenodo, helper_env, test_singularity_dict):
    client = helper_env(zenodo)
    result = singularityhelper.push_new_singularity_image(
        zenodo_client=client,
        singularity_image_folder=SIF_DIR,
        singularity_dict=test_singularity_dict,
        model_group="Dummy",
        file_to_upload="busybox_1.34.1.sif",
        push=False,
    )
    new_id = result["new_deposition_id"]
    try:
        response = singularityhelper.get_deposit(client, new_id)
        assert [f["filename"] for f in response["files"]] == ["busybox_1.34.1.sif"]
        assert response["files"][0]["checksum"] == BUSYBOX_MD5
        assert response["metadata"]["title"] == "Dummy singularity container"
        assert response["metadata"]["publication_date"] == TODAY
        for key in ("url", "md5", "name"):
            assert result[key] == test_singularity_dict[key]
        assert result["file_id"] == ""
    finally:
        client.delete_content(f"{singularityhelper.ZENODO_DEPOSITION}/{new_id}")


def test_upload_metadata_argument_errors_make_no_request(zenodo, helper_env, test_singularity_dict):
    client = helper_env(zenodo)
    before = len(zenodo.requests_log)
    with pytest.raises(ValueError) as error:
        singularityhelper.upload_metadata(client, test_singularity_dict["url"])
    assert error.type is ValueError
    assert "You need to provide atlease a shared env name or a model group name" in error.value.args[0]
    with pytest.raises(ValueError) as error:
        singularityhelper.upload_metadata(client, test_singularity_dict["url"], shared_env="abc")
    assert error.type is ValueError
    assert (
        "Available options are - mmsplice, sharedpy3keras2tf1, sharedpy3keras2tf2, sharedpy3keras1.2"
        in error.value.args[0]
    )
    assert len(zenodo.requests_log) == before


@pytest.mark.parametrize(
    ("record", "name", "title_part", "description_part"),
    [
        (
            6603044,
            "kipoi-docker_sharedpy3keras2tf1-slim",
            "sharedpy3keras2tf1 singularity container",
            "https://github.com/kipoi/kipoi-containers/blob/main/envfiles/sharedpy3keras2tf1.yml",
        ),
        (
            6603220,
            "kipoi-docker_mmsplice-slim",
            "MMSplice singularity container except mtsplice",
            "Singularity container for MMSplice models except mtsplice",
        ),
    ],
    ids=["shared-env", "mmsplice"],
)
def test_upload_metadata_for_shared_images(zenodo, helper_env, monkeypatch, record, name, title_part, description_part):
    client = helper_env(zenodo)
    monkeypatch.setattr("kipoi_containers.singularityhelper.upload_file", lambda *a, **k: None)
    index = singularity_index()
    entry = next(v for v in index.values() if v["name"] == name)
    result = singularityhelper.update_existing_singularity_container(
        zenodo_client=client,
        singularity_dict=entry,
        singularity_image_folder=SIF_DIR,
        model_group="Test",
        push=False,
    )
    new_id = result["new_deposition_id"]
    try:
        response = singularityhelper.get_deposit(client, new_id)
        metadata = response["metadata"]
        assert metadata["publication_date"] == TODAY
        assert title_part in metadata["title"]
        if title_part.startswith("shared"):
            assert metadata["title"] == title_part
        assert description_part in metadata["description"]
        # The existing .sif was still deleted (Z9) and, upload stubbed out, nothing replaced it.
        assert response["files"] == []
        deletes = [r for r in zenodo.requests_log if r["method"] == "DELETE" and f"/{new_id}/files/" in r["path"]]
        assert len(deletes) == 1
    finally:
        client.delete_content(f"{singularityhelper.ZENODO_DEPOSITION}/{new_id}")


def test_update_with_push_returns_the_published_entry(zenodo, helper_env, test_singularity_dict, tmp_path):
    client = helper_env(zenodo)
    # The rebuilt image: other bytes under the indexed name (legacy Zenodo refuses a version
    # whose files equal an earlier version's, see the emulator tests).
    built = tmp_path / "built"
    built.mkdir()
    (built / "tiny-container_latest.sif").write_bytes((SIF_DIR / "busybox_1.34.1.sif").read_bytes())
    result = singularityhelper.update_existing_singularity_container(
        zenodo_client=client,
        singularity_dict=test_singularity_dict,
        singularity_image_folder=built,
        model_group="Test",
        push=True,
    )
    new_id = int(result["new_deposition_id"])
    published = zenodo.deposition(new_id)
    assert published["state"] == "done"
    assert published["title"] == "Test singularity container"
    tiny = next(f for f in published["files"] if f["filename"] == "tiny-container_latest.sif")
    assert result == {
        "new_deposition_id": str(new_id),
        "file_id": tiny["id"],
        "url": f"{zenodo.url}/record/{new_id}/files/tiny-container_latest.sif?download=1",
        "name": "tiny-container_latest",
        "md5": BUSYBOX_MD5,
    }
    # The new version is now the one listed; the recorded URL downloads (through the RDM
    # 301) to the recorded md5.
    listed = client.get_content(singularityhelper.ZENODO_DEPOSITION, q=f"conceptrecid:{published['conceptrecid']}")
    assert [d["id"] for d in listed] == [new_id]
    assert client.download(result["url"], tmp_path / "b.sif", md5=result["md5"]) == BUSYBOX_MD5
    assert (tmp_path / "b.sif").read_bytes() == (SIF_DIR / "busybox_1.34.1.sif").read_bytes()


def test_push_new_with_push_returns_the_published_entry(zenodo, helper_env, test_singularity_dict):
    client = helper_env(zenodo)
    result = singularityhelper.push_new_singularity_image(
        zenodo_client=client,
        singularity_image_folder=SIF_DIR,
        singularity_dict={"url": "", "name": "tiny-container_latest", "md5": ""},
        model_group="Dummy",
        push=True,
    )
    dep = zenodo.deposition(result["new_deposition_id"])
    assert dep["state"] == "done" and dep["title"] == "Dummy singularity container"
    assert result["md5"] == TINY_MD5
    assert result["name"] == "tiny-container_latest"
    assert result["url"] == f"{zenodo.url}/record/{dep['id']}/files/tiny-container_latest.sif?download=1"
    assert result["file_id"] == dep["files"][0]["id"]


def test_get_singularity_image_downloads_and_checks_md5(zenodo, helper_env, tmp_path):
    client = helper_env(zenodo)
    entry = {
        "url": f"{zenodo.url}/record/6576723/files/tiny-container_latest.sif?download=1",
        "name": "tiny-container_latest",
        "md5": TINY_MD5,
    }
    name = singularityhelper.get_singularity_image(tmp_path, {"Tiny": entry}, "Tiny/model", client)
    assert (tmp_path / name).read_bytes() == (SIF_DIR / "tiny-container_latest.sif").read_bytes()
    from kipoi_containers.errors import ChecksumMismatchError

    bad = dict(entry, md5="0" * 32, name="other")
    with pytest.raises(ChecksumMismatchError, match=r"expected 0{32}"):
        singularityhelper.get_singularity_image(tmp_path, {"Tiny": bad}, "Tiny", client)
    assert not (tmp_path / "other.sif").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["tiny-container_latest.sif"]


# ------------------------------------------------------------------ URLs come from the client


def test_module_constants_follow_zenodo_url_on_access(monkeypatch):
    monkeypatch.delenv("ZENODO_URL", raising=False)
    assert singularityhelper.ZENODO_BASE == "https://zenodo.org"
    assert singularityhelper.ZENODO_DEPOSITION == "https://zenodo.org/api/deposit/depositions"
    monkeypatch.setenv("ZENODO_URL", "http://127.0.0.1:9/zenodo/")
    assert singularityhelper.ZENODO_BASE == "http://127.0.0.1:9/zenodo"
    assert singularityhelper.ZENODO_DEPOSITION == "http://127.0.0.1:9/zenodo/api/deposit/depositions"
    from kipoi_containers.singularityhelper import ZENODO_DEPOSITION  # upstream's import form

    assert ZENODO_DEPOSITION == "http://127.0.0.1:9/zenodo/api/deposit/depositions"
    assert "ZENODO_BASE" in dir(singularityhelper)


def _only_emulator_requests(emu, prefix: str = "") -> None:
    assert emu.requests_log, "nothing reached the emulator"
    assert all(r["path"].startswith(f"{prefix}/") for r in emu.requests_log), emu.requests_log
    assert all(r["status"] != 404 or "/_outside_prefix" not in r["path"] for r in emu.requests_log)


@pytest.mark.parametrize("prefix", ["", "/zenodo"], ids=["plain", "path-prefix"])
def test_client_base_url_alone_directs_every_call(monkeypatch, tmp_path, prefix):
    """``Client(base_url=X)`` with ``ZENODO_URL`` unset: reading, uploading, deleting files,
    metadata, publishing and the returned URL all use X, a path prefix included."""
    from tests.zenodo_fixtures import _finish, make_client, start_emulator

    monkeypatch.delenv("ZENODO_URL", raising=False)
    emu = start_emulator("rdm", prefix=prefix)
    try:
        assert emu.url.endswith(prefix)
        client = make_client(emu)
        assert client.base_url == emu.url
        built = tmp_path / "built"
        built.mkdir()
        (built / "tiny-container_latest.sif").write_bytes((SIF_DIR / "busybox_1.34.1.sif").read_bytes())
        entry = {
            "url": f"{emu.url}/record/6576723/files/tiny-container_latest.sif?download=1",
            "name": "tiny-container_latest",
            "md5": TINY_MD5,
        }
        result = singularityhelper.update_existing_singularity_container(client, entry, built, "Test", push=True)
        new_id = int(result["new_deposition_id"])
        assert result["url"] == f"{emu.url}/record/{new_id}/files/tiny-container_latest.sif?download=1"
        assert emu.deposition(new_id)["title"] == "Test singularity container"
        deletes = [r for r in emu.requests_log if r["method"] == "DELETE"]
        assert [r["path"] for r in deletes] == [
            f"{prefix}/api/deposit/depositions/{new_id}/files/{deletes[0]['path'].rsplit('/', 1)[1]}"
        ]
        assert client.download(result["url"], tmp_path / "b.sif", md5=result["md5"]) == BUSYBOX_MD5
        # The new record's URL is itself usable as the next update's input (id parsed robustly).
        (built / "tiny-container_latest.sif").write_bytes((SIF_DIR / "tiny-container_latest.sif").read_bytes())
        again = singularityhelper.update_existing_singularity_container(
            client, {**entry, "url": result["url"]}, built, "Test", push=False
        )
        assert singularityhelper.get_deposit(client, again["new_deposition_id"])["state"] != "done"
        new = singularityhelper.push_new_singularity_image(
            client, SIF_DIR, {"url": "", "name": "busybox_1.34.1", "md5": ""}, "Dummy", push=True
        )
        assert new["url"].startswith(f"{emu.url}/record/")
        _only_emulator_requests(emu, prefix)
    finally:
        _finish(emu)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://zenodo.org/record/6576723/files/x.sif?download=1", "6576723"),
        ("https://zenodo.org/records/6576723/files/x.sif?download=1", "6576723"),
        ("http://h:1/deep/prefix/record/42/files/x.sif", "42"),
        ("http://h:1/record/api/record/7/files/record.sif", "7"),
        ("https://zenodo.org/api/deposit/depositions/99", "99"),
        ("123", "123"),
    ],
)
def test_record_id_from_url(url, expected):
    assert singularityhelper.record_id_from_url(url) == expected


def test_record_id_from_url_without_an_id_is_a_value_error():
    with pytest.raises(ValueError, match="no Zenodo record id"):
        singularityhelper.record_id_from_url("https://zenodo.org/files/x.sif")


# ------------------------------------------------------------------ index rules


def test_get_singularity_image_uses_the_longest_prefix_key(zenodo_rdm, helper_env, tmp_path):
    client = helper_env(zenodo_rdm)
    record = f"{zenodo_rdm.url}/record/6576723/files"
    tiny = {"url": f"{record}/tiny-container_latest.sif?download=1", "name": "tiny-container_latest", "md5": TINY_MD5}
    busybox = {"url": f"{record}/busybox_1.34.1.sif?download=1", "name": "busybox_1.34.1", "md5": BUSYBOX_MD5}
    index = {"Grp": busybox, "Grp/sub": tiny}
    # A model below a sub-model key resolves to that key, not to its top-level group.
    assert singularityhelper.get_singularity_image(tmp_path, index, "Grp/sub/model", client) == singularityhelper.Path(
        "tiny-container_latest.sif"
    )
    assert singularityhelper.get_singularity_image(tmp_path, index, "Grp/other", client).name == "busybox_1.34.1.sif"
    # Only the sub-model key exists: upstream's split("/")[0] raised KeyError("Grp").
    assert singularityhelper.singularity_entry_for({"Grp/sub": tiny}, "Grp/sub/deeper/model") == tiny
    # `/` boundaries: "Grpx" is not below "Grp".
    with pytest.raises(KeyError):
        singularityhelper.singularity_entry_for(index, "Grpx/model")


def test_singularity_entry_for_accepts_an_index(tmp_path):
    import json
    import shutil

    from kipoi_containers import Index
    from tests.zenodo_fixtures import SINGULARITY_INDEX

    singularity_index()  # skips without the shared fixtures
    shutil.copytree(SINGULARITY_INDEX.parent, tmp_path / "ci")
    index = Index.load(tmp_path / "ci")
    raw = json.loads(SINGULARITY_INDEX.read_text())
    assert singularityhelper.singularity_entry_for(index, "MMSplice/mtsplice") == raw["MMSplice/mtsplice"]
    assert (
        singularityhelper.singularity_entry_for(index, "DeepBind/Homo_sapiens/TF/D00328.018_ChIP-seq_CTCF")
        == raw["DeepBind"]
    )


@pytest.mark.parametrize(
    ("record", "name", "title", "description_part"),
    [
        (
            6603044,
            "kipoi-docker_sharedpy3keras2tf1-slim",
            "sharedpy3keras2tf1 singularity container",
            "https://github.com/kipoi/kipoi-containers/blob/main/envfiles/sharedpy3keras2tf1.yml",
        ),
        (
            6603220,
            "kipoi-docker_mmsplice-slim",
            "MMSplice singularity container except mtsplice",
            "Singularity container for MMSplice models except mtsplice",
        ),
        (None, "kipoi-docker_deepmel-slim", "Test singularity container", "https://kipoi.org/models/Test/"),
    ],
    ids=["shared-env", "mmsplice", "own-image"],
)
def test_metadata_is_decided_from_the_index(zenodo_rdm, helper_env, monkeypatch, record, name, title, description_part):
    client = helper_env(zenodo_rdm)
    monkeypatch.setattr("kipoi_containers.singularityhelper.upload_file", lambda *a, **k: None)
    index = singularity_index()
    entry = next(v for v in index.values() if v["name"] == name)
    result = singularityhelper.update_existing_singularity_container(
        client, entry, SIF_DIR, "Test", push=False, model_group_to_singularity_dict=index
    )
    metadata = singularityhelper.get_deposit(client, result["new_deposition_id"])["metadata"]
    assert metadata["title"] == title
    assert description_part in metadata["description"]


def test_a_shared_image_unknown_to_upstream_is_recognised_from_the_index(zenodo_rdm, helper_env, monkeypatch):
    """Not in upstream's hard-coded list, but its keys span two top-level groups: shared.
    And an image named like upstream's shared ones but used by one group only is that group's."""
    client = helper_env(zenodo_rdm)
    monkeypatch.setattr("kipoi_containers.singularityhelper.upload_file", lambda *a, **k: None)
    zenodo_rdm.seed_published(9000001, title="x", files=[("kipoi-docker_sharedpy3torch-slim.sif", (TINY_MD5, 1))])
    torch = {
        "url": f"{zenodo_rdm.url}/record/9000001/files/kipoi-docker_sharedpy3torch-slim.sif?download=1",
        "name": "kipoi-docker_sharedpy3torch-slim",
        "md5": TINY_MD5,
    }
    index = {"A": torch, "B/m": torch, "C": {**torch, "name": "kipoi-docker_sharedpy3keras1.2-slim"}}
    result = singularityhelper.update_existing_singularity_container(
        client, torch, SIF_DIR, "A", push=False, model_group_to_singularity_dict=index
    )
    title = singularityhelper.get_deposit(client, result["new_deposition_id"])["metadata"]["title"]
    assert title == "sharedpy3torch singularity container"
    client.delete_deposition(result["new_deposition_id"])
    lone = index["C"]
    result = singularityhelper.update_existing_singularity_container(
        client, lone, SIF_DIR, "C", push=False, model_group_to_singularity_dict=index
    )
    title = singularityhelper.get_deposit(client, result["new_deposition_id"])["metadata"]["title"]
    assert title == "C singularity container"
