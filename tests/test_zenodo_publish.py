"""The engine's publish workflow (``zenodo::publish``) through its Python faces, against the
Zenodo emulator: new record and new version end to end, no draft left behind by a failure or
by Ctrl-C, resuming from a journal's draft, upstream's ``push=True`` defaults, shared images
in ``SingularityHandler.add``, file names refused before any request, and the record texts
decided from the real index."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from kipoi_containers import _engine, singularityhandler, singularityhelper
from kipoi_containers.errors import InvalidNameError, ZenodoError
from tests.zenodo_fixtures import (
    BUSYBOX_MD5,
    SIF_DIR,
    SINGULARITY_INDEX,
    TINY_MD5,
    TOKEN,
    make_client,
    singularity_index,
)

REPO = Path(__file__).resolve().parents[1]
BUSYBOX = SIF_DIR / "busybox_1.34.1.sif"


def _requests(emu, method: str, fragment: str = "") -> list[dict[str, Any]]:
    return [r for r in emu.requests_log if r["method"] == method and fragment in r["path"]]


def _drafts(emu) -> list[dict[str, Any]]:
    return [d for d in emu.depositions() if d["state"] != "done"]


def _holding(emu, file_name: str) -> list[dict[str, Any]]:
    return [d for d in emu.depositions() if any(f["filename"] == file_name for f in d["files"])]


def _tiny_entry(emu) -> dict[str, str]:
    return {
        "url": f"{emu.url}/record/6576723/files/tiny-container_latest.sif?download=1",
        "name": "tiny-container_latest",
        "md5": TINY_MD5,
    }


# ------------------------------------------------------------------ end to end


def test_new_record_end_to_end(zenodo, helper_env, tmp_path):
    client = helper_env(zenodo)
    before = len(zenodo.depositions())
    steps: list = []
    progress: list = []
    result = client.publish_new(
        BUSYBOX,
        "kipoi-docker_newgroup-slim.sif",
        model_group="NewGroup",
        on_step=lambda event, info: steps.append((event, info)),
        progress=lambda done, total: progress.append((done, total)),
    )
    published = result["published"]
    dep_id = result["deposition_id"]
    assert published == {
        "record_id": dep_id,
        "file_id": zenodo.deposition(dep_id)["files"][0]["id"],
        "url": f"{zenodo.url}/record/{dep_id}/files/kipoi-docker_newgroup-slim.sif?download=1",
        "name": "kipoi-docker_newgroup-slim",
        "md5": BUSYBOX_MD5,
    }
    assert result["md5"] == BUSYBOX_MD5
    # Exactly one new record, published, holding exactly the uploaded bytes.
    assert len(zenodo.depositions()) == before + 1
    dep = zenodo.deposition(dep_id)
    assert dep["state"] == "done" and dep["title"] == "NewGroup singularity container"
    assert [f["filename"] for f in dep["files"]] == ["kipoi-docker_newgroup-slim.sif"]
    assert zenodo.file_bytes(dep_id, "kipoi-docker_newgroup-slim.sif") == BUSYBOX.read_bytes()
    assert client.download(published["url"], tmp_path / "back.sif", md5=published["md5"]) == BUSYBOX_MD5
    assert [event for event, _ in steps] == ["draft_created", "file_uploaded", "published"]
    assert steps[1][1] == {"deposition_id": dep_id, "file_name": "kipoi-docker_newgroup-slim.sif", "md5": BUSYBOX_MD5}
    assert steps[2][1] == published
    assert _drafts(zenodo) == []
    size = BUSYBOX.stat().st_size
    assert progress and progress[-1] == (size, size)


def test_a_replaced_upload_file_that_raises_is_raised_and_the_draft_deleted(zenodo_rdm, helper_env, monkeypatch):
    """Upstream's tests replace ``upload_file``; the publication calls the replacement, and
    its exception comes out unchanged, noting what became of the draft."""
    client = helper_env(zenodo_rdm)
    seen: list = []

    def broken_upload(zenodo_client, url, singularity_image_folder, filename):
        seen.append((url, filename))
        raise RuntimeError("disk on fire")

    monkeypatch.setattr("kipoi_containers.singularityhelper.upload_file", broken_upload)
    with pytest.raises(RuntimeError, match="disk on fire") as err:
        singularityhelper.push_new_singularity_image(
            client, SIF_DIR, {"url": "", "name": "busybox_1.34.1", "md5": ""}, "G"
        )
    (delete,) = _requests(zenodo_rdm, "DELETE")
    draft = int(delete["path"].rsplit("/", 1)[1])
    assert delete["path"] == f"/api/deposit/depositions/{draft}" and delete["status"] == 204
    assert seen and seen[0][1] == "busybox_1.34.1.sif" and seen[0][0].endswith("/busybox_1.34.1.sif")
    notes = getattr(err.value, "__notes__", [])
    assert any(f"its draft deposition `{draft}` was deleted" in n for n in notes), notes
    assert _drafts(zenodo_rdm) == []


def test_new_version_end_to_end(zenodo, helper_env, tmp_path):
    client = helper_env(zenodo)
    old = {f["filename"]: f for f in zenodo.deposition(6576723)["files"]}
    built = tmp_path / "tiny-container_latest.sif"
    shutil.copyfile(BUSYBOX, built)  # the "rebuilt" image: other bytes under the indexed name
    result = client.publish_version(_tiny_entry(zenodo)["url"], built, built.name, model_group="Tiny")
    new_id = result["deposition_id"]
    published = result["published"]
    assert new_id != 6576723
    assert published["url"] == f"{zenodo.url}/record/{new_id}/files/tiny-container_latest.sif?download=1"
    assert (published["name"], published["md5"]) == ("tiny-container_latest", BUSYBOX_MD5)
    dep = zenodo.deposition(new_id)
    files = {f["filename"]: f for f in dep["files"]}
    # Only the file of that name was replaced; the record's other file is inherited as it was.
    assert sorted(files) == ["busybox_1.34.1.sif", "tiny-container_latest.sif"]
    assert files["busybox_1.34.1.sif"]["id"] == old["busybox_1.34.1.sif"]["id"]
    assert files["tiny-container_latest.sif"]["id"] == published["file_id"] != old["tiny-container_latest.sif"]["id"]
    assert zenodo.file_bytes(new_id, "tiny-container_latest.sif") == BUSYBOX.read_bytes()
    # One concept, two published versions, no draft; the old version is untouched.
    concept = dep["conceptrecid"]
    versions = [d for d in zenodo.depositions() if d["conceptrecid"] == concept]
    assert sorted(d["id"] for d in versions) == [6576723, new_id]
    assert all(d["state"] == "done" for d in versions)
    assert zenodo.deposition(6576723)["files"] == list(old.values())
    assert client.download(published["url"], tmp_path / "back.sif", md5=published["md5"]) == BUSYBOX_MD5


def test_a_version_already_published_with_the_same_bytes_is_not_published_again(zenodo, helper_env, tmp_path):
    """Publishing the same bytes as a new version twice (a lost journal, another shard):
    the second call finds them in the record's latest version and publishes nothing."""
    client = helper_env(zenodo)
    built = tmp_path / "tiny-container_latest.sif"
    shutil.copyfile(BUSYBOX, built)
    first = client.publish_version(_tiny_entry(zenodo)["url"], built, built.name, model_group="Tiny")
    count = len(zenodo.depositions())
    again = client.publish_version(_tiny_entry(zenodo)["url"], built, built.name, model_group="Tiny")
    assert again["published"] == first["published"]
    assert again["deposition_id"] == first["deposition_id"]
    assert len(zenodo.depositions()) == count, "no draft, no version"


