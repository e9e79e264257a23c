"""``update_all_singularity``: upstream's click command, driven as upstream's own test does
(click's CliRunner, the module-level names replaced), and what it passes on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from kipoi_containers import update_all_singularity_images

from .conftest import CONTAINER_INFO


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_cli_incorrect_use(runner: CliRunner) -> None:
    result = runner.invoke(update_all_singularity_images.run_update, [])
    assert "Error: Missing argument 'DOCKER_IMAGE'" in result.output
    assert result.exit_code == 2


M2D = {
    "MMSplice/modularPredictions": "kipoi/kipoi-docker:mmsplice",
    "MMSplice/deltaLogitPSI": "kipoi/kipoi-docker:mmsplice",
    "MMSplice/mtsplice": "kipoi/kipoi-docker:mmsplice-mtsplice",
    "DeepMEL": "kipoi/kipoi-docker:deepmel",
}


def _entry(name: str, record: int, md5: str) -> dict[str, str]:
    return {"url": f"https://zenodo.org/record/{record}/files/{name}.sif?download=1", "name": name, "md5": md5}


@pytest.fixture
def patched(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, Any]:
    """Upstream's test's replacements; records what they receive."""
    seen: dict[str, Any] = {"written": None, "built": [], "tested": []}
    m2s = {
        "MMSplice/modularPredictions": _entry("kipoi-docker_mmsplice-slim", 5643976, "2" * 32),
        "MMSplice/deltaLogitPSI": _entry("kipoi-docker_mmsplice-slim", 5643976, "2" * 32),
        "MMSplice/mtsplice": _entry("kipoi-docker_mmsplice-mtsplice-slim", 5643967, "1" * 32),
        "DeepMEL": _entry("kipoi-docker_deepmel-slim", 5643863, "c" * 32),
    }

    def populate(name: str, repo: Any) -> dict[str, Any]:
        return {"model-to-docker.json": dict(M2D), "model-to-singularity.json": {k: dict(v) for k, v in m2s.items()}}[
            name
        ]

    def write(d: dict[str, Any], name: str, repo: Any) -> None:
        seen["written"] = (name, d)

    def build(**kwargs: Any) -> str:
        seen["built"].append(kwargs["name_of_docker_image"])
        return ""

    def test(**kwargs: Any) -> None:
        seen["tested"].append(kwargs["model"])

    def update(**kwargs: Any) -> dict[str, str]:
        return {
            "url": "https://dummy.url/record/9/files/x.sif?download=1",
            "name": "kipoi-docker_mmsplice-slim",
            "md5": "9" * 32,
        }

    module = "kipoi_containers.update_all_singularity_images"
    monkeypatch.setattr(f"{module}.singularityhandler.build_singularity_image", build)
    monkeypatch.setattr(f"{module}.singularityhandler.test_singularity_image", test)
    monkeypatch.setattr(f"{module}.singularityhandler.update_existing_singularity_container", update)
    monkeypatch.setattr(f"{module}.singularityhandler.check_integrity", lambda *a, **k: False)
    monkeypatch.setattr(f"{module}.singularityhandler.cleanup", lambda *a, **k: None)
    monkeypatch.setattr(f"{module}.populate_json_from_kipoi", populate)
    monkeypatch.setattr(f"{module}.write_json_to_kipoi", write)
    (tmp_path / "container-info").mkdir()
    (tmp_path / "container-info" / "docker-to-model.json").write_text(
        (CONTAINER_INFO / "docker-to-model.json").read_text()
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SINGULARITY_PULL_FOLDER", str(tmp_path))
    return seen


def test_cli_correct_use(runner: CliRunner, patched: dict[str, Any]) -> None:
    """Upstream's case: the mtsplice image, one key."""
    result = runner.invoke(update_all_singularity_images.run_update, ["kipoi/kipoi-docker:mmsplice-mtsplice-slim"])
    assert result.exit_code == 0, result.output
    assert patched["built"] == ["kipoi/kipoi-docker:mmsplice-mtsplice-slim"]
    name, written = patched["written"]
    assert name == "model-to-singularity.json"
    assert written["MMSplice/mtsplice"]["md5"] == "9" * 32


def test_every_key_of_the_image_gets_the_new_entry(runner: CliRunner, patched: dict[str, Any]) -> None:
    result = runner.invoke(update_all_singularity_images.run_update, ["kipoi/kipoi-docker:mmsplice-slim"])
    assert result.exit_code == 0, result.output
    _, written = patched["written"]
    for key in ("MMSplice/modularPredictions", "MMSplice/deltaLogitPSI"):
        assert written[key]["md5"] == "9" * 32, key
    assert written["MMSplice/mtsplice"]["md5"] == "1" * 32, "another image's entry is untouched"
    assert written["DeepMEL"]["md5"] == "c" * 32
    tested: list[str] = patched["tested"]
    assert tested and all(m.startswith("MMSplice/") for m in tested)
    assert len({m.split("/")[0] for m in tested}) == len(tested), "one model per group"


def test_an_image_that_serves_nothing_is_named(runner: CliRunner, patched: dict[str, Any]) -> None:
    result = runner.invoke(update_all_singularity_images.run_update, ["kipoi/kipoi-docker:nope-slim"])
    assert result.exit_code == 1
    assert "`kipoi/kipoi-docker:nope-slim` serves no model" in result.output
    assert patched["written"] is None
