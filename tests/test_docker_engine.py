"""The Docker engine path on the real Docker Engine and a real registry: build, test in
containers (real `kipoi test` of tiny real models, offline), push, pull back by digest,
errors, cleanup, the upstream-named helpers and the test-containers suites."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from kipoi_containers import _engine, dockerhelper
from kipoi_containers.dockeradder import DockerAdder
from kipoi_containers.dockerupdater import DockerUpdater
from kipoi_containers.errors import (
    DockerAuthError,
    DockerBuildError,
    DockerUnreachableError,
    ImageNotFoundError,
    ModelTestError,
)
from kipoi_containers.helper import write_json

from .conftest import REPO
from .docker_fixtures import (
    Registry,
    TinyZoo,
    cancel_once_its_container_exists,
    sleepy_zoo,
    wait_until_removed,
)

TEMPLATES = REPO / "tests" / "data" / "dockerfiles"
SHARED = "kipoi/kipoi-docker:tinyshared"
RUN_BY = "org.kipoi-containers.run-by=kipoi_containers"


def curl_quoted(value: str) -> str:
    """``value`` inside a double-quoted curl config string (backslash and quote escaped)."""
    return value.replace("\\", "\\\\").replace('"', '\\"')


def docker(*args: str, env: dict[str, str] | None = None, check: bool = True, input: str | None = None) -> str:
    out = subprocess.run(["docker", *args], capture_output=True, text=True, env=env, input=input)
    if check and out.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed: {out.stderr}")
    return out.stdout.strip()


@pytest.fixture(scope="module")
def shared_image(base_image: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """kipoi/kipoi-docker:tinyshared rendered from the test templates and built."""
    out = tmp_path_factory.mktemp("dockerfiles")
    path, _text, recipe = _engine.render_dockerfile(
        "TinyLinear", "tinyshared", output_dir=out, template_dir=TEMPLATES, base_image=base_image
    )
    _engine.build_image(path, SHARED, labels={"org.kipoi-containers.recipe": recipe})
    yield SHARED
    docker("rmi", "-f", SHARED, check=False)


@pytest.fixture(scope="module")
def tiny_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An index for the tiny zoo: TinyLinear and TinyMulti share an image, TinySub and
    TinyBroken have their own."""
    d = tmp_path_factory.mktemp("container-info")
    m2d = {
        "TinyLinear": SHARED,
        "TinyMulti": SHARED,
        "TinySub": "kipoi/kipoi-docker:tinysub",
        "TinyBroken": "kipoi/kipoi-docker:tinybroken",
    }
    d2m = {
        SHARED: ["TinyLinear", "TinyMulti/a", "TinyMulti/b", "TinyMulti/c"],
        "kipoi/kipoi-docker:tinysub": ["TinySub/one", "TinySub/two"],
        "kipoi/kipoi-docker:tinybroken": ["TinyBroken"],
    }
    sif = {
        k: {
            "url": f"https://zenodo.org/record/1/files/{v.split(':')[1]}.sif?download=1",
            "name": v.split(":")[1],
            "md5": "0" * 32,
        }
        for k, v in m2d.items()
    }
    write_json(m2d, d / "model-to-docker.json")
    write_json(d2m, d / "docker-to-model.json")
    write_json(sif, d / "model-to-singularity.json")
    return d


def test_unreachable_daemon_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    with pytest.raises(
        DockerUnreachableError,
        match=r"^Docker daemon not reachable at unix:///nonexistent/docker.sock: is it running\?",
    ):
        _engine.docker_ping()
    with pytest.raises(ConnectionError):
        dockerhelper.test_docker_image("x:y", "TinyLinear")


