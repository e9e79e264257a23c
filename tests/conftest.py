"""Shared pytest fixtures: paths to the repository's data and to the project's shared/, the
squashfs tools, and (from docker_fixtures) the Docker Engine, registry, base image and tiny zoo.

A fixture or test that needs something outside the repository calls
:func:`tests.requirements.require`: it fails under CI and skips elsewhere, naming what is
missing and how to get it."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
import pytest

# Docker Engine / registry / base image / tiny-zoo fixtures, shared by the engine and infra tests.
from .docker_fixtures import base_image, docker_config, docker_engine, registry, tiny_zoo  # noqa: F401
from .requirements import (
    SHARED_FIX,
    SQUASHFS_COMMANDS,
    SQUASHFS_FIX,
    require,
    shared_path,
    shared_problem,
    squashfs_problem,
)

REPO = Path(__file__).resolve().parents[1]
CONTAINER_INFO = REPO / "container-info"
#: the project's shared/ (``$KIPOI_SHARED_DIR``, else ``../shared`` beside the checkout)
SHARED = shared_path()
INDEX_FILES = ("model-to-docker.json", "docker-to-model.json", "model-to-singularity.json")


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
