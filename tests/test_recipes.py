"""Recipes of every image, ``recipes check``, the golden recipes and the CI matrices, through
the public Python face (``python -m kipoi_containers recipes`` / ``matrix`` and ``_engine``)."""

from __future__ import annotations

import filecmp
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kipoi_containers import _engine, matrix, recipes
from kipoi_containers.dockerupdater import DockerUpdater
from kipoi_containers.errors import RecipeError, SharedImageError

from .conftest import CONTAINER_INFO, REPO

GOLDEN = REPO / "tests" / "golden" / "recipes"
ENVFILES = REPO / "dockerfiles" / "envfiles"
BASE = "kipoi/kipoi-docker:kipoi-base-env"
REGENERATE = "python -m kipoi_containers recipes check --write tests/golden/recipes"


@pytest.fixture(autouse=True)
def _default_base_image(monkeypatch: pytest.MonkeyPatch) -> None:
    """Recipes name the base image; a developer's KIPOI_BASE_IMAGE must not change them."""
    monkeypatch.delenv("KIPOI_BASE_IMAGE", raising=False)
    monkeypatch.delenv("KIPOI_CONTAINER_INFO", raising=False)


def index_images() -> list[str]:
    return list(json.loads((CONTAINER_INFO / "docker-to-model.json").read_text()))


def files_under(root: Path) -> dict[str, Path]:
    return {p.relative_to(root).as_posix(): p for p in sorted(root.rglob("*")) if p.is_file()}


def run_main(main: object, argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)  # type: ignore[operator]
    out, err = capsys.readouterr()
    return code, out, err


# --- golden recipes ------------------------------------------------------------------


def test_every_recipe_of_the_real_index_matches_its_golden_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_dir = tmp_path / "recipes"
    argv = ["check", "--container-info", str(CONTAINER_INFO), "--write", str(out_dir)]
    code, out, err = run_main(recipes.main, argv, capsys)
    assert code == 0, err
    assert "39 images, each with a recipe" in out
    fresh, golden = files_under(out_dir), files_under(GOLDEN)
    assert sorted(fresh) == sorted(golden), f"the set of recipes changed: regenerate with `{REGENERATE}`"
    changed = [name for name in fresh if not filecmp.cmp(fresh[name], golden[name], shallow=False)]
    assert not changed, f"recipes changed: {changed}; if intended, regenerate with `{REGENERATE}` and review the diff"


def test_golden_files_cover_every_image_and_its_slim_and_the_base() -> None:
    names = set(files_under(GOLDEN))
    for image in index_images():
        tag = _engine.image_tag(image)
        assert {f"Dockerfile.{tag}", f"Dockerfile.{tag}-slim"} <= names, image
    assert "Dockerfile.kipoi-base-env" in names
    # The environment files a build context needs are pinned too, equal to the packaged ones.
    for env in ENVFILES.glob("*.yml"):
        assert (GOLDEN / "envfiles" / env.name).read_bytes() == env.read_bytes()


# --- recipes check -------------------------------------------------------------------


def test_check_prints_one_line_per_image_with_its_file_hash_and_models(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_main(recipes.main, ["check", "--container-info", str(CONTAINER_INFO)], capsys)
    assert code == 0, err
    lines = out.splitlines()
    by_file = {line.split()[0]: line for line in lines[:-1]}
    assert len(by_file) == 1 + 2 * len(index_images())
    deepmel = by_file["Dockerfile.deepmel"]
    digest = deepmel.split()[1]
    assert digest == _engine.recipe_for_image("kipoi/kipoi-docker:deepmel", container_info=CONTAINER_INFO).hash
    assert "group DeepMEL: 3 models of DeepMEL" in deepmel
    assert "shared-env sharedpy3keras1.2: 87 models of DeepCpG_DNA, CpGenie, Divergent421, epidermal_basset" in (
        by_file["Dockerfile.sharedpy3keras1.2-slim"]
    )
    assert by_file["Dockerfile.kipoi-base-env"].endswith(f"base of {len(index_images())} images")


def test_check_names_an_image_without_a_recipe_and_an_unused_environment_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    envfiles = tmp_path / "envfiles"
    shutil.copytree(ENVFILES, envfiles)
    (envfiles / "sharedpy3keras2tf1.yml").rename(envfiles / "tf1-renamed.yml")
    out_dir = tmp_path / "out"
    argv = ["check", "--container-info", str(CONTAINER_INFO), "--envfiles", str(envfiles), "--write", str(out_dir)]
    code, _out, err = run_main(recipes.main, argv, capsys)
    assert code == 1
    assert "error: `kipoi/kipoi-docker:sharedpy3keras2tf1` has no recipe" in err
    assert "error: `kipoi/kipoi-docker:sharedpy3keras2tf1-slim` has no recipe" in err
    assert "expected `sharedpy3keras2tf1.yml`" in err
    assert "`envfiles/tf1-renamed.yml`" in err and "serves no image" in err
    assert "nothing written" in err
    assert not out_dir.exists()


def test_check_of_a_missing_index_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _out, err = run_main(recipes.main, ["check", "--container-info", str(tmp_path)], capsys)
    assert code == 1
    assert err.startswith("error: could not read") and "model-to-docker.json" in err


def test_show_prints_a_recipe(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["show", "kipoi/kipoi-docker:sharedpy3keras2tf2-slim", "--container-info", str(CONTAINER_INFO)]
    code, out, _err = run_main(recipes.main, argv, capsys)
    assert code == 0
    assert out == (GOLDEN / "Dockerfile.sharedpy3keras2tf2-slim").read_text()


def test_the_command_runs_as_a_module() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "kipoi_containers.recipes", "check", "--container-info", str(CONTAINER_INFO)],
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "KIPOI_BASE_IMAGE"},
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("Dockerfile.kipoi-base-env")