def test_build_test_push_and_pull_back_by_digest(
    shared_image: str, tiny_zoo: TinyZoo, registry: Registry, docker_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    labels = json.loads(docker("image", "inspect", "--format", "{{json .Config.Labels}}", shared_image))
    assert labels["org.kipoi-containers.created-by"] == "kipoi_containers"
    assert len(labels["org.kipoi-containers.recipe"]) == 64

    results = _engine.test_models(shared_image, ["TinyLinear", "TinyMulti/a", "TinyMulti/c"], zoo_dir=tiny_zoo.path)
    assert [(r.model, r.passed) for r in results] == [
        ("TinyLinear", True),
        ("TinyMulti/a", True),
        ("TinyMulti/c", True),
    ]
    assert all("Successfully ran test_predict" in r.log_tail for r in results)

    monkeypatch.setenv("DOCKER_USERNAME", registry.user)
    monkeypatch.setenv("DOCKER_PASSWORD", registry.password)  # its base64 holds '+' and '/'
    repo = f"{registry.host}/kipoi/kipoi-docker"
    reference, digest = dockerhelper.push_docker_image("tinyshared", repository=repo)
    assert reference == f"{repo}:tinyshared" and digest.startswith("sha256:")

    # Pull back by digest from a clean state and run a model in the pulled image.
    env = {**os.environ, "DOCKER_CONFIG": str(docker_config)}
    docker("rmi", reference)
    docker("login", registry.host, "-u", registry.user, "--password-stdin", env=env, input=registry.password)
    pinned = f"{repo}@{digest}"
    docker("pull", pinned, env=env)
    result = _engine.test_model(pinned, "TinyMulti/b", zoo_dir=tiny_zoo.path, check=True)
    assert result.passed
    docker("rmi", pinned, check=False)


def test_wrong_registry_password_raises_and_records_nothing(
    shared_image: str,
    tiny_zoo: TinyZoo,
    registry: Registry,
    tmp_path: Path,
    base_image: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    wrong = "not-the-password-+/"
    with pytest.raises(DockerAuthError) as info:
        _engine.push_image(
            shared_image, repository=f"{registry.host}/kipoi/kipoi-docker", username=registry.user, password=wrong
        )
    assert wrong not in str(info.value) and registry.password not in str(info.value)
    assert "DOCKER_USERNAME" in str(info.value)

    # A whole add: built and tested, but the push fails, so the index dicts stay untouched.
    monkeypatch.setenv("KIPOI_DOCKER_REPO", f"{registry.host}/kipoi/kipoi-docker")
    monkeypatch.setenv("DOCKER_USERNAME", registry.user)
    monkeypatch.setenv("DOCKER_PASSWORD", wrong)
    m2d: dict[str, str] = {"TinyLinear": SHARED}
    d2m = {SHARED: ["TinyLinear"]}
    adder = DockerAdder(
        "TinySub",
        str(tiny_zoo.path),
        shared_images=[],
        dockerfiles_dir=tmp_path,
        template_dir=TEMPLATES,
        base_image=base_image,
        zoo=tiny_zoo.path,
    )
    with pytest.raises(DockerAuthError):
        adder.add(m2d, d2m)
    assert m2d == {"TinyLinear": SHARED} and d2m == {SHARED: ["TinyLinear"]}
    assert (tmp_path / "Dockerfile.tinysub").is_file()  # rendered like upstream
    docker("rmi", "-f", "kipoi/kipoi-docker:tinysub", check=False)


def test_adder_uses_a_shared_image_when_it_runs_the_group(shared_image: str, tiny_zoo: TinyZoo, tmp_path: Path) -> None:
    m2d: dict[str, str] = {}
    d2m: dict[str, list] = {}
    adder = DockerAdder(
        "TinyMulti", str(tiny_zoo.path), shared_images=[shared_image], dockerfiles_dir=tmp_path, zoo=tiny_zoo.path
    )
    adder.add(m2d, d2m)
    assert adder.list_of_models == ["TinyMulti/a", "TinyMulti/b", "TinyMulti/c"]
    assert m2d == {"TinyMulti": shared_image}
    assert d2m == {shared_image: ["TinyMulti/a", "TinyMulti/b", "TinyMulti/c"]}
    assert not list(tmp_path.iterdir())  # nothing built


def test_updater_rebuilds_tests_and_pushes(
    base_image: str, tiny_zoo: TinyZoo, registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KIPOI_DOCKER_REPO", f"{registry.host}/kipoi/kipoi-docker")
    monkeypatch.setenv("DOCKER_USERNAME", registry.user)
    monkeypatch.setenv("DOCKER_PASSWORD", registry.password)
    image = "kipoi/kipoi-docker:tinysub-slim"
    DockerUpdater(
        "TinySub", image, dockerfiles_dir=tmp_path, template_dir=TEMPLATES, base_image=base_image, zoo=tiny_zoo.path
    ).update(["TinySub/one", "TinySub/two"])
    dockerfile = (tmp_path / "Dockerfile.tinysub-slim").read_text()
    assert dockerfile.startswith("# Test slim template")
    labels = json.loads(docker("image", "inspect", "--format", "{{json .Config.Labels}}", image))
    assert labels["org.kipoi-containers.model-group"] == "TinySub"
    assert labels["org.kipoi-containers.zoo-commit"] == tiny_zoo.commit
    assert labels["org.kipoi-containers.recipe"] == hashlib.sha256(dockerfile.encode()).hexdigest()
    tags = subprocess.run(
        ["curl", "-sf", "-K", "-", f"{registry.url}/v2/kipoi/kipoi-docker/tags/list"],
        input=f'user = "{registry.user}:{curl_quoted(registry.password)}"\n',
        capture_output=True,
        text=True,
    )
    assert tags.returncode == 0, tags.stderr
    assert "tinysub-slim" in json.loads(tags.stdout)["tags"]
    docker("rmi", "-f", image, f"{registry.host}/kipoi/kipoi-docker:tinysub-slim", check=False)


def test_failing_run_step_is_a_build_error_naming_the_step(base_image: str, tmp_path: Path) -> None:
    dockerfile = tmp_path / "Dockerfile.bad"
    dockerfile.write_text(f"FROM {base_image}\nRUN echo preparing && echo kaboom-marker >&2 && exit 3\n")
    with pytest.raises(DockerBuildError) as info:
        dockerhelper.build_docker_image(dockerfile, "kipoi-containers-test/bad:1")
    message = str(info.value)
    assert re.search(
        r"building `kipoi-containers-test/bad:1` failed at step `Step 2/\d+ : RUN echo preparing", message
    ), message
    assert "returned a non-zero code: 3" in message
    assert "\nkaboom-marker\n" in message  # the last build log lines, without terminal escapes


def test_broken_model_raises_with_kipois_own_error(shared_image: str, tiny_zoo: TinyZoo) -> None:
    with pytest.raises(ModelTestError) as info:
        dockerhelper.test_docker_image(shared_image, "TinyBroken", zoo=tiny_zoo.path)
    assert "TinyBroken: deliberately broken model" in str(info.value)
    assert "model `TinyBroken` failed its test in `kipoi/kipoi-docker:tinyshared` (exit code 1)" in str(info.value)
    assert dockerhelper.test_docker_image_without_exception(shared_image, "TinyBroken", zoo=tiny_zoo.path) is False
    assert dockerhelper.test_docker_image_without_exception("kipoi-containers-test/none:x", "TinyLinear") is False
    with pytest.raises(ImageNotFoundError):
        _engine.test_model("kipoi-containers-test/none:x", "TinyLinear")
    # No test container is left behind.
    assert docker("ps", "-aq", "--filter", "label=org.kipoi-containers.purpose=model-test") == ""


def test_bad_timeout_is_a_value_error(monkeypatch: pytest.MonkeyPatch) -> None:
    # An argument check: refused before any engine is reached (there is none at this address).
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    for bad in (-1.0, float("nan")):
        with pytest.raises(ValueError, match="timeout must be a non-negative number of seconds"):
            _engine.test_model(SHARED, "TinyLinear", timeout=bad)


def test_timeout_kills_the_test_and_removes_the_container(shared_image: str, tiny_zoo: TinyZoo) -> None:
    result = _engine.test_model(shared_image, "TinyLinear", zoo_dir=tiny_zoo.path, timeout=0.05)
    assert not result.passed and result.exit_code == -1
    assert "exceeded its time limit" in result.log_tail
    assert docker("ps", "-aq", "--filter", "label=org.kipoi-containers.purpose=model-test") == ""


def test_cancelled_async_test_leaves_no_container(shared_image: str, tmp_path: Path) -> None:
    # Cancelled only once its container exists (a cancel before that leaves none trivially),
    # while the model still runs (its prediction sleeps for minutes).
    zoo = sleepy_zoo(tmp_path / "zoo")
    seen = asyncio.run(
        cancel_once_its_container_exists(lambda: _engine.test_model_async(shared_image, "TinySleepy", zoo_dir=zoo), zoo)
    )
    wait_until_removed(seen, zoo)  # the guard removes it in the background


def test_export_is_a_complete_docker_save_tar(shared_image: str, tmp_path: Path) -> None:
    import tarfile

    out = tmp_path / "image.tar"
    written = _engine.export_image(shared_image, out)
    assert written == out.stat().st_size > 1_000_000
    with tarfile.open(out) as tar:
        names = set(tar.getnames())
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
    assert manifest[0]["RepoTags"] == [shared_image]
    assert manifest[0]["Layers"] and set(manifest[0]["Layers"]) <= names
    assert sorted(p.name for p in tmp_path.iterdir()) == ["image.tar"]  # no temporary left
    with pytest.raises(ImageNotFoundError):
        _engine.export_image("kipoi-containers-test/none:x", tmp_path / "none.tar")
    assert not (tmp_path / "none.tar").exists()


def test_concurrent_tests_keep_order_and_async_variant(shared_image: str, tiny_zoo: TinyZoo) -> None:
    models = ["TinyMulti/c", "TinyBroken", "TinyLinear"]
    results = _engine.test_models(shared_image, models, zoo_dir=tiny_zoo.path, concurrency=2)
    assert [(r.model, r.passed) for r in results] == [
        ("TinyMulti/c", True),
        ("TinyBroken", False),
        ("TinyLinear", True),
    ]

    async def run() -> list:
        return await asyncio.gather(
            _engine.test_model_async(shared_image, "TinySub/one", zoo_dir=tiny_zoo.path),
            _engine.test_model_async(shared_image, "TinySub/two", zoo_dir=tiny_zoo.path),
        )

    assert [r.passed for r in asyncio.run(run())] == [True, True]


def test_cleanup_only_touches_our_objects(shared_image: str) -> None:
    # Someone else's container from one of our images inherits the image's labels and
    # must survive; a container we ran (run-by label) must go.
    foreign = docker("create", "--name", "someone-elses-container", shared_image, "true")
    ours = docker("create", "--label", RUN_BY, shared_image, "true")
    try:
        removed = dockerhelper.cleanup(images=True)
        assert ours in removed["containers"]
        assert foreign not in removed["containers"]
        assert docker("ps", "-aq", "--no-trunc", "--filter", f"id={foreign}") == foreign
        assert docker("ps", "-aq", "--no-trunc", "--filter", f"id={ours}") == ""
    finally:
        docker("rm", "-f", foreign, ours, check=False)


def test_test_containers_suites_run_against_local_images(
    shared_image: str, tiny_zoo: TinyZoo, tiny_index: Path
) -> None:
    common = [f"--kipoi-zoo={tiny_zoo.path}", f"--kipoi-container-info={tiny_index}", "-q", "-p", "no:cacheprovider"]
    def run(*a: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "pytest", *a, *common], cwd=REPO, capture_output=True, text=True)

    # The Docker test of that suite only (its -slim and SIF tests: tests/test_sif.py).
    docker_only = ["-k", "test_model_runs_in_its_image"]
    out = run("test-containers/test_models_from_command_line.py", "--model=TinyMulti/a,TinyLinear", *docker_only)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "2 passed" in out.stdout
    out = run("test-containers/test_containers_from_command_line.py", f"--image={shared_image}")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "2 passed" in out.stdout  # shared image: one model per group (TinyLinear, TinyMulti/a)
    out = run(
        "test-containers/test_containers_from_command_line.py", f"--image={shared_image}", "--modelgroup=TinyMulti"
    )
    assert "3 passed" in out.stdout, out.stdout
    out = run(
        "test-containers/test_models_from_command_line.py",
        "--model=TinyBroken",
        f"--image={shared_image}",
        *docker_only,
    )
    assert out.returncode == 1 and "TinyBroken: deliberately broken model" in out.stdout
