"""Regression tests of the hardening issue: what a new user hit on the earlier code.

- Ctrl-C stops a blocking engine call within a fraction of a second (and its cleanup runs);
- a server that accepts and never answers times out (``KIPOI_HTTP_TIMEOUT``), naming the URL;
- a child made by ``fork`` can use the engine;
- ``write_json`` refuses self-referencing objects like ``json.dump``;
- floats are written as Python writes them;
- hostile index entries and revisions never reach the filesystem or the network;
- upstream names keep upstream's values and call forms.
"""

from __future__ import annotations

import asyncio
import json
import math
import multiprocessing
import os
import random
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import kipoi_containers
from kipoi_containers import _engine, helper
from kipoi_containers.errors import GitHubError, IndexFormatError, ZenodoError, ZooError

from .conftest import CONTAINER_INFO, REPO
from .docker_fixtures import (
    TinyZoo,
    cancel_once_its_container_exists,
    model_test_containers,
    sleepy_zoo,
    wait_until_removed,
)

TEMPLATES = REPO / "tests" / "data" / "dockerfiles"


# ----------------------------------------------------------------------------- helpers


class StallServer:
    """Accepts TCP connections and never answers (reads and discards what is sent)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.connections: list[socket.socket] = []
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections.append(conn)

    def close(self) -> None:
        self._stop = True
        self._thread.join(timeout=2)
        for c in self.connections:
            c.close()
        self.sock.close()


@pytest.fixture
def stall() -> Iterator[StallServer]:
    server = StallServer()
    yield server
    server.close()


def run_interrupted(script: str, env: dict, ready: callable | None = None, timeout: float = 120) -> dict:
    """Runs ``script`` in a child Python, sends it SIGINT once ``ready()`` is true (or after
    the child prints READY), and returns what the child printed as JSON on its last line
    plus ``signal_to_exit`` (seconds from SIGINT to the child's exit)."""
    child = subprocess.Popen(
        [sys.executable, "-c", script],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        if ready is None:
            line = child.stdout.readline()
            assert line.strip() == "READY", (
                f"child said {line!r}; stderr: {child.stderr.read() if child.stderr else ''}"
            )
        else:
            deadline = time.monotonic() + timeout
            while not ready():
                assert child.poll() is None, f"child ended early: {child.communicate()}"
                assert time.monotonic() < deadline, "the child never got ready"
                time.sleep(0.1)
        time.sleep(0.3)  # let the blocking call settle
        sent = time.monotonic()
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=60)
        elapsed = time.monotonic() - sent
    finally:
        if child.poll() is None:
            child.kill()
    lines = [line for line in out.splitlines() if line.strip()]
    assert lines, f"no output; stderr:\n{err}"
    result = json.loads(lines[-1])
    result["signal_to_exit"] = elapsed
    result["stderr"] = err
    return result


# ----------------------------------------------------------------------------- Ctrl-C


def test_ctrl_c_stops_a_plan_against_a_stalled_github_server(stall: StallServer, tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import json, sys, time
        import kipoi_containers
        print("READY", flush=True)
        start = time.monotonic()
        try:
            kipoi_containers.plan(zoo="github:o/r", from_commit="abcdef1",
                                  container_info={str(CONTAINER_INFO)!r}, github_api_url={stall.url!r})
            print(json.dumps({{"outcome": "returned"}}))
        except KeyboardInterrupt:
            print(json.dumps({{"outcome": "KeyboardInterrupt", "ran": time.monotonic() - start}}))
        """
    )
    result = run_interrupted(script, {"KIPOI_HTTP_TIMEOUT": "120"})
    assert result["outcome"] == "KeyboardInterrupt", result["stderr"]
    assert stall.connections, "the plan never reached the server"
    # The issue asks for ~0.2 s; the child also needs to print and exit.
    assert result["signal_to_exit"] < 1.5, result


def test_ctrl_c_during_a_model_test_removes_its_container(base_image: str, tmp_path: Path) -> None:
    zoo = sleepy_zoo(tmp_path / "zoo")
    script = textwrap.dedent(
        f"""
        import json, time
        from kipoi_containers import _engine
        try:
            _engine.test_model({base_image!r}, "TinySleepy", zoo_dir={str(zoo)!r})
            print(json.dumps({{"outcome": "returned"}}))
        except KeyboardInterrupt:
            print(json.dumps({{"outcome": "KeyboardInterrupt"}}))
        """
    )
    seen: list[str] = []

    def ready() -> bool:  # its own container (this zoo mounted), not another session's
        seen[:] = model_test_containers(zoo)
        return bool(seen)

    result = run_interrupted(script, {}, ready=ready)
    assert result["outcome"] == "KeyboardInterrupt", result["stderr"]
    assert result["signal_to_exit"] < 5, result  # includes removing the container
    for cid in seen:
        gone = subprocess.run(["docker", "inspect", cid], capture_output=True)
        assert gone.returncode != 0, f"test container {cid} was left behind"


def test_cancelling_an_awaitable_removes_its_container(base_image: str, tmp_path: Path) -> None:
    # Cancelled once its container exists: a cancel before that would leave none trivially.
    zoo = sleepy_zoo(tmp_path / "zoo")
    seen = asyncio.run(
        cancel_once_its_container_exists(
            lambda: _engine.test_model_async(base_image, "TinySleepy", zoo_dir=str(zoo)), zoo
        )
    )
    wait_until_removed(seen, zoo)


def test_awaitables_deliver_results_and_errors(docker_engine: None) -> None:
    async def main() -> None:
        with pytest.raises(kipoi_containers.errors.ImageNotFoundError):
            await _engine.test_model_async("kipoi-containers-test/no-such-image:nope", "TinyLinear")

    asyncio.run(main())


# ----------------------------------------------------------------------------- timeouts

# Test-only credential: deliberately not shaped like a real token, so no scanner mistakes it.
STALL_TOKEN = "not-a-real-token-stalled-github"


def test_a_stalled_github_server_times_out_naming_the_url(stall: StallServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KIPOI_HTTP_TIMEOUT", "0.5")
    monkeypatch.setenv("GITHUB_PAT", STALL_TOKEN)
    start = time.monotonic()
    with pytest.raises(GitHubError) as err:
        kipoi_containers.plan(
            zoo="github:o/r", from_commit="abcdef1", container_info=CONTAINER_INFO, github_api_url=stall.url
        )
    elapsed = time.monotonic() - start
    text = str(err.value)
    assert "timed out" in text and "KIPOI_HTTP_TIMEOUT" in text, text
    assert f"{stall.url}/repos/o/r/commits/abcdef1" in text, text
    assert "attempt" in text and STALL_TOKEN not in text
    assert elapsed < 20, f"bounded attempts: {elapsed:.1f}s"


def test_a_stalled_zenodo_server_times_out_naming_the_url(stall: StallServer, monkeypatch: pytest.MonkeyPatch) -> None:
    from kipoi_containers.zenodoclient import Client

    monkeypatch.setenv("KIPOI_HTTP_TIMEOUT", "0.5")
    client = Client(base_url=stall.url, access_token="zenodo-secret-token", max_retries=1, initial_backoff=0.05)
    start = time.monotonic()
    with pytest.raises(ZenodoError) as err:
        client.get_deposition(7)
    text = str(err.value)
    assert "timed out" in text and f"{stall.url}/api/deposit/depositions/7" in text, text
    assert "got no answer after 2 attempt(s)" in text, text
    assert "zenodo-secret-token" not in text
    assert time.monotonic() - start < 10


def test_a_bad_timeout_setting_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    from kipoi_containers.zenodoclient import Client

    monkeypatch.setenv("KIPOI_HTTP_TIMEOUT", "soon")
    with pytest.raises(ZenodoError, match=r"KIPOI_HTTP_TIMEOUT.*soon"):
        Client(base_url="http://127.0.0.1:9")


# ----------------------------------------------------------------------------- fork


def _git_repo(path: Path) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@x",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@x",
    }
    path.mkdir()
    subprocess.run(["git", "init", "-q", "-b", "master", str(path)], check=True)
    (path / "README.md").write_text("x\n")
    subprocess.run(["git", "-C", str(path), "add", "."], check=True)
    subprocess.run(["git", "-C", str(path), "commit", "-q", "-m", "x"], check=True, env=env)
    return subprocess.run(
        ["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()


def _resolve_in_child(zoo: str, queue: multiprocessing.Queue[str]) -> None:
    queue.put(_engine.resolve_revision(zoo))


def test_a_forked_child_can_use_the_engine(tmp_path: Path) -> None:
    sha = _git_repo(tmp_path / "repo")
    assert _engine.resolve_revision(str(tmp_path / "repo")) == sha  # the parent's runtime exists now
    ctx = multiprocessing.get_context("fork")
    queue: multiprocessing.Queue[str] = ctx.Queue()
    child = ctx.Process(target=_resolve_in_child, args=(str(tmp_path / "repo"), queue))
    child.start()
    child.join(timeout=60)
    hung = child.is_alive()
    if hung:
        child.kill()
    assert not hung, "the forked child hung on the engine"
    assert child.exitcode == 0
    assert queue.get(timeout=5) == sha


# ----------------------------------------------------------------------------- JSON


def test_write_json_refuses_a_self_referencing_object(tmp_path: Path) -> None:
    d: dict = {"a": 1}
    d["self"] = d
    with pytest.raises(ValueError, match="Circular reference detected"):
        helper.write_json(d, tmp_path / "x.json")
    lst: list = []
    lst.append({"x": lst})
    with pytest.raises(ValueError, match="Circular reference detected"):
        helper.write_json({"l": lst}, tmp_path / "x.json")
    deep: dict = {}
    node = deep
    for _ in range(5000):
        node["n"] = {}
        node = node["n"]
    with pytest.raises(ValueError, match="nested"):
        helper.write_json(deep, tmp_path / "x.json")
    assert not (tmp_path / "x.json").exists()
    shared = [1, 2]
    helper.write_json({"a": shared, "b": shared}, tmp_path / "x.json")  # shared, not circular
    assert json.loads((tmp_path / "x.json").read_text()) == {"a": [1, 2], "b": [1, 2]}


def test_floats_are_written_as_python_writes_them() -> None:
    rng = random.Random(7)
    values = [0.0, -0.0, 1e-07, 1e16, 1.5e300, 5e-324, 0.1, 1e-05, 0.0001, 123456789012345678.0, 1e15]
    for _ in range(3000):
        values.append(rng.uniform(-1, 1) * 10 ** rng.randint(-320, 308))
        values.append(float(rng.randint(-(10**18), 10**18)))
    for v in values:
        if math.isfinite(v):
            assert _engine.dumps_indent4(v) == json.dumps(v, indent=4), repr(v)
    doc = {"x": values[:50], "y": {"z": 2.5e-8}}
    assert _engine.dumps_indent4(doc) == json.dumps(doc, indent=4)
    with pytest.raises(ValueError):
        _engine.dumps_indent4(float("nan"))


# ----------------------------------------------------------------------------- hostile input


def test_a_sif_name_with_a_path_is_refused_at_load(tmp_path: Path) -> None:
    target = tmp_path / "model-to-singularity.json"
    target.write_text(
        json.dumps(
            {
                "DeepMEL": {
                    "url": "https://zenodo.org/record/1/files/x.sif?download=1",
                    "name": "../../../tmp/evil",
                    "md5": "0" * 32,
                }
            },
            indent=4,
        )
    )
    with pytest.raises(IndexFormatError, match="DeepMEL") as err:
        helper.populate_json(target)
    assert "name" in str(err.value) or "path" in str(err.value)
    ci = tmp_path / "ci"
    ci.mkdir()
    for name in ("model-to-docker.json", "docker-to-model.json"):
        (ci / name).write_text((CONTAINER_INFO / name).read_text())
    (ci / "model-to-singularity.json").write_text(target.read_text())
    with pytest.raises(IndexFormatError):
        kipoi_containers.Index.load(str(ci))
    with pytest.raises(IndexFormatError):
        helper.write_json(json.loads(target.read_text()), tmp_path / "out" / "model-to-singularity.json")


@pytest.mark.parametrize("rev", ["../../../../user", "master/../../x", "-n", "HEAD~1", "a b"])
def test_a_hostile_revision_never_reaches_github(rev: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from .emulators.github import GitHubEmulator

    token = "not-a-real-token-hostile-revision"
    _git_repo(tmp_path / "zoo")
    monkeypatch.setenv("GITHUB_PAT", token)
    with GitHubEmulator({"kipoi/models": str(tmp_path / "zoo")}, token=token) as gh:
        with pytest.raises(ZooError, match="invalid revision"):
            kipoi_containers.plan(
                zoo="github:kipoi/models", from_commit=rev, container_info=CONTAINER_INFO, github_api_url=gh.url
            )
        with pytest.raises(ZooError, match="invalid revision"):
            _engine.resolve_revision("github:kipoi/models", rev, github_api_url=gh.url)
        paths = [entry["path"] for entry in gh.requests_log]
        assert not any(p.rstrip("/").endswith("/user") or ".." in p for p in paths), paths


def test_a_hostile_revision_is_refused_for_a_local_zoo(tmp_path: Path) -> None:
    _git_repo(tmp_path / "zoo")
    with pytest.raises(ZooError, match="invalid revision"):
        _engine.resolve_revision(str(tmp_path / "zoo"), "--output=/tmp/x")


# ----------------------------------------------------------------------------- upstream names


def test_upstream_constants_have_upstream_values(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code = textwrap.dedent(
        """
        import json
        from pathlib import Path
        from kipoi_containers import updateoradd as u
        print(json.dumps({k: str(getattr(u, k)) for k in (
            "DOCKER_TO_MODEL_JSON", "MODEL_GROUP_TO_DOCKER_JSON", "MODEL_GROUP_TO_SINGULARITY_JSON",
            "TEST_IMAGES_WORKFLOW", "RELEASE_WORKFLOW")}))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    values = json.loads(out)
    cwd = Path.cwd()
    assert values == {
        "DOCKER_TO_MODEL_JSON": str(cwd / "container-info" / "docker-to-model.json"),
        "MODEL_GROUP_TO_DOCKER_JSON": "model-to-docker.json",
        "MODEL_GROUP_TO_SINGULARITY_JSON": "model-to-singularity.json",
        "TEST_IMAGES_WORKFLOW": str(cwd / ".github" / "workflows" / "test-images.yml"),
        "RELEASE_WORKFLOW": str(cwd / ".github" / "workflows" / "release-workflow.yml"),
    }


pytest_plugins = ["pytester"]


def test_an_upstream_style_suite_reads_the_index_at_import_and_calls_by_keyword(pytester: pytest.Pytester) -> None:
    """The shape of upstream's test-containers/test_containers_from_command_line.py: the
    index read at class definition through ``DOCKER_TO_MODEL_JSON`` (relative to the working
    directory), and the fixture called with ``model_name=``/``image_name=``."""
    import shutil

    shutil.copytree(CONTAINER_INFO, pytester.path / "container-info")
    pytester.makeconftest(
        textwrap.dedent(
            """
            calls = []

            def pytest_configure(config):
                import kipoi_containers.dockerhelper as dh

                def fake(image_name, model_name, **kwargs):
                    calls.append((image_name, model_name))
                dh.test_docker_image = fake
            """
        )
    )
    pytester.makepyfile(
        test_upstream_shape=textwrap.dedent(
            """
            from kipoi_containers.updateoradd import DOCKER_TO_MODEL_JSON
            from kipoi_containers.helper import populate_json, one_model_per_modelgroup

            class TestContainers:
                docker_to_model_dict = populate_json(DOCKER_TO_MODEL_JSON)

                def test_images(self, test_docker_image):
                    image = "kipoi/kipoi-docker:sharedpy3keras2tf2"
                    for model in one_model_per_modelgroup(self.docker_to_model_dict[image])[:2]:
                        test_docker_image(model_name=model, image_name=image)
                    import conftest
                    assert conftest.calls == [(image, "Basset"), (image, "HAL")]
            """
        )
    )
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=1)


def test_docker_adder_builds_full_and_slim_and_tests_against_a_zoo_directory(
    base_image: str, tiny_zoo: TinyZoo, registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kipoi_containers.dockeradder import DockerAdder

    monkeypatch.setenv("KIPOI_DOCKER_REPO", f"{registry.host}/kipoi/kipoi-docker")
    monkeypatch.setenv("DOCKER_USERNAME", registry.user)
    monkeypatch.setenv("DOCKER_PASSWORD", registry.password)
    monkeypatch.delenv("KIPOI_MODEL_REPO", raising=False)
    m2d: dict = {}
    d2m: dict = {}
    # The zoo is given only as upstream gave it (kipoi_model_repo): the tests must run
    # against that checkout (offline), not `--source=kipoi` (which needs GitHub).
    adder = DockerAdder(
        "TinySub",
        str(tiny_zoo.path),
        shared_images=[],
        dockerfiles_dir=tmp_path,
        template_dir=TEMPLATES,
        base_image=base_image,
    )
    adder.add(m2d, d2m)
    assert adder.image_name == "kipoi/kipoi-docker:tinysub" and adder.slim_image == "kipoi/kipoi-docker:tinysub-slim"
    assert (tmp_path / "Dockerfile.tinysub").is_file() and (tmp_path / "Dockerfile.tinysub-slim").is_file()
    assert m2d == {"TinySub": "kipoi/kipoi-docker:tinysub"}
    assert d2m == {"kipoi/kipoi-docker:tinysub": ["TinySub/one", "TinySub/two"]}
    escaped = registry.password.replace("\\", "\\\\").replace('"', '\\"')
    listed = subprocess.run(
        ["curl", "-sf", "-K", "-", f"{registry.url}/v2/kipoi/kipoi-docker/tags/list"],
        input=f'user = "{registry.user}:{escaped}"\n',
        capture_output=True,
        text=True,
    )
    assert listed.returncode == 0, listed.stderr
    assert {"tinysub", "tinysub-slim"} <= set(json.loads(listed.stdout)["tags"])
    for image in ("kipoi/kipoi-docker:tinysub", "kipoi/kipoi-docker:tinysub-slim"):
        subprocess.run(["docker", "rmi", "-f", image], capture_output=True)


def test_registry_reader_sees_labels_and_digest_without_pulling(base_image: str, registry, tmp_path: Path) -> None:
    """The sync's skip rule reads the pushed image's labels from the registry (basic auth
    challenge of a real docker-registry); a missing tag is None; pull brings it back."""
    from kipoi_containers.errors import DockerAuthError

    path, _text, recipe = _engine.render_dockerfile(
        "TinyLinear", "regtest", output_dir=tmp_path, template_dir=TEMPLATES, base_image=base_image
    )
    local = "kipoi-containers-test/regtest:one"
    _engine.build_image(path, local, labels={"org.kipoi-containers.content": "c0ffee"}, model_group="TinyLinear")
    repo = f"{registry.host}/kipoi-test/regtest"
    ref, digest = _engine.push_image(
        local, repository=repo, tag="one", username=registry.user, password=registry.password
    )
    found = _engine.registry_image(f"{repo}:one", username=registry.user, password=registry.password)
    assert found is not None
    assert found[0] == digest
    assert found[1]["org.kipoi-containers.content"] == "c0ffee"
    assert found[1]["org.kipoi-containers.recipe"] == recipe
    assert _engine.registry_image(f"{repo}:nope", username=registry.user, password=registry.password) is None
    with pytest.raises(kipoi_containers.errors.DockerError, match=r"401.*DOCKER_USERNAME"):
        _engine.registry_image(f"{repo}:one", username=registry.user, password="wrong")
    subprocess.run(["docker", "rmi", "-f", local, ref], capture_output=True)
    image_id = _engine.pull_image(f"{repo}@{digest}", username=registry.user, password=registry.password)
    assert image_id.startswith("sha256:")
    with pytest.raises(DockerAuthError):
        _engine.pull_image(f"{repo}:one", username=registry.user, password="wrong")
    subprocess.run(["docker", "rmi", "-f", f"{repo}@{digest}"], capture_output=True)