# --- shared images are built from their environment files only -----------------------


def test_a_group_template_over_a_shared_image_is_refused_naming_the_image(tmp_path: Path) -> None:
    image = "kipoi/kipoi-docker:sharedpy3keras2tf2"
    with pytest.raises(SharedImageError, match=r"`kipoi/kipoi-docker:sharedpy3keras2tf2` is a shared image") as info:
        _engine.render_dockerfile_for_image("Basset", image, tmp_path, container_info=CONTAINER_INFO)
    assert isinstance(info.value, RecipeError) and isinstance(info.value, ValueError)
    assert "`Basset`" in str(info.value)
    assert not list(tmp_path.iterdir()), "nothing written"
    with pytest.raises(SharedImageError, match=r"sharedpy3keras1\.2-slim"):
        _engine.render_dockerfile_for_image(
            "CpGenie", "kipoi/kipoi-docker:sharedpy3keras1.2-slim", tmp_path, container_info=CONTAINER_INFO
        )
    # An own image still renders from the group templates.
    path, text, _hash = _engine.render_dockerfile_for_image(
        "DeepMEL", "kipoi/kipoi-docker:deepmel", tmp_path, container_info=CONTAINER_INFO
    )
    assert path == tmp_path / "Dockerfile.deepmel" and "kipoi env create DeepMEL" in text


def test_the_updater_rebuilds_a_shared_image_from_its_environment_file(tmp_path: Path) -> None:
    updater = DockerUpdater(
        "Basset", "kipoi/kipoi-docker:sharedpy3keras2tf2", dockerfiles_dir=tmp_path, container_info=CONTAINER_INFO
    )
    recipe = updater.recipe()
    assert (recipe.kind, recipe.subject) == ("shared-env", "sharedpy3keras2tf2")
    assert [path for path, _ in recipe.context] == ["envfiles/sharedpy3keras2tf2.yml"]
    path = updater.dockerfile_path(rerender=True)
    assert path.read_text() == (GOLDEN / "Dockerfile.sharedpy3keras2tf2").read_text()
    assert (tmp_path / "envfiles" / "sharedpy3keras2tf2.yml").read_bytes() == (
        ENVFILES / "sharedpy3keras2tf2.yml"
    ).read_bytes()


def test_recipes_in_build_order_start_with_the_base() -> None:
    ordered = _engine.recipes_for_index(container_info=CONTAINER_INFO, build_order=True)
    assert ordered[0].image == BASE and ordered[0].kind == "base"
    seen: set[str] = set()
    names = {r.image for r in ordered}
    for r in ordered:
        for parent in r.from_images:
            if parent in names:
                assert parent in seen, f"{r.image} before {parent}"
        seen.add(r.image)


# --- matrices ------------------------------------------------------------------------


def matrix_json(argv: list[str], capsys: pytest.CaptureFixture[str]) -> dict:
    code, out, err = run_main(matrix.main, [*argv, "--container-info", str(CONTAINER_INFO)], capsys)
    assert code == 0, err
    assert out.count("\n") == 1, "one line, for $GITHUB_OUTPUT"
    return json.loads(out)


def test_test_matrix_lists_every_image_with_one_model_per_group_for_shared_ones(
    capsys: pytest.CaptureFixture[str],
) -> None:
    include = matrix_json(["--kind", "test"], capsys)["include"]
    assert [e["image"] for e in include] == index_images()
    d2m = json.loads((CONTAINER_INFO / "docker-to-model.json").read_text())
    for e in include:
        models = d2m[e["image"]]
        assert e["slim"] == e["image"] + "-slim"
        if e["kind"] == "shared-env":
            assert e["models"] == _engine.one_model_per_modelgroup(models)
            groups = [m.split("/")[0] for m in e["models"]]
            assert len(groups) == len(set(groups))
        else:
            assert e["models"] == models
    assert {e["image"] for e in include if e["kind"] == "shared-env"} == {
        "kipoi/kipoi-docker:sharedpy3keras1.2",
        "kipoi/kipoi-docker:sharedpy3keras2tf1",
        "kipoi/kipoi-docker:sharedpy3keras2tf2",
    }


