"""Spec C.2: ``SingularityHandler`` — settings, dict handling, and the update/add outcomes,
with the real SIF fixtures as the "built" image and the emulator as Zenodo."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from kipoi_containers import singularityhandler
from kipoi_containers.errors import DockerError
from tests.zenodo_fixtures import (
    BUSYBOX_MD5,
    SIF_DIR,
    TINY_MD5,
    make_client,
    singularity_index,
)


def _builder(source: Path, calls: list):
    """A stand-in for the SIF conversion: copies a real SIF under the requested name."""

    def build(name_of_docker_image, singularity_image_name, singularity_image_folder):
        calls.append((name_of_docker_image, singularity_image_name))
        target = Path(singularity_image_folder) / singularity_image_name
        shutil.copyfile(source, target)
        return target

    return build


def test_pull_folder_comes_from_the_environment(monkeypatch, zenodo_rdm):
    monkeypatch.setenv("SINGULARITY_PULL_FOLDER", "/usr/src/imaginary-folder")
    handler = singularityhandler.SingularityHandler(
        model_group="Basset",
        docker_image_name="kipoi/kipoi-docker:basset-slim",
        model_group_to_singularity_dict=singularity_index(),
        workflow_release_data={},
        zenodo_client=make_client(zenodo_rdm),
    )
    assert Path(handler.singularity_image_folder) == Path("/usr/src/imaginary-folder")


def test_handler_keeps_the_index_shape(tmp_path, zenodo_rdm):
    index = singularity_index()
    handler = singularityhandler.SingularityHandler(
        "Basset",
        "kipoi/kipoi-docker:basset-slim",
        index,
        {},
        singularity_image_folder=tmp_path,
        zenodo_client=make_client(zenodo_rdm),
    )
    assert handler.singularity_image_folder == tmp_path
    assert "Basset" in handler.model_group_to_singularity_dict
    assert all(sorted(v) == ["md5", "name", "url"] for v in handler.model_group_to_singularity_dict.values())
    handler.model_group = "DummyModel"
    handler.update_container_info(
        {
            "url": "https://www.dummy.url",
            "name": "Dummy_container.sif",
            "md5": "123",
            "new_deposition_id": "x",
            "file_id": "1",
        }
    )
    assert index["DummyModel"] == {"url": "https://www.dummy.url", "name": "Dummy_container.sif", "md5": "123"}


def test_default_conversion_of_an_absent_image_fails_before_zenodo(tmp_path, zenodo_rdm):
    """The default builder is the native conversion: an image that is neither local nor
    pullable (no registry here) fails naming the image, and nothing reaches Zenodo."""
    index = singularity_index()
    before = dict(index["DeepMEL"])
    handler = singularityhandler.SingularityHandler(
        "DeepMEL",
        "kipoi/kipoi-docker:absent-image-slim",
        index,
        {},
        singularity_image_folder=tmp_path,
        zenodo_client=make_client(zenodo_rdm),
    )
    with pytest.raises(DockerError, match="kipoi/kipoi-docker:absent-image-slim"):
        handler.update([], push=False)
    assert zenodo_rdm.requests_log == []
    assert index["DeepMEL"] == before
    assert list(tmp_path.iterdir()) == []


def test_unchanged_image_is_not_published(tmp_path, capsys, caplog, zenodo_rdm):
    index = singularity_index()
    index["DeepMEL"] = dict(index["DeepMEL"], md5=TINY_MD5)  # the "rebuilt" image is identical
    before = dict(index["DeepMEL"])
    calls: list = []
    handler = singularityhandler.SingularityHandler(
        "DeepMEL",
        "kipoi/kipoi-docker:deepmel-slim",
        index,
        {},
        singularity_image_folder=tmp_path,
        zenodo_client=make_client(zenodo_rdm),
        build_image=_builder(SIF_DIR / "tiny-container_latest.sif", calls),
    )
    caplog.set_level("INFO", logger="kipoi_containers")
    handler.update(["DeepMEL/Model"], push=False)
    assert capsys.readouterr().out.strip() == "No need to update the existing singularity container for DeepMEL"
    assert "No need to update the existing singularity container for DeepMEL" in caplog.text
    assert calls == [("kipoi/kipoi-docker:deepmel-slim", "kipoi-docker_deepmel-slim.sif")]
    assert zenodo_rdm.requests_log == []  # no Zenodo call
    assert index["DeepMEL"] == before
    assert list(tmp_path.iterdir()) == []  # the built image was cleaned up


def test_changed_image_is_published_as_a_new_version(tmp_path, zenodo, helper_env):
    client = helper_env(zenodo)
    index = {
        "Tiny": {
            "url": f"{zenodo.url}/record/6576723/files/tiny-container_latest.sif?download=1",
            "name": "tiny-container_latest",
            "md5": TINY_MD5,
        }
    }
    tested: list = []
    handler = singularityhandler.SingularityHandler(
        "Tiny",
        "kipoi/kipoi-docker:tiny-slim",
        index,
        {},
        singularity_image_folder=tmp_path,
        zenodo_client=client,
        build_image=_builder(SIF_DIR / "busybox_1.34.1.sif", []),
        test_image=lambda **kw: tested.append(kw["model"]),
    )
    handler.update(["Tiny/a", "Tiny/b"], push=True)
    assert tested == ["Tiny/a", "Tiny/b"]
    entry = index["Tiny"]
    assert sorted(entry) == ["md5", "name", "url"]
    assert entry["md5"] == BUSYBOX_MD5 and entry["name"] == "tiny-container_latest"
    record = int(entry["url"].split("/")[4])
    assert record != 6576723 and zenodo.deposition(record)["state"] == "done"
    assert entry["url"] == f"{zenodo.url}/record/{record}/files/tiny-container_latest.sif?download=1"
    assert client.download(entry["url"], tmp_path / "check.sif", md5=entry["md5"]) == BUSYBOX_MD5
    assert not (tmp_path / "tiny-container_latest.sif").exists()  # cleaned up


def test_update_without_push_keeps_the_entry_and_leaves_a_draft(tmp_path, zenodo_rdm, helper_env, monkeypatch):
    client = helper_env(zenodo_rdm)
    index = {
        "Tiny": {
            "url": f"{zenodo_rdm.url}/record/6576723/files/tiny-container_latest.sif?download=1",
            "name": "tiny-container_latest",
            "md5": TINY_MD5,
        }
    }
    before = dict(index["Tiny"])
    monkeypatch.setattr(
        "kipoi_containers.singularityhandler.build_singularity_image", _builder(SIF_DIR / "busybox_1.34.1.sif", [])
    )
    monkeypatch.setattr("kipoi_containers.singularityhandler.test_singularity_image", lambda **kw: None)
    handler = singularityhandler.SingularityHandler(
        "Tiny",
        "kipoi/kipoi-docker:tiny-slim",
        index,
        {},
        singularity_image_folder=tmp_path,
        zenodo_client=client,
    )
    handler.update([], push=False)
    assert index["Tiny"] == before
    drafts = [d for d in zenodo_rdm.depositions() if d["state"] != "done"]
    assert len(drafts) == 1
    assert {f["filename"]: f["checksum"] for f in drafts[0]["files"]}["tiny-container_latest.sif"] == BUSYBOX_MD5


def test_add_publishes_a_new_record_and_extends_the_release_matrix(tmp_path, zenodo, helper_env):
    client = helper_env(zenodo)
    index = singularity_index()
    release = {"jobs": {"buildtestandpushsingularity": {"strategy": {"matrix": {"image": ["dummy"]}}}}}
    calls: list = []
    handler = singularityhandler.SingularityHandler(
        model_group="MPRA-DragoNN/ConvModel",
        docker_image_name="kipoi/kipoi-docker:mpra-dragonn",
        model_group_to_singularity_dict=index,
        workflow_release_data=release,
        singularity_image_folder=tmp_path,
        zenodo_client=client,
        build_image=_builder(SIF_DIR / "busybox_1.34.1.sif", calls),
        test_image=lambda **kw: None,
    )
    handler.add(["MPRA-DragoNN/ConvModel"], push=True)
    assert calls == [("kipoi/kipoi-docker:mpra-dragonn-slim", "kipoi-docker_mpra-dragonn-slim.sif")]
    entry = index["MPRA-DragoNN/ConvModel"]
    record = int(entry["url"].split("/")[4])
    dep = zenodo.deposition(record)
    assert dep["state"] == "done" and dep["title"] == "MPRA-DragoNN/ConvModel singularity container"
    assert entry == {
        "url": f"{zenodo.url}/record/{record}/files/kipoi-docker_mpra-dragonn-slim.sif?download=1",
        "name": "kipoi-docker_mpra-dragonn-slim",
        "md5": BUSYBOX_MD5,
    }
    assert release["jobs"]["buildtestandpushsingularity"]["strategy"]["matrix"]["image"] == ["dummy", "mpra-dragonn"]


def test_add_with_mocked_publish_sets_the_entry(tmp_path, zenodo_rdm, monkeypatch):
    """Upstream's own mocked test: the entry comes from whatever push returned."""
    index = singularity_index()
    monkeypatch.setattr(
        "kipoi_containers.singularityhandler.build_singularity_image",
        lambda **kw: tmp_path / "kipoi-docker_mpra-dragonn-slim.sif",
    )
    monkeypatch.setattr("kipoi_containers.singularityhandler.test_singularity_image", lambda **kw: None)
    monkeypatch.setattr(
        "kipoi_containers.singularityhandler.push_new_singularity_image",
        lambda **kw: {
            "new_deposition_id": "123",
            "file_id": "456",
            "url": "https://dummy.url",
            "name": "wrong_name",
            "md5": "78758738",
        },
    )
    release = {"jobs": {"buildtestandpushsingularity": {"strategy": {"matrix": {"image": ["dummy"]}}}}}
    handler = singularityhandler.SingularityHandler(
        "MPRA-DragoNN/ConvModel",
        "kipoi/kipoi-docker:mpra-dragonn",
        index,
        release,
        singularity_image_folder=tmp_path,
        zenodo_client=make_client(zenodo_rdm),
    )
    handler.add(["MPRA-DragoNN/ConvModel"], push=False)
    assert index["MPRA-DragoNN/ConvModel"] == {"url": "https://dummy.url", "name": "wrong_name", "md5": "78758738"}
    assert release["jobs"]["buildtestandpushsingularity"]["strategy"]["matrix"]["image"] == ["dummy", "mpra-dragonn"]


