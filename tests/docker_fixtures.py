"""Session fixtures for tests that use the real Docker Engine.

``tests/conftest.py`` imports them, so every test module of ``tests/`` can use them by name
(another suite: ``python -m pytest -p tests.docker_fixtures ...``).

- ``base_image`` (str): the Kipoi base image reference built by ``scripts/base-image.sh``
  (``kipoi-containers-test/kipoi-base-env:<recipe hash>``); built once, then cached by the Docker
  Engine across sessions.
- ``registry`` (:class:`Registry`): a real ``docker-registry`` with htpasswd auth on 127.0.0.1 and a
  free port, started by ``scripts/registry.sh`` in a per-session state dir, with a generated
  password whose base64 forms contain ``+`` and ``/``; stopped at session end.
- ``tiny_zoo`` (:class:`TinyZoo`): a git repository (one commit) made from ``tests/data/zoo``,
  the tiny real Kipoi model zoo.
- ``docker_config`` (Path): an empty ``DOCKER_CONFIG`` dir (function scope) so ``docker login``
  never touches the user's ``~/.docker/config.json``.

Each fixture first checks what it needs (``docker info`` answers; debootstrap when the base image
is not built yet; docker-registry, htpasswd and curl; git) with :func:`tests.requirements.require`:
under CI a missing piece fails the test naming it, elsewhere the test is skipped.

:func:`kipoi_test_command` is the one offline ``docker run ... kipoi test`` invocation (zoo
mounted read-only, no network), shared by these tests and meant to be mirrored by the engine.

:func:`sleepy_zoo`, :func:`model_test_containers`, :func:`cancel_once_its_container_exists` and
:func:`wait_until_removed` let a cancellation test cancel only once its own container exists
(found by the engine's labels and the zoo it mounts) and then see that container go.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import secrets
import shutil
import socket
import string
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from .requirements import SETUP_HINT, docker_problem, missing_commands, require

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "scripts"
ZOO_DATA = REPO / "tests" / "data" / "zoo"
#: the registry binary scripts/registry.sh runs (Debian package docker-registry)
REGISTRY_BIN = "/usr/bin/docker-registry"

#: models of tests/data/zoo that pass ``kipoi test``
TINY_MODELS: tuple[str, ...] = (
    "TinyLinear",
    "TinyMulti/a",
    "TinyMulti/b",
    "TinyMulti/c",
    "TinySub/one",
    "TinySub/two",
)
#: the model whose ``kipoi test`` fails, and the message its output then carries
BROKEN_MODEL = "TinyBroken"
BROKEN_MESSAGE = "TinyBroken: deliberately broken model"
#: where the zoo is mounted inside the container
ZOO_MOUNT = "/kipoi-zoo"
#: the labels of every container the engine runs for a model test (src/docker/test.rs)
MODEL_TEST_LABELS = ("org.kipoi-containers.run-by=kipoi_containers", "org.kipoi-containers.purpose=model-test")

_GIT_ENV = {
    "GIT_AUTHOR_NAME": "Zoo Tester",
    "GIT_AUTHOR_EMAIL": "zoo@example.invalid",
    "GIT_COMMITTER_NAME": "Zoo Tester",
    "GIT_COMMITTER_EMAIL": "zoo@example.invalid",
    "GIT_AUTHOR_DATE": "2024-01-01T00:00:00Z",
    "GIT_COMMITTER_DATE": "2024-01-01T00:00:00Z",
    "GIT_CONFIG_NOSYSTEM": "1",
    "HOME": "/nonexistent",
}


# ---------------------------------------------------------------------------------------------
# helpers


def kipoi_test_command(
    image: str,
    zoo: os.PathLike,
    model: str,
    *,
    name: str | None = None,
    extra_args: Sequence[str] = (),
) -> list[str]:
    """The offline ``kipoi test`` of one model of a zoo checkout, in ``image``.

    The zoo is bind-mounted read-only at /kipoi-zoo, which is also the working directory, and
    ``--source=dir`` makes kipoi resolve ``model`` (``Group``, ``Group/sub`` or a template row
    ``Group/row``) relative to it; no network. kipoi writes nothing into the zoo for models whose
    files are all in the checkout (no ``url:`` args / examples); see docs/test-infrastructure.md.
    """
    cmd = ["docker", "run", "--rm", "--network", "none"]
    if name:
        cmd += ["--name", name]
    cmd += [
        "-v", f"{os.fspath(Path(zoo).resolve())}:{ZOO_MOUNT}:ro",
        "-w", ZOO_MOUNT,
        "-e", "PYTHONDONTWRITEBYTECODE=1",
        image,
        "kipoi", "test", model, "--source=dir", *extra_args,
    ]
    return cmd


def tricky_password(user: str = "kipoi", length: int = 24) -> str:
    """A random printable password whose standard base64 in both Docker encodings -
    ``user:password`` (config.json ``auth``) and ``{"username":..,"password":..}`` JSON
    (X-Registry-Auth) - contains ``+`` and ``/``, and which itself has shell/JSON/URL
    metacharacters."""
    alphabet = string.ascii_letters + string.digits + "+/=:@!#%&*()-_ \"'\\$`~?.,;<>[]{}|^"
    while True:
        pw = "".join(secrets.choice(alphabet) for _ in range(length))
        if pw != pw.strip() or not any(c in pw for c in "\"\\:$ "):
            continue
        encodings = (
            base64.b64encode(f"{user}:{pw}".encode()).decode(),
            base64.b64encode(json.dumps({"username": user, "password": pw}).encode()).decode(),
            base64.b64encode(json.dumps({"username": user, "password": pw}, separators=(",", ":")).encode()).decode(),
        )
        if all("+" in e and "/" in e for e in encodings):
            return pw


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_script(args: Sequence[str], env: dict[str, str] | None = None, timeout: float = 600) -> str:
    """Run a script of scripts/, return its last stdout line; fail with its stderr."""
    try:
        out = subprocess.run(
            ["bash", *map(str, args)],
            capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})},
        )
    except subprocess.TimeoutExpired as e:
        stderr = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else e.stderr or ""
        pytest.fail(f"{' '.join(map(str, args))} did not finish within {timeout:g} s:\n{stderr[-4000:]}", pytrace=False)
    if out.returncode != 0:
        pytest.fail(f"{' '.join(map(str, args))} exited {out.returncode}:\n{out.stderr[-4000:]}", pytrace=False)
    lines = out.stdout.strip().splitlines()
    if not lines:
        pytest.fail(f"{' '.join(map(str, args))} printed nothing on stdout:\n{out.stderr[-4000:]}", pytrace=False)
    return lines[-1]


def sleepy_zoo(path: Path) -> Path:
    """A zoo at ``path`` with one model, ``TinySleepy`` (TinyLinear whose prediction sleeps for
    ten minutes): its test container runs until it is stopped."""
    group = path / "TinySleepy"
    group.mkdir(parents=True)
    src = ZOO_DATA / "TinyLinear"
    for name in ("dataloader.py", "dataloader.yaml", "model.yaml"):
        (group / name).write_text((src / name).read_text())
    model = (src / "model.py").read_text()
    hook = "    def predict_on_batch(self, x):\n"
    assert hook in model, "tests/data/zoo/TinyLinear/model.py changed: update sleepy_zoo"
    (group / "model.py").write_text(model.replace(hook, hook + "        import time\n        time.sleep(600)\n"))
    return path


def model_test_containers(zoo: os.PathLike) -> list[str]:
    """Ids of the containers, running or not, that carry the engine's model-test labels and
    mount ``zoo``: one test's own, whatever else runs on the same Docker Engine."""
    filters = [arg for label in MODEL_TEST_LABELS for arg in ("--filter", f"label={label}")]
    listed = subprocess.run(
        ["docker", "ps", "-aq", "--no-trunc", *filters], capture_output=True, text=True, check=True
    ).stdout.split()
    if not listed:
        return []
    # One may be removed between the two calls: inspect then exits 1 and reports the others.
    inspected = subprocess.run(
        ["docker", "inspect", "--format", "{{.Id}} {{json .Mounts}}", *listed], capture_output=True, text=True
    ).stdout
    source = os.fspath(Path(zoo).resolve())
    found = []
    for line in inspected.splitlines():
        cid, _, mounts = line.partition(" ")
        if mounts and any(m.get("Source") == source for m in json.loads(mounts) or []):
            found.append(cid)
    return found


