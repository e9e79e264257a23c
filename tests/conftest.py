"""Shared pytest fixtures: paths to the repository's data and to the project's shared/, the
squashfs toolset, the timeout budget of slow session fixtures, and (from docker_fixtures and
zenodo_fixtures) the Docker Engine, registry, base image, tiny zoo and Zenodo emulator.

A fixture or test that needs something outside the repository calls
:func:`tests.requirements.require`: it fails under CI and skips elsewhere, naming what is
missing and how to get it."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

# Fixtures of every test module: the Docker Engine, registry, base image and tiny zoo (engine
# and infra tests) and the Zenodo emulator (test modules need not import them by name).
from .docker_fixtures import base_image, docker_config, docker_engine, registry, tiny_zoo  # noqa: F401
from .requirements import (
    SHARED_FIX,
    SQUASHFS_COMMANDS,
    SQUASHFS_FIX,
    require,
    shared_path,
    shared_problem,
    squashfs_problem,
    strict_reason,
)
from .zenodo_fixtures import helper_env, zenodo, zenodo_rdm  # noqa: F401

REPO = Path(__file__).resolve().parents[1]
CONTAINER_INFO = REPO / "container-info"
#: the project's shared/ (``$KIPOI_SHARED_DIR``, else ``../shared`` beside the checkout)
SHARED = shared_path()
INDEX_FILES = ("model-to-docker.json", "docker-to-model.json", "model-to-singularity.json")


def pytest_report_header(config: pytest.Config) -> str:
    strict = strict_reason()
    if strict:
        return f"requirements: a missing one fails the test ({strict}); shared/: {SHARED}"
    return f"requirements: a missing one skips the test (set CI=true to fail instead); shared/: {SHARED}"


@pytest.fixture
def container_info_copy(tmp_path: Path) -> Path:
    """A writable copy of the real index directory."""
    dst = tmp_path / "container-info"
    shutil.copytree(CONTAINER_INFO, dst)
    return dst


@pytest.fixture
def shared_dir() -> Path:
    """The project's shared/ directory (CI lays it beside the checkout)."""
    require("the project's shared/ directory", shared_problem(), SHARED_FIX)
    return SHARED


@dataclass(frozen=True)
class SquashfsTools:
    """Paths of the tools of the SIF path, all checked to work (see ``squashfs_problem``)."""

    mksquashfs: Path
    unsquashfs: Path
    squashfuse: Path
    bwrap: Path
    fuse_device: Path = Path("/dev/fuse")


@pytest.fixture(scope="session")
def squashfs_tools() -> SquashfsTools:
    """``mksquashfs``, ``unsquashfs``, ``squashfuse``, ``bwrap`` and a usable ``/dev/fuse``
    (a probe image is made, mounted, read back and unmounted; bwrap starts a sandbox)."""
    require("the squashfs toolset", squashfs_problem(), SQUASHFS_FIX)
    return SquashfsTools(**{name: Path(shutil.which(name) or name) for name in SQUASHFS_COMMANDS})


# ---------------------------------------------------------------------------------------------
# timeouts (pytest-timeout; default and method in pyproject.toml)

#: Session fixtures whose first set-up may take long, and the seconds it may add to the timeout
#: of the first test (in run order) that requests them: pytest-timeout counts fixture set-up in
#: the test's time. ``base_image`` cold is debootstrap + pip install of kipoi (~1.5 min here);
#: its budget is the 1200 s bound docker_fixtures gives scripts/base-image.sh, so a stuck build
#: is reported by that bound (with the script's stderr) before the test's timeout fires.
SLOW_SETUP_BUDGET = {"base_image": 1200}


def pytest_collection_finish(session: pytest.Session) -> None:
    config = session.config
    if not config.pluginmanager.hasplugin("timeout"):
        return
    import pytest_timeout

    default = pytest_timeout.get_env_settings(config).timeout
    pending = dict(SLOW_SETUP_BUDGET)
    items: list[pytest.Item] = session.items
    for item in items:
        if not pending:
            break
        fixtures = getattr(item, "fixturenames", ())
        extra = sum(pending.pop(name) for name in list(pending) if name in fixtures)
        if not extra:
            continue
        own = default
        marker = item.get_closest_marker("timeout")
        if marker is not None:
            own = marker.args[0] if marker.args else marker.kwargs.get("timeout", default)
        if own:  # 0 or None: no timeout at all, nothing to extend
            item.add_marker(pytest.mark.timeout(float(own) + extra), append=False)  # first = closest