# ------------------------------------------------------------------ the built SIF is always removed


def _failing_tester(**kw):
    raise RuntimeError(f"kipoi test {kw['model']} failed")


@pytest.mark.parametrize("failure", ["test", "upload"])
@pytest.mark.parametrize("step", ["add", "update"])
def test_a_failure_still_removes_the_built_image(tmp_path, zenodo_rdm, helper_env, step, failure):
    client = helper_env(zenodo_rdm)
    index = {
        "Tiny": {
            "url": f"{zenodo_rdm.url}/record/6576723/files/tiny-container_latest.sif?download=1",
            "name": "tiny-container_latest",
            "md5": TINY_MD5,
        }
    }
    before = {k: dict(v) for k, v in index.items()}
    calls: list = []
    handler = singularityhandler.SingularityHandler(
        "Tiny" if step == "update" else "NewGroup",
        "kipoi/kipoi-docker:tiny-slim" if step == "update" else "kipoi/kipoi-docker:newgroup",
        index,
        {},
        singularity_image_folder=tmp_path,
        zenodo_client=client,
        build_image=_builder(SIF_DIR / "busybox_1.34.1.sif", calls),
        test_image=_failing_tester if failure == "test" else (lambda **kw: None),
    )
    if failure == "upload":
        zenodo_rdm.inject(400, method="PUT", path_prefix="/api/files/")
    from kipoi_containers.errors import ZenodoError

    expected = RuntimeError if failure == "test" else ZenodoError
    with pytest.raises(expected):
        getattr(handler, step)(["Tiny/a"], push=True)
    assert len(calls) == 1
    assert list(tmp_path.iterdir()) == []  # the multi-GB SIF did not stay behind
    assert index == before