# ------------------------------------------------------------------ failures leave no draft


@pytest.mark.parametrize("step", ["upload", "metadata", "publish"])
def test_a_failed_update_deletes_the_new_version_draft(zenodo, helper_env, tmp_path, step):
    client = helper_env(zenodo)
    built = tmp_path / "tiny-container_latest.sif"
    shutil.copyfile(BUSYBOX, built)
    if step == "upload":
        zenodo.inject(400, method="PUT", path_prefix="/api/files/")
    elif step == "metadata":
        zenodo.inject(400, method="PUT", path_prefix="/api/deposit/depositions/")
    else:  # the first POST is newversion
        zenodo.inject(400, method="POST", path_prefix="/api/deposit/depositions/", after=1, body={"message": "nope"})
    record_before = zenodo.deposition(6576723)
    with pytest.raises(ZenodoError) as err:
        singularityhelper.update_existing_singularity_container(client, _tiny_entry(zenodo), tmp_path, "Tiny")
    # The record itself is read first (does its latest version hold these bytes already?),
    # then the draft the new version opened.
    read = [int(r["path"].rsplit("/", 1)[1]) for r in _requests(zenodo, "GET", "/api/deposit/depositions/")]
    draft_id = next(i for i in read if i != 6576723)
    assert err.value.status == 400 and err.value.draft_id == 0
    assert f"as a new version of Zenodo record `6576723`; its draft deposition `{draft_id}` was deleted" in str(
        err.value
    )
    assert _drafts(zenodo) == []
    assert zenodo.deposition(draft_id) is None
    assert zenodo.deposition(6576723) == record_before
    deletes = [r for r in _requests(zenodo, "DELETE") if r["path"] == f"/api/deposit/depositions/{draft_id}"]
    assert [r["status"] for r in deletes] == [204]


