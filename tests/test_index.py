"""The index files through the public Python API: round trip, lookups, errors, atomicity."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

import kipoi_containers
from kipoi_containers import Index, IndexFormatError, IndexIOError, KipoiContainersError, helper

from .conftest import CONTAINER_INFO, INDEX_FILES
from .requirements import require


def test_repository_index_is_the_real_one(shared_dir: Path) -> None:
    for name in INDEX_FILES:
        real = shared_dir / "fixtures" / "container-info" / name
        assert (CONTAINER_INFO / name).read_bytes() == real.read_bytes()
    assert (CONTAINER_INFO.parent / "kipoi-model-repo-hash").read_text().strip() == (
        shared_dir / "fixtures" / "container-info" / "kipoi-model-repo-hash"
    ).read_text().strip()


@pytest.mark.parametrize("name", INDEX_FILES)
def test_populate_then_write_changes_zero_bytes(name: str, tmp_path: Path) -> None:
    original = (CONTAINER_INFO / name).read_bytes()
    data = helper.populate_json(CONTAINER_INFO / name)
    assert data == json.loads(original)
    assert list(data) == list(json.loads(original))  # key order kept
    out = tmp_path / name
    helper.write_json(data, out)
    assert out.read_bytes() == original


def test_index_load_save_changes_zero_bytes(tmp_path: Path) -> None:
    Index.load(CONTAINER_INFO).save(tmp_path)
    for name in INDEX_FILES:
        assert (tmp_path / name).read_bytes() == (CONTAINER_INFO / name).read_bytes(), name


def test_write_json_matches_python_json_dump(tmp_path: Path) -> None:
    data = {"é": ["ü", '\n\t"\\'], "x": {}, "y": [], "n": {"a": 1, "b": 2.5, "c": None, "d": True}}
    helper.write_json(data, tmp_path / "other.json")
    assert (tmp_path / "other.json").read_text() == json.dumps(data, indent=4)
    assert helper.populate_json(tmp_path / "other.json") == data


def test_every_real_key_resolves_to_its_image_and_sif() -> None:
    index = Index.load(CONTAINER_INFO)
    m2d = json.loads((CONTAINER_INFO / "model-to-docker.json").read_text())
    m2s = json.loads((CONTAINER_INFO / "model-to-singularity.json").read_text())
    d2m = json.loads((CONTAINER_INFO / "docker-to-model.json").read_text())
    assert len(m2d) == 40
    for key, image in m2d.items():
        assert index.image_for_model(key) == image
        assert index.singularity_for_model(key) == m2s[key]
        assert index.models_for_image(image) == d2m[image]
        assert index.models_for_image(image + "-slim") == d2m[image]
    assert index.consistency_problems() == []


def test_models_resolve_through_their_group_prefix() -> None:
    index = Index.load(CONTAINER_INFO)
    assert index.image_for_model("MMSplice/mtsplice") == "kipoi/kipoi-docker:mmsplice-mtsplice"
    assert index.image_for_model("MMSplice/deltaLogitPSI") == "kipoi/kipoi-docker:mmsplice"
    assert index.key_for_model("DeepBind/Homo_sapiens/TF/D00328.018_ChIP-seq_CTCF") == "DeepBind"
    assert index.image_for_model("APARENT/veff") == "kipoi/kipoi-docker:aparent-veff"
    assert index.image_for_model("NotAGroup/x") is None
    assert index.image_for_model("Basse") is None  # a prefix of a key is not a match
    # Every model listed for testing in an image resolves back to that image.
    for image, models in index.docker_to_model.items():
        for model in models:
            assert index.image_for_model(model) == image, model
    # Shared environments are derived from the index: images whose keys span several
    # top-level groups. mmsplice serves four MMSplice keys: MMSplice's own image.
    assert set(index.shared_images()) == {
        "kipoi/kipoi-docker:sharedpy3keras2tf1",
        "kipoi/kipoi-docker:sharedpy3keras2tf2",
        "kipoi/kipoi-docker:sharedpy3keras1.2",
    }
    assert index.is_shared("kipoi/kipoi-docker:sharedpy3keras2tf2-slim")
    assert not index.is_shared("kipoi/kipoi-docker:mmsplice")


def _write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_truncated_json_raises_with_location(tmp_path: Path) -> None:
    text = (CONTAINER_INFO / "model-to-singularity.json").read_text()[:500]
    p = _write(tmp_path, "model-to-singularity.json", text)
    with pytest.raises(IndexFormatError) as info:
        helper.populate_json(p)
    err = info.value
    assert str(err).startswith("model-to-singularity.json: invalid JSON")
    assert err.file == "model-to-singularity.json"
    assert err.line == text.count("\n") + 1
    assert f"line {err.line}" in str(err)
    assert isinstance(err, ValueError) and isinstance(err, KipoiContainersError)


def test_wrong_typed_value_is_named(tmp_path: Path) -> None:
    p = _write(tmp_path, "model-to-docker.json", '{\n    "Basset": "kipoi/kipoi-docker:x",\n    "HAL": 3\n}')
    with pytest.raises(IndexFormatError, match=r"model-to-docker.json: entry 'HAL': invalid type: integer `3`") as info:
        helper.populate_json(p)
    assert info.value.line == 3


def test_bad_md5_is_named(tmp_path: Path) -> None:
    data = json.loads((CONTAINER_INFO / "model-to-singularity.json").read_text())
    data["DeepMEL"]["md5"] = "not-an-md5"
    p = _write(tmp_path, "model-to-singularity.json", json.dumps(data, indent=4))
    with pytest.raises(
        IndexFormatError,
        match=r"^model-to-singularity.json: entry 'DeepMEL': md5 must be 32 hex digits, got `not-an-md5` "
        r"\(line \d+, column \d+\)$",
    ):
        helper.populate_json(p)


def test_docker_to_model_shape_errors(tmp_path: Path) -> None:
    p = _write(tmp_path, "docker-to-model.json", '{"kipoi/kipoi-docker:a": "Basset"}')
    with pytest.raises(IndexFormatError, match="entry 'kipoi/kipoi-docker:a': invalid type: string"):
        helper.populate_json(p)
    p = _write(tmp_path, "docker-to-model.json", '{"no-tag": ["Basset"]}')
    with pytest.raises(IndexFormatError, match="image `no-tag` must look like `repository:tag`"):
        helper.populate_json(p)


def test_index_load_reports_the_broken_file(container_info_copy: Path) -> None:
    (container_info_copy / "docker-to-model.json").write_text("[]")
    with pytest.raises(IndexFormatError, match=r"^docker-to-model\.json: invalid type: sequence"):
        Index.load(container_info_copy)


def test_write_json_refuses_a_malformed_index(container_info_copy: Path) -> None:
    target = container_info_copy / "model-to-singularity.json"
    before = target.read_bytes()
    data = helper.populate_json(target)
    data["Basset"]["md5"] = "xyz"
    with pytest.raises(IndexFormatError, match="entry 'Basset': md5 must be 32 hex digits"):
        helper.write_json(data, target)
    assert target.read_bytes() == before


def _make_readonly(directory: Path) -> None:
    """Make ``directory`` unwritable, also for root (chattr +i); when it cannot, the test
    fails under CI and skips elsewhere (tests.requirements.require)."""
    directory.chmod(0o555)
    probe = directory / ".probe"
    try:
        probe.write_text("x")
    except OSError:
        return
    probe.unlink()
    # Root writes through any mode bits: only the immutable attribute stops it. That needs
    # chattr (e2fsprogs), CAP_LINUX_IMMUTABLE and a filesystem that has the attribute.
    if shutil.which("chattr") is None:
        problem: str | None = "could not be made: `chattr` is not on PATH"
    else:
        out = subprocess.run(["chattr", "+i", str(directory)], capture_output=True, text=True)
        problem = None if out.returncode == 0 else f"could not be made: {out.stderr.strip() or 'chattr +i failed'}"
    if problem:
        directory.chmod(0o755)
        require(
            "a directory that root cannot write",
            problem,
            "install e2fsprogs and keep pytest's --basetemp on ext4/xfs/btrfs with CAP_LINUX_IMMUTABLE"
            ", or run the tests as non-root",
        )


def _undo_readonly(directory: Path) -> None:
    if shutil.which("chattr"):
        subprocess.run(["chattr", "-i", str(directory)], check=False)
    directory.chmod(0o755)


def test_save_into_readonly_directory_leaves_file_intact(container_info_copy: Path) -> None:
    target = container_info_copy / "model-to-docker.json"
    before = target.read_bytes()
    data = helper.populate_json(target)
    data["NewGroup"] = "kipoi/kipoi-docker:newgroup"
    _make_readonly(container_info_copy)
    try:
        with pytest.raises(IndexIOError) as info:
            helper.write_json(data, target)
        assert "model-to-docker.json" in str(info.value)
        assert isinstance(info.value, OSError)
        with pytest.raises(IndexIOError):
            Index.load(container_info_copy).save(container_info_copy)
    finally:
        _undo_readonly(container_info_copy)
    assert target.read_bytes() == before
    assert sorted(os.listdir(container_info_copy)) == sorted(INDEX_FILES)  # no temporary left


def test_upstream_helper_names() -> None:
    models = ["SiSp/a", "xSiSp/b", "SiSp/c", "Basset", "MMSplice/mtsplice", "MMSplice/x"]
    assert helper.one_model_per_modelgroup(models) == ["SiSp/a", "xSiSp/b", "Basset", "MMSplice/mtsplice"]
    assert helper.total_number_of_unique_containers(["a:1", "b:1", "a:1"]) == 2
    assert helper.logger is kipoi_containers.logger
    assert helper.logger.name == "kipoi_containers"


WORKFLOW_YAML = """\
# Test the images (edited by tools: keep this comment)
name: test-images
on:
  push:
    branches: ['main']