def test_release_matrix_puts_the_base_first_and_each_image_after_what_it_depends_on(
    capsys: pytest.CaptureFixture[str],
) -> None:
    include = matrix_json(["--kind", "release"], capsys)["include"]
    assert include[0]["image"] == BASE and include[0]["level"] == 0 and include[0]["depends_on"] == []
    assert [e["image"] for e in include[1:]] == index_images()
    position = {e["image"]: i for i, e in enumerate(include)}
    for i, e in enumerate(include):
        assert all(position[d] < i for d in e["depends_on"]), e
    assert matrix_json(["--kind", "release", "--level", "0"], capsys)["include"] == include[:1]
    assert matrix_json(["--kind", "release", "--level", "1"], capsys)["include"] == include[1:]
    assert matrix_json(["--kind", "release", "--level", "2"], capsys)["include"] == []


def test_release_matrix_deeper_than_the_workflow_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_main(
        matrix.main, ["--kind", "release", "--max-level", "0", "--container-info", str(CONTAINER_INFO)], capsys
    )
    assert code == 1 and out == ""
    assert "`kipoi/kipoi-docker:deepmel` (level 1)" in err and "add a level to the release workflow" in err


def test_singularity_matrix_lists_the_slim_images_and_their_sif_names(capsys: pytest.CaptureFixture[str]) -> None:
    include = matrix_json(["--kind", "singularity"], capsys)["include"]
    m2s = json.loads((CONTAINER_INFO / "model-to-singularity.json").read_text())
    assert [e["image"] for e in include] == [f"{i}-slim" for i in index_images()]
    names = {entry["name"] for entry in m2s.values()}
    assert {e["sif"] for e in include} == names


def test_matrix_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        matrix.main(["--kind", "test", "--level", "0"])
    assert exit_info.value.code == 2
    assert "--kind release only" in capsys.readouterr().err


# --- a recipe's context reaches the build (real engine) ------------------------------

TEST_TEMPLATES = REPO / "tests" / "data" / "dockerfiles"


@pytest.fixture
def tiny_shared_index(tmp_path: Path) -> tuple[Path, Path]:
    """An index where `kipoi/kipoi-docker:tinyshared` runs two groups, and its env files."""
    info = tmp_path / "container-info"
    info.mkdir()
    image = "kipoi/kipoi-docker:tinyshared"
    (info / "model-to-docker.json").write_text(json.dumps({"TinyLinear": image, "TinySub": image}))
    (info / "docker-to-model.json").write_text(json.dumps({image: ["TinyLinear", "TinySub/one"]}))
    (info / "model-to-singularity.json").write_text("{}")
    envfiles = tmp_path / "envfiles"
    envfiles.mkdir()
    (envfiles / "kipoi-env.yml").write_text("name: kipoi-env\n")
    (envfiles / "tinyshared.yml").write_text("# a tiny shared environment\nname: kipoi-tinyshared\n")
    return info, envfiles


def test_a_shared_image_builds_from_its_recipe_with_the_environment_file_in_its_context(
    base_image: str, tiny_shared_index: tuple[Path, Path]
) -> None:
    info, envfiles = tiny_shared_index
    opts = {"container_info": info, "template_dir": TEST_TEMPLATES, "envfile_dir": envfiles, "base_image": base_image}
    full, slim = "kipoi/kipoi-docker:tinyshared", "kipoi/kipoi-docker:tinyshared-slim"
    try:
        ordered = [r.image for r in _engine.recipes_for_index(**opts, build_order=True)]
        assert ordered == [base_image, full, slim]
        recipe = _engine.recipe_for_image(full, **opts)
        assert recipe.kind == "shared-env" and recipe.from_images == [base_image]
        _engine.build_recipe(full, **opts, model_group="TinyLinear")
        cat = subprocess.run(
            ["docker", "run", "--rm", "--entrypoint", "cat", full, "/app/tinyshared.yml"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert cat.returncode == 0, cat.stderr
        assert cat.stdout == (envfiles / "tinyshared.yml").read_text()
        labels = json.loads(
            subprocess.run(
                ["docker", "image", "inspect", "--format", "{{json .Config.Labels}}", full],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
        assert labels["org.kipoi-containers.recipe"] == recipe.hash
        assert labels["org.kipoi-containers.model-group"] == "TinyLinear"
        # The slim image is built FROM the full one.
        _engine.build_recipe(slim, **opts)
        # A group template over the shared image is refused, whatever group asks.
        with pytest.raises(SharedImageError, match="tinyshared"):
            _engine.render_dockerfile_for_image(
                "TinySub", full, info.parent / "df", template_dir=TEST_TEMPLATES, container_info=info
            )
    finally:
        subprocess.run(["docker", "rmi", "-f", slim, full], capture_output=True)
