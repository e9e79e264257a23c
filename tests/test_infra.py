"""The Docker-path test infrastructure, on the real Docker Engine: the locally built Kipoi base
image, the tiny real Kipoi zoo run by real ``kipoi test`` offline with the zoo mounted read-only,
and a real local registry with htpasswd auth driven by the docker CLI.

Fixtures come from tests/docker_fixtures.py."""

from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

# The fixtures (base_image, registry, tiny_zoo, ...) come from tests/conftest.py.
from tests.docker_fixtures import (
    BROKEN_MESSAGE,
    BROKEN_MODEL,
    SCRIPTS,
    TINY_MODELS,
    ZOO_MOUNT,
    Registry,
    TinyZoo,
    kipoi_test_command,
)

SUCCESS = "Successfully ran test_predict"


def run(cmd: list[str], *, env: dict | None = None, input: str | None = None, timeout: float = 300):
    return subprocess.run(cmd, capture_output=True, text=True, env=env, input=input, timeout=timeout)


def docker(*args: str, env: dict | None = None, input: str | None = None, check: bool = True, timeout: float = 300):
    out = run(["docker", *args], env=env, input=input, timeout=timeout)
    if check and out.returncode != 0:
        pytest.fail(f"docker {' '.join(args)} exited {out.returncode}:\n{out.stdout}\n{out.stderr}", pytrace=False)
    return out


def assert_zoo_untouched(zoo: TinyZoo) -> None:
    assert zoo.git("status", "--porcelain", "--ignored", "--untracked-files=all") == ""
    assert zoo.git("rev-parse", "HEAD") == zoo.commit


# --------------------------------------------------------------------------------------------
# base image


def test_base_image_has_real_kipoi(base_image: str) -> None:
    repo, tag = base_image.rsplit(":", 1)
    assert repo == "kipoi-containers-test/kipoi-base-env"
    assert len(tag) == 12 and all(c in "0123456789abcdef" for c in tag)
    labels = json.loads(docker("image", "inspect", "-f", "{{json .Config.Labels}}", base_image).stdout)
    assert labels["org.kipoi-containers.recipe"] == tag
    assert labels["org.kipoi-containers.created-by"] == "kipoi_containers"
    latest = docker("image", "inspect", "-f", "{{.Id}}", f"{repo}:latest").stdout
    assert latest == docker("image", "inspect", "-f", "{{.Id}}", base_image).stdout

    out = docker("run", "--rm", "--network", "none", base_image, "kipoi", "--help")
    assert "test" in out.stdout + out.stderr
    out = docker("run", "--rm", "--network", "none", base_image, "python", "-c",
                 "import kipoi, sys; print(kipoi.__version__, sys.prefix)")
    version, prefix = out.stdout.split()
    assert version == labels["org.kipoi-containers.kipoi-version"]
    assert prefix == "/opt/kipoi"


def test_base_image_script_is_cached_by_recipe(base_image: str) -> None:
    started = time.monotonic()
    out = run(["bash", str(SCRIPTS / "base-image.sh")])
    elapsed = time.monotonic() - started
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == base_image
    assert elapsed < 15, f"a cached base image should be a no-op, took {elapsed:.1f}s"
    assert run(["bash", str(SCRIPTS / "base-image.sh"), "--ref"]).stdout.strip() == base_image


# --------------------------------------------------------------------------------------------
# the tiny zoo under real `kipoi test`, offline, zoo read-only


def test_kipoi_sees_every_tiny_model(base_image: str, tiny_zoo: TinyZoo) -> None:
    out = docker("run", "--rm", "--network", "none", "-v", f"{tiny_zoo.path}:{ZOO_MOUNT}:ro", "-w", ZOO_MOUNT,
                 base_image, "python", "-c",
                 "import kipoi; print('\\n'.join(sorted(kipoi.get_source('dir').list_models().model)))")
    assert out.stdout.split() == sorted([*TINY_MODELS, BROKEN_MODEL])