_PUBLISHER = textwrap.dedent(
    """
    import os, sys
    from kipoi_containers import zenodoclient

    client = zenodoclient.Client(os.environ["EMU_URL"], os.environ["EMU_TOKEN"], max_retries=0)

    def on_step(event, info):
        print(event, info.get("deposition_id", ""), flush=True)

    path, mode = sys.argv[1], sys.argv[2]
    try:
        if mode == "new":
            client.publish_new(path, "big.sif", model_group="Big", on_step=on_step)
        else:
            client.publish_version(6576723, path, "big.sif", model_group="Big", on_step=on_step)
        print("finished", flush=True)
    except KeyboardInterrupt:
        print("KeyboardInterrupt", flush=True)
        sys.exit(130)
    """
)


class _Publisher:
    """A Python subprocess publishing ``path``; its stdout lines with arrival times."""

    def __init__(self, emu, path: Path, mode: str) -> None:
        env = dict(os.environ, EMU_URL=emu.url, EMU_TOKEN=TOKEN)
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _PUBLISHER, str(path), mode],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list = []
        self.stderr = ""
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append((time.monotonic(), line.strip()))

    def wait_for_upload(self, emu, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not _requests(emu, "PUT", "/api/files/"):
            if self.proc.poll() is not None:
                self.finish()
                raise AssertionError(f"the publisher ended early: {self.stderr}")
            assert time.monotonic() < deadline, "the upload never started"
            time.sleep(0.02)

    def finish(self, timeout: float = 30) -> int:
        """Waits for the process; keeps its stderr in :attr:`stderr`; closes the pipes."""
        code = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=5)
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self.stderr = self.proc.stderr.read()
        self.proc.stdout.close()
        self.proc.stderr.close()
        return code

    def line_time(self, text: str) -> float:
        return next(t for t, line in self.lines if line == text)

    def draft_id(self) -> int:
        return int(next(line.split()[1] for _, line in self.lines if line.startswith("draft_created")))


@pytest.mark.parametrize("mode", ["new", "version"])
def test_ctrl_c_during_an_upload_deletes_the_draft(zenodo_rdm, tmp_path, mode):
    big = tmp_path / "big.sif"
    with open(big, "wb") as f:
        f.truncate(200 * 2**20)  # 200 MB, sparse
    zenodo_rdm.inject(method="PUT", path_prefix="/api/files/", stall=120)
    publisher = _Publisher(zenodo_rdm, big, mode)
    publisher.wait_for_upload(zenodo_rdm)
    time.sleep(0.3)  # well into the upload
    assert len(_drafts(zenodo_rdm)) == 1
    sent = time.monotonic()
    publisher.proc.send_signal(signal.SIGINT)
    code = publisher.finish()
    assert code == 130, publisher.stderr
    assert publisher.line_time("KeyboardInterrupt") - sent < 1.5, "KeyboardInterrupt came late"
    draft = publisher.draft_id()
    assert [line for _, line in publisher.lines] == [
        f"draft_created {draft}",
        f"draft_deleted {draft}",
        "KeyboardInterrupt",
    ]
    # The draft is gone; nothing else changed.
    assert _drafts(zenodo_rdm) == [] and zenodo_rdm.deposition(draft) is None
    assert [r["status"] for r in _requests(zenodo_rdm, "DELETE")] == [204]
    assert zenodo_rdm.deposition(6576723)["state"] == "done"
    assert _holding(zenodo_rdm, "big.sif") == []


# ------------------------------------------------------------------ resuming


