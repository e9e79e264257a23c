"""The package ships as one abi3 wheel per platform (pyo3 feature ``abi3-py39``): the wheel
``make install`` built into ``dist/`` (and installed) is tagged ``cp39-abi3``, installs into a
fresh virtualenv with no other package, and works there without a checkout.

The wheel is ``make install``'s (so ``make test`` builds it once); when ``dist/`` has none, or
one older than the sources, it is built here with ``maturin build --release`` (reusing
``target/``, or ``$CARGO_TARGET_DIR``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

from .conftest import CONTAINER_INFO, REPO

DIST = REPO / "dist"
SOURCES = ("src", "python", "dockerfiles", "Cargo.toml", "Cargo.lock", "pyproject.toml")


def newest_source() -> float:
    newest = 0.0
    for name in SOURCES:
        path = REPO / name
        if path.is_file():
            files = [path]
        else:
            files = [p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".so"]
        newest = max([newest, *(p.stat().st_mtime for p in files)])
    return newest


def the_wheel() -> Path:
    wheels = sorted(DIST.glob("kipoi_containers-*.whl"))
    if len(wheels) == 1 and wheels[0].stat().st_mtime >= newest_source():
        return wheels[0]
    for stale in wheels:
        stale.unlink()
    build = subprocess.run(
        [sys.executable, "-m", "maturin", "build", "--release", "--out", str(DIST), "--interpreter", sys.executable],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert build.returncode == 0, build.stderr[-4000:]
    wheels = sorted(DIST.glob("kipoi_containers-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


@pytest.fixture(scope="module")
def wheel() -> Path:
    return the_wheel()


def test_the_wheel_is_abi3_for_cpython_39_and_later(wheel: Path) -> None:
    assert "-cp39-abi3-" in wheel.name, wheel.name
    with zipfile.ZipFile(wheel) as zf:
        meta = zf.read(next(n for n in zf.namelist() if n.endswith(".dist-info/WHEEL"))).decode()
        names = zf.namelist()
    tags = [line.split(": ", 1)[1] for line in meta.splitlines() if line.startswith("Tag: ")]
    assert tags and all(t.startswith("cp39-abi3-") for t in tags), tags
    # One extension module, named for the stable ABI (no cpython-3XX tag in its file name).
    engines = [n for n in names if n.startswith("kipoi_containers/_engine") and n.endswith(".so")]
    assert engines == ["kipoi_containers/_engine.abi3.so"], engines
    assert "kipoi_containers/_engine.pyi" in names and "kipoi_containers/py.typed" in names


@pytest.mark.timeout(1800)
def test_the_wheel_works_in_a_fresh_virtualenv(wheel: Path, tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "KIPOI_", "VIRTUAL_ENV"))}
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-index", "--no-deps", str(wheel)],
        capture_output=True,
        text=True,
        env=clean,
        timeout=300,
    )
    assert install.returncode == 0, install.stderr
    # Run from outside the checkout: nothing of the source tree can be imported by accident.
    script = (
        "import json, sys, kipoi_containers\n"
        "from kipoi_containers import _engine\n"
        "assert kipoi_containers.__file__.startswith(sys.prefix), kipoi_containers.__file__\n"
        "r = _engine.recipe_for_image('kipoi/kipoi-docker:sharedpy3keras2tf1', container_info=sys.argv[1])\n"
        "print(json.dumps({'version': kipoi_containers.__version__, 'kind': r.kind,\n"
        "                  'group': _engine.image_for_group('MMSplice/mtsplice')}))\n"
    )
    run = subprocess.run(
        [str(python), "-c", script, str(CONTAINER_INFO)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=clean,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    out = run.stdout.strip()
    assert out.startswith("{"), out
    result = json.loads(out)
    assert result["version"] == wheel.name.split("-")[1]
    assert result["kind"] == "shared-env"
    assert result["group"] == "kipoi/kipoi-docker:mmsplice-mtsplice"