@pytest.mark.parametrize("model", TINY_MODELS)
def test_tiny_model_passes_kipoi_test(base_image: str, tiny_zoo: TinyZoo, model: str) -> None:
    started = time.monotonic()
    out = run(kipoi_test_command(base_image, tiny_zoo.path, model))
    elapsed = time.monotonic() - started
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-3000:]
    assert SUCCESS in log
    assert elapsed < 30, f"kipoi test {model} took {elapsed:.1f}s"
    assert_zoo_untouched(tiny_zoo)


def test_broken_model_fails_kipoi_test_with_its_message(base_image: str, tiny_zoo: TinyZoo) -> None:
    out = run(kipoi_test_command(base_image, tiny_zoo.path, BROKEN_MODEL))
    log = out.stdout + out.stderr
    assert out.returncode != 0
    assert f"RuntimeError: {BROKEN_MESSAGE}" in log
    assert SUCCESS not in log
    assert_zoo_untouched(tiny_zoo)


def test_template_rows_reach_the_model(base_image: str, tiny_zoo: TinyZoo) -> None:
    """TinyMulti/<row> renders model-template.yaml with its models.tsv row: scale differs."""
    script = (
        "set -e; for m in a b c; do kipoi test TinyMulti/$m --source=dir -o /tmp/$m.h5 >/dev/null 2>&1; done; "
        "python -c \"import h5py, json; "
        "print(json.dumps([h5py.File('/tmp/%s.h5' % m)['preds'][:].ravel().tolist() for m in 'abc']))\""
    )
    out = docker("run", "--rm", "--network", "none", "-v", f"{tiny_zoo.path}:{ZOO_MOUNT}:ro", "-w", ZOO_MOUNT,
                 base_image, "sh", "-c", script)
    preds = json.loads(out.stdout.strip().splitlines()[-1])
    rows = [4.0 * i for i in range(6)]  # the dataloader's row i is four times i; the model sums * scale
    assert preds == [[r * s for r in rows] for s in (1.0, 2.5, -0.5)]
    assert_zoo_untouched(tiny_zoo)


def test_missing_model_fails(base_image: str, tiny_zoo: TinyZoo) -> None:
    out = run(kipoi_test_command(base_image, tiny_zoo.path, "TinyMulti/nope"))
    assert out.returncode != 0
    assert SUCCESS not in out.stdout + out.stderr


# --------------------------------------------------------------------------------------------
# registry


def _get(url: str, user: str | None = None, password: str | None = None):
    req = urllib.request.Request(url)
    if user is not None:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        req.add_header("Authorization", f"Basic {token}")
    req.add_header("Accept", "application/vnd.docker.distribution.manifest.v2+json")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(req, timeout=10) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def test_registry_answers_with_basic_auth(registry: Registry) -> None:
    status, headers, _ = _get(f"{registry.url}/v2/")
    assert status == 401
    assert headers.get("Www-Authenticate", "").startswith("Basic realm=")
    assert _get(f"{registry.url}/v2/", registry.user, registry.password)[0] == 200
    assert _get(f"{registry.url}/v2/", registry.user, registry.password + "x")[0] == 401
    for encoded in (
        base64.b64encode(f"{registry.user}:{registry.password}".encode()).decode(),
        base64.b64encode(json.dumps({"username": registry.user, "password": registry.password}).encode()).decode(),
    ):
        assert "+" in encoded and "/" in encoded