async def cancel_once_its_container_exists(
    start: Callable[[], Awaitable], zoo: os.PathLike, timeout: float = 120
) -> list[str]:
    """Runs the model test ``start()`` (of a model of ``zoo``) as a task, waits until a
    container of it exists (fails when none appears within ``timeout`` or the test ends
    first), cancels the task and returns the containers seen."""
    task = asyncio.ensure_future(start())
    try:
        deadline = time.monotonic() + timeout
        while True:
            seen = await asyncio.to_thread(model_test_containers, zoo)
            if seen:
                break
            if task.done():
                outcome = task.exception() or task.result()
                raise AssertionError(f"the test ended before any container of it was seen: {outcome!r}")
            assert time.monotonic() < deadline, f"no model-test container mounting {zoo} appeared within {timeout:g} s"
            await asyncio.sleep(0.05)
        assert not task.done(), "the test ended before it could be cancelled"
    finally:
        task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    else:
        raise AssertionError("the cancelled test returned a result")
    return seen


def wait_until_removed(containers: Sequence[str], zoo: os.PathLike, timeout: float = 20) -> None:
    """Fails unless ``containers`` and every other model-test container mounting ``zoo`` are
    gone within ``timeout`` (their removal may run in the background)."""
    assert containers, "no container to wait for: the test would hold trivially"
    deadline = time.monotonic() + timeout
    while True:
        left = [c for c in containers if subprocess.run(["docker", "inspect", c], capture_output=True).returncode == 0]
        left += [c for c in model_test_containers(zoo) if c not in left]
        if not left:
            return
        assert time.monotonic() < deadline, f"test container(s) {left} still exist {timeout:g} s after the cancel"
        time.sleep(0.2)