def test_resume_after_a_killed_run_makes_no_second_record(zenodo_rdm, tmp_path):
    """A run killed (SIGKILL: no cleanup) during its upload leaves its draft; resuming with the
    journal's draft id finishes that draft instead of creating another record."""
    client = make_client(zenodo_rdm)
    big = tmp_path / "big.sif"
    shutil.copyfile(BUSYBOX, big)
    zenodo_rdm.inject(method="PUT", path_prefix="/api/files/", stall=120)
    publisher = _Publisher(zenodo_rdm, big, "new")
    publisher.wait_for_upload(zenodo_rdm)
    publisher.proc.kill()
    publisher.finish()
    draft = publisher.draft_id()  # what a journal recorded
    assert [d["id"] for d in _drafts(zenodo_rdm)] == [draft]
    creates = len(_requests(zenodo_rdm, "POST", "/api/deposit/depositions"))
    result = client.publish_new(big, "big.sif", model_group="Big", draft_id=draft)
    assert result["deposition_id"] == draft
    assert len(_requests(zenodo_rdm, "POST", "/api/deposit/depositions")) == creates + 1  # the publish only
    assert [d["id"] for d in _holding(zenodo_rdm, "big.sif")] == [draft]
    assert _drafts(zenodo_rdm) == []
    assert result["published"]["md5"] == BUSYBOX_MD5


def test_resume_keeps_a_file_already_uploaded(zenodo, helper_env):
    client = helper_env(zenodo)
    first = client.publish_new(BUSYBOX, "busybox_1.34.1.sif", model_group="Dummy", push=False)
    draft = first["deposition_id"]
    puts_before = len(_requests(zenodo, "PUT", "/api/files/"))
    steps: list = []
    result = client.publish_new(
        BUSYBOX,
        "busybox_1.34.1.sif",
        model_group="Dummy",
        draft_id=draft,
        on_step=lambda event, info: steps.append(event),
    )
    assert result["deposition_id"] == draft and result["published"]["md5"] == BUSYBOX_MD5
    assert len(_requests(zenodo, "PUT", "/api/files/")) == puts_before  # not uploaded again
    assert [d["id"] for d in _holding(zenodo, "busybox_1.34.1.sif") if d["id"] != 6576723] == [draft]
    assert steps == ["draft_created", "file_uploaded", "published"]
    # Resuming the (now published) draft again is a no-op that returns the same entry.
    again = client.publish_new(BUSYBOX, "busybox_1.34.1.sif", model_group="Dummy", draft_id=draft)
    assert again == result


def test_resume_of_a_deleted_draft_starts_afresh(zenodo_rdm):
    client = make_client(zenodo_rdm)
    draft = client.publish_new(BUSYBOX, "busybox_1.34.1.sif", model_group="Dummy", push=False)["deposition_id"]
    client.delete_deposition(draft)
    result = client.publish_new(BUSYBOX, "busybox_1.34.1.sif", model_group="Dummy", draft_id=draft)
    assert result["deposition_id"] != draft
    assert zenodo_rdm.deposition(result["deposition_id"])["state"] == "done"


# ------------------------------------------------------------------ upstream's push=True defaults


def test_helpers_publish_by_default(zenodo_rdm, helper_env, tmp_path):
    client = helper_env(zenodo_rdm)
    new = singularityhelper.push_new_singularity_image(
        client, SIF_DIR, {"url": "", "name": "busybox_1.34.1", "md5": ""}, "Dummy"
    )
    assert zenodo_rdm.deposition(new["new_deposition_id"])["state"] == "done"
    assert set(new) == {"new_deposition_id", "file_id", "url", "name", "md5"} and new["md5"] == BUSYBOX_MD5
    built = tmp_path / "tiny-container_latest.sif"
    shutil.copyfile(BUSYBOX, built)
    updated = singularityhelper.update_existing_singularity_container(client, _tiny_entry(zenodo_rdm), tmp_path, "Tiny")
    assert zenodo_rdm.deposition(int(updated["new_deposition_id"]))["state"] == "done"
    assert isinstance(updated["new_deposition_id"], str) and updated["md5"] == BUSYBOX_MD5
    assert _drafts(zenodo_rdm) == []


def _builder(source: Path, calls: list):
    def build(name_of_docker_image, singularity_image_name, singularity_image_folder):
        calls.append((name_of_docker_image, singularity_image_name))
        target = Path(singularity_image_folder) / singularity_image_name
        shutil.copyfile(source, target)
        return target

    return build