def test_registry_script_start_is_idempotent(registry: Registry) -> None:
    env = {
        **os.environ,
        "KIPOI_REGISTRY_DIR": str(registry.dir),
        "KIPOI_REGISTRY_PORT": registry.host.rsplit(":", 1)[1],
        "KIPOI_REGISTRY_USER": registry.user,
        "KIPOI_REGISTRY_PASSWORD": registry.password,
    }
    pid_before = (registry.dir / "registry.pid").read_text()
    out = run(["bash", str(SCRIPTS / "registry.sh"), "start"], env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == registry.host
    assert "already running" in out.stderr
    assert (registry.dir / "registry.pid").read_text() == pid_before
    status = run(["bash", str(SCRIPTS / "registry.sh"), "status"], env=env)
    assert status.returncode == 0 and status.stdout.startswith(f"running {registry.host}")


def test_registry_script_needs_a_password(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "KIPOI_REGISTRY_PASSWORD"}
    out = run(["bash", str(SCRIPTS / "registry.sh"), "start"], env={**env, "KIPOI_REGISTRY_DIR": str(tmp_path)})
    assert out.returncode != 0
    assert "KIPOI_REGISTRY_PASSWORD is not set" in out.stderr
    status = run(["bash", str(SCRIPTS / "registry.sh"), "status"], env={**env, "KIPOI_REGISTRY_DIR": str(tmp_path)})
    assert status.returncode == 3 and status.stdout.strip() == "stopped"


def test_docker_login_with_wrong_password_fails(registry: Registry, docker_config: Path) -> None:
    env = {**os.environ, "DOCKER_CONFIG": str(docker_config)}
    for user, password in ((registry.user, registry.password + "x"), (registry.user, registry.password[:-1]),
                           ("nobody", registry.password)):
        out = docker("login", registry.host, "-u", user, "--password-stdin", input=password, env=env, check=False)
        assert out.returncode != 0
        assert "401" in out.stderr or "unauthorized" in out.stderr.lower()
    config = docker_config / "config.json"
    assert not config.exists() or registry.host not in json.loads(config.read_text()).get("auths", {})


def test_push_pull_roundtrip_with_tricky_password(registry: Registry, base_image: str, docker_config: Path) -> None:
    env = {**os.environ, "DOCKER_CONFIG": str(docker_config)}
    nonce = secrets.token_hex(8)
    ref = registry.ref("kipoi-containers-test/roundtrip", nonce)
    container = f"kipoi-roundtrip-{nonce}"
    try:
        # an image of its own (base image + one layer), so `rmi` really removes it and `pull` fetches
        docker("run", "--name", container, "--network", "none", base_image, "sh", "-c", f"echo {nonce} > /nonce")
        docker("commit", container, ref)

        out = docker("push", ref, env=env, check=False)
        assert out.returncode != 0, "push without login must fail"

        out = docker("login", registry.host, "-u", registry.user, "--password-stdin", input=registry.password, env=env)
        auth = json.loads((docker_config / "config.json").read_text())["auths"][registry.host]["auth"]
        assert base64.b64decode(auth).decode() == f"{registry.user}:{registry.password}"

        image_id = docker("image", "inspect", "-f", "{{.Id}}", ref).stdout.strip()
        push = docker("push", ref, env=env, timeout=600)
        digest = next(w for w in push.stdout.split() if w.startswith("sha256:"))

        status, headers, _ = _get(f"{registry.url}/v2/kipoi-containers-test/roundtrip/manifests/{nonce}",
                                  registry.user, registry.password)
        assert status == 200 and headers.get("Docker-Content-Digest") == digest
        assert _get(f"{registry.url}/v2/kipoi-containers-test/roundtrip/manifests/{nonce}")[0] == 401

        docker("rm", "-f", container, check=False)
        docker("rmi", ref)
        assert docker("image", "inspect", ref, check=False).returncode != 0

        pull = docker("pull", ref, env=env, timeout=600)
        assert digest in pull.stdout
        assert docker("image", "inspect", "-f", "{{.Id}}", ref).stdout.strip() == image_id
        out = docker("run", "--rm", "--network", "none", ref, "cat", "/nonce")
        assert out.stdout.strip() == nonce

        docker("logout", registry.host, env=env)
        assert registry.host not in json.loads((docker_config / "config.json").read_text()).get("auths", {})
    finally:
        docker("rm", "-f", container, check=False)
        docker("rmi", ref, check=False)