# ---------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="session")
def docker_engine() -> None:
    """The Docker Engine answers ``docker info`` (at ``DOCKER_HOST`` or the local socket)."""
    require("the Docker Engine", docker_problem(), "start it (or point DOCKER_HOST at a running one)")


@pytest.fixture(scope="session")
def base_image(docker_engine: None) -> str:
    """Reference of the Kipoi base image (built by scripts/base-image.sh once, cached by recipe)."""
    ref = _run_script([SCRIPTS / "base-image.sh", "--ref"], timeout=60)
    built = subprocess.run(["docker", "image", "inspect", ref], capture_output=True).returncode == 0
    if not built:
        require(
            f"debootstrap (to build the test base image `{ref}`)",
            missing_commands("debootstrap"),
            f"{SETUP_HINT}, i.e. apt-get install debootstrap",
        )
    return _run_script([SCRIPTS / "base-image.sh"], timeout=1200)


@dataclass(frozen=True)
class Registry:
    """A running local registry. ``host`` is ``127.0.0.1:<port>`` (the image-name prefix)."""

    host: str
    user: str
    password: str = field(repr=False)
    dir: Path

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def ref(self, repository: str, tag: str = "latest") -> str:
        """``127.0.0.1:<port>/<repository>:<tag>``"""
        return f"{self.host}/{repository}:{tag}"

    def env(self) -> dict[str, str]:
        """The credentials as the product's configuration names them."""
        return {"DOCKER_USERNAME": self.user, "DOCKER_PASSWORD": self.password}


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A real docker-registry (htpasswd auth) on 127.0.0.1, private to this session."""
    require(
        "the local registry",
        missing_commands(REGISTRY_BIN, "htpasswd", "curl"),
        f"{SETUP_HINT}, i.e. apt-get install docker-registry apache2-utils curl",
    )
    state = tmp_path_factory.mktemp("registry")
    user = "kipoi"
    password = tricky_password(user)
    env = {
        "KIPOI_REGISTRY_DIR": str(state),
        "KIPOI_REGISTRY_PORT": str(_free_port()),
        "KIPOI_REGISTRY_USER": user,
        "KIPOI_REGISTRY_PASSWORD": password,
    }
    host = _run_script([SCRIPTS / "registry.sh", "start"], env=env, timeout=300)
    try:
        yield Registry(host=host, user=user, password=password, dir=state)
    finally:
        subprocess.run(["bash", str(SCRIPTS / "registry.sh"), "stop"], env={**os.environ, **env}, capture_output=True)
        shutil.rmtree(state / "data", ignore_errors=True)  # the pushed layers (hundreds of MB)


@dataclass(frozen=True)
class TinyZoo:
    """A git checkout of tests/data/zoo with one commit."""

    path: Path
    commit: str
    models: tuple[str, ...] = TINY_MODELS
    broken: str = BROKEN_MODEL
    broken_message: str = BROKEN_MESSAGE

    def git(self, *args: str) -> str:
        out = subprocess.run(
            ["git", "-C", str(self.path), *args],
            capture_output=True, text=True, check=True, env={**os.environ, **_GIT_ENV},
        )
        return out.stdout.strip()


@pytest.fixture(scope="session")
def tiny_zoo(tmp_path_factory: pytest.TempPathFactory) -> TinyZoo:
    """tests/data/zoo as a fresh git repository (branch master, one commit)."""
    require("git", missing_commands("git"), f"{SETUP_HINT}, i.e. apt-get install git")
    path = tmp_path_factory.mktemp("tiny-zoo") / "models"
    shutil.copytree(ZOO_DATA, path, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "downloaded"))
    # readable by any container user, like a real checkout
    for p in [path, *path.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)
    path.parent.chmod(0o755)
    zoo = TinyZoo(path=path, commit="")
    zoo.git("init", "-q", "-b", "master")
    zoo.git("add", "-A")
    zoo.git("commit", "-q", "-m", "tiny kipoi zoo")
    return TinyZoo(path=path, commit=zoo.git("rev-parse", "HEAD"))


@pytest.fixture
def docker_config(docker_engine: None, tmp_path: Path) -> Path:
    """An empty DOCKER_CONFIG dir; pass ``env={**os.environ, "DOCKER_CONFIG": str(it)}``."""
    d = tmp_path / "docker-config"
    d.mkdir()
    return d