def test_handler_publishes_by_default(zenodo_rdm, helper_env, tmp_path):
    client = helper_env(zenodo_rdm)
    index = {"Tiny": _tiny_entry(zenodo_rdm)}
    handler = singularityhandler.SingularityHandler(
        "Tiny",
        "kipoi/kipoi-docker:tiny-slim",
        index,
        {},
        singularity_image_folder=tmp_path,
        zenodo_client=client,
        build_image=_builder(BUSYBOX, []),
        test_image=lambda **kw: None,
    )
    handler.update(["Tiny"])
    record = int(_engine.record_id_from_url(index["Tiny"]["url"]) or 0)
    assert record != 6576723 and zenodo_rdm.deposition(record)["state"] == "done"
    handler = singularityhandler.SingularityHandler(
        "Other",
        "kipoi/kipoi-docker:other",
        index,
        {},
        singularity_image_folder=tmp_path,
        zenodo_client=client,
        build_image=_builder(BUSYBOX, []),
        test_image=lambda **kw: None,
    )
    handler.add(["Other"])
    record = int(_engine.record_id_from_url(index["Other"]["url"]) or 0)
    assert zenodo_rdm.deposition(record)["state"] == "done"
    assert _drafts(zenodo_rdm) == []


# ------------------------------------------------------------------ shared images in add()


def _docker_to_model() -> dict[str, list[str]]:
    singularity_index()  # skips without the shared fixtures
    return json.loads((SINGULARITY_INDEX.parent / "docker-to-model.json").read_text())


@pytest.mark.parametrize(
    "image", ["kipoi/kipoi-docker:sharedpy3keras2tf2", "kipoi/kipoi-docker:sharedpy3keras2tf2-slim"]
)
def test_add_to_a_shared_image_reuses_its_entry(zenodo_rdm, tmp_path, image):
    index = singularity_index()
    release = {"jobs": {"buildtestandpushsingularity": {"strategy": {"matrix": {"image": ["dummy"]}}}}}
    calls: list = []
    handler = singularityhandler.SingularityHandler(
        "NewKerasGroup",
        image,
        index,
        release,
        singularity_image_folder=tmp_path,
        zenodo_client=make_client(zenodo_rdm),
        build_image=_builder(BUSYBOX, calls),
        test_image=lambda **kw: None,
    )
    handler.add(["NewKerasGroup/model"], _docker_to_model())
    assert index["NewKerasGroup"] == index["Basset"]  # the image's first model's entry
    assert calls == [] and zenodo_rdm.requests_log == []  # no build, no Zenodo call
    assert release["jobs"]["buildtestandpushsingularity"]["strategy"]["matrix"]["image"] == ["dummy"]


def test_shared_is_decided_from_the_index_not_the_name(zenodo_rdm, helper_env, tmp_path):
    client = helper_env(zenodo_rdm)
    custom = {
        "url": f"{zenodo_rdm.url}/record/6576723/files/kipoi-docker_customenv-slim.sif?download=1",
        "name": "kipoi-docker_customenv-slim",
        "md5": TINY_MD5,
    }
    # No "shared" in the name, but a second group joins the image: reused.
    index = {"GroupA": dict(custom)}
    handler = singularityhandler.SingularityHandler(
        "GroupB",
        "kipoi/kipoi-docker:customenv",
        index,
        {},
        singularity_image_folder=tmp_path,
        zenodo_client=client,
        build_image=_builder(BUSYBOX, []),
        test_image=lambda **kw: None,
    )
    handler.add(["GroupB"], {"kipoi/kipoi-docker:customenv": ["GroupA"]})
    assert index["GroupB"] == custom and zenodo_rdm.requests_log == []
    # "shared" in the name, but no other group uses it: built and published as its own record.
    calls: list = []
    handler = singularityhandler.SingularityHandler(
        "Lonely",
        "kipoi/kipoi-docker:sharedlonely",
        index,
        {},
        singularity_image_folder=tmp_path,
        zenodo_client=client,
        build_image=_builder(BUSYBOX, calls),
        test_image=lambda **kw: None,
    )
    handler.add(["Lonely"], {})
    assert calls == [("kipoi/kipoi-docker:sharedlonely-slim", "kipoi-docker_sharedlonely-slim.sif")]
    record = int(_engine.record_id_from_url(index["Lonely"]["url"]) or 0)
    assert zenodo_rdm.deposition(record)["title"] == "Lonely singularity container"