def test_add_removes_the_built_image_after_publishing(tmp_path, zenodo_rdm, helper_env):
    client = helper_env(zenodo_rdm)
    index: dict = {}
    handler = singularityhandler.SingularityHandler(
        "NewGroup",
        "kipoi/kipoi-docker:newgroup",
        index,
        {},
        singularity_image_folder=tmp_path,
        zenodo_client=client,
        build_image=_builder(SIF_DIR / "busybox_1.34.1.sif", []),
        test_image=lambda **kw: None,
    )
    handler.add(["NewGroup"], push=True)
    assert index["NewGroup"]["md5"] == BUSYBOX_MD5
    assert list(tmp_path.iterdir()) == []


def test_handler_passes_its_index_so_shared_images_are_recognised(tmp_path, zenodo_rdm, helper_env):
    """An image serving two top-level groups is a shared environment, whatever its name:
    the handler gives the helper its index, and the record gets the shared-environment text."""
    client = helper_env(zenodo_rdm)
    name = "kipoi-docker_sharedpy3torch-slim"
    zenodo_rdm.seed_published(9000001, title="old", files=[(f"{name}.sif", (TINY_MD5, 1))])
    entry = {"url": f"{zenodo_rdm.url}/record/9000001/files/{name}.sif?download=1", "name": name, "md5": TINY_MD5}
    index = {"GroupA": dict(entry), "GroupB/model": dict(entry)}
    handler = singularityhandler.SingularityHandler(
        "GroupA",
        "kipoi/kipoi-docker:sharedpy3torch-slim",
        index,
        {},
        singularity_image_folder=tmp_path,
        zenodo_client=client,
        build_image=_builder(SIF_DIR / "busybox_1.34.1.sif", []),
        test_image=lambda **kw: None,
    )
    handler.update(["GroupA"], push=True)
    record = int(index["GroupA"]["url"].split("/")[4])
    dep = zenodo_rdm.deposition(record)
    assert dep["title"] == "sharedpy3torch singularity container"
    assert "envfiles/sharedpy3torch.yml" in dep["metadata"]["description"]


def test_replacements_with_upstreams_exact_signature_still_work(tmp_path, zenodo_rdm, monkeypatch):
    """A monkeypatched publisher without ``model_group_to_singularity_dict`` is called
    without it."""
    seen: list = []

    def push_new_singularity_image(
        zenodo_client, singularity_image_folder, singularity_dict, model_group, file_to_upload="", path="", push=False
    ):
        seen.append(model_group)
        return {"url": "https://dummy.url", "name": "n", "md5": "m"}

    monkeypatch.setattr("kipoi_containers.singularityhandler.push_new_singularity_image", push_new_singularity_image)
    index: dict = {}
    handler = singularityhandler.SingularityHandler(
        "NewGroup",
        "kipoi/kipoi-docker:newgroup",
        index,
        {},
        singularity_image_folder=tmp_path,
        zenodo_client=make_client(zenodo_rdm),
        build_image=_builder(SIF_DIR / "busybox_1.34.1.sif", []),
        test_image=lambda **kw: None,
    )
    handler.add([], push=False)
    assert seen == ["NewGroup"] and index["NewGroup"] == {"url": "https://dummy.url", "name": "n", "md5": "m"}