jobs:
  test:
    strategy:
      matrix:
        image: ["kipoi/kipoi-docker:deepmel", 'kipoi/kipoi-docker:basset']  # the list upstream edited
"""


def test_populate_yaml_then_write_yaml_is_a_round_trip(tmp_path: Path) -> None:
    source = tmp_path / "test-images.yml"
    source.write_text(WORKFLOW_YAML)
    data = helper.populate_yaml(source)
    assert data["jobs"]["test"]["strategy"]["matrix"]["image"] == [
        "kipoi/kipoi-docker:deepmel",
        "kipoi/kipoi-docker:basset",
    ]
    assert list(data) == ["name", "on", "jobs"]  # key order kept
    out = tmp_path / "out.yml"
    helper.write_yaml(data, out)
    assert out.read_text() == WORKFLOW_YAML  # comments and quoting kept, byte for byte

    data["jobs"]["test"]["strategy"]["matrix"]["image"].append("kipoi/kipoi-docker:new")
    helper.write_yaml(data, out)
    text = out.read_text()
    assert text.startswith("# Test the images (edited by tools: keep this comment)\n")
    assert "'kipoi/kipoi-docker:basset'" in text and "# the list upstream edited" in text
    assert helper.populate_yaml(out)["jobs"]["test"]["strategy"]["matrix"]["image"][-1] == "kipoi/kipoi-docker:new"


def test_write_yaml_is_atomic(tmp_path: Path) -> None:
    target = tmp_path / "workflow.yml"
    target.write_text(WORKFLOW_YAML)
    with pytest.raises(kipoi_containers.errors.FileIOError) as info:
        helper.write_yaml({"a": 1}, tmp_path / "missing" / "workflow.yml")
    assert "workflow.yml" in str(info.value) and isinstance(info.value, OSError)
    # an object YAML cannot represent fails before the file is touched
    from ruamel.yaml.representer import RepresenterError

    with pytest.raises(RepresenterError):
        helper.write_yaml({"a": object()}, target)
    assert target.read_text() == WORKFLOW_YAML
    assert sorted(os.listdir(tmp_path)) == ["workflow.yml"]


def test_engine_logs_reach_the_kipoi_containers_logger(caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    with caplog.at_level("DEBUG", logger="kipoi_containers"):
        Index.load(CONTAINER_INFO).save(tmp_path)
    records = [r for r in caplog.records if r.name.startswith("kipoi_containers.")]
    assert any("loaded index" in r.getMessage() and "40 keys" in r.getMessage() for r in records), records
    assert any("saved index" in r.getMessage() for r in records), records