# ------------------------------------------------------------------ file names


@pytest.mark.parametrize("name", ["../x.sif", "a/b.sif", "..", "x\\y.sif"])
def test_unsafe_upload_names_are_refused_before_any_request(zenodo_rdm, helper_env, name):
    client = helper_env(zenodo_rdm)
    entry = {"url": "", "name": "x", "md5": ""}
    with pytest.raises(InvalidNameError) as err:
        singularityhelper.push_new_singularity_image(client, SIF_DIR, entry, "G", file_to_upload=name)
    assert isinstance(err.value, ValueError)
    assert "the file name is refused" in str(err.value)
    with pytest.raises(InvalidNameError):
        singularityhelper.update_existing_singularity_container(
            client, _tiny_entry(zenodo_rdm), SIF_DIR, "G", file_to_upload=name
        )
    with pytest.raises(InvalidNameError):
        client.publish_version(6576723, BUSYBOX, name, model_group="G", draft_id=6576723)
    assert zenodo_rdm.requests_log == []


def test_a_missing_file_fails_before_any_request(zenodo_rdm, helper_env, tmp_path):
    from kipoi_containers.errors import FileIOError

    client = helper_env(zenodo_rdm)
    with pytest.raises(FileIOError, match=r"could not open `.*nope\.sif`"):
        singularityhelper.push_new_singularity_image(client, tmp_path, {"url": "", "name": "nope", "md5": ""}, "G")
    assert zenodo_rdm.requests_log == []


def test_the_default_file_name_is_checked_too(zenodo_rdm, helper_env):
    client = helper_env(zenodo_rdm)
    with pytest.raises(InvalidNameError):
        singularityhelper.push_new_singularity_image(
            client, SIF_DIR, {"url": "", "name": "../../etc/x", "md5": ""}, "G"
        )
    assert zenodo_rdm.requests_log == []


# ------------------------------------------------------------------ record texts from the real index


@pytest.mark.parametrize(
    ("sif_name", "group", "title", "description"),
    [
        (
            "kipoi-docker_deepmel-slim",
            "DeepMEL",
            "DeepMEL singularity container",
            "This is a singularity container for models under https://kipoi.org/models/DeepMEL/",
        ),
        (
            "kipoi-docker_sharedpy3keras2tf2-slim",
            "Basset",
            "sharedpy3keras2tf2 singularity container",
            "Singularity container with the conda environment "
            "https://github.com/kipoi/kipoi-containers/blob/main/envfiles/sharedpy3keras2tf2.yml "
            "shared by several kipoi model groups",
        ),
        (
            "kipoi-docker_mmsplice-slim",
            "MMSplice",
            "MMSplice singularity container except mtsplice",
            "Singularity container for MMSplice models except mtsplice, see https://kipoi.org/models/MMSplice/",
        ),
    ],
    ids=["group", "shared-env", "mmsplice-except-mtsplice"],
)
def test_record_texts_from_the_real_index(sif_name, group, title, description):
    index = _engine.load_json(REPO / "container-info" / "model-to-singularity.json")
    assert _engine.record_text(sif_name, group, index) == (title, description)
    # Without the index the image is the group's own.
    assert _engine.record_text(sif_name, group) == _engine.model_group_text(group)


def test_upload_metadata_keeps_upstreams_rules_with_the_engines_texts(zenodo_rdm, helper_env):
    client = helper_env(zenodo_rdm)
    draft = client.create_deposition()["id"]
    url = f"{client.deposition_url}/{draft}"
    cases = [
        ({"model_group": "Basset", "shared_env": "abc"}, _engine.model_group_text("Basset")),  # the group wins
        ({"shared_env": "sharedpy3torch"}, _engine.shared_env_text("sharedpy3torch")),
        ({"shared_env": "mmsplice"}, _engine.group_except_text("MMSplice", ["mtsplice"])),
    ]
    for kwargs, (title, description) in cases:
        singularityhelper.upload_metadata(client, url, **kwargs)
        metadata = zenodo_rdm.deposition(draft)["metadata"]
        assert (metadata["title"], metadata["description"]) == (title, description), kwargs
    client.delete_deposition(draft)
