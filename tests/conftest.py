"""Shared pytest fixtures: paths to the repository's data and to ../shared."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CONTAINER_INFO = REPO / "container-info"
SHARED = REPO.parent / "shared"
INDEX_FILES = ("model-to-docker.json", "docker-to-model.json", "model-to-singularity.json")


@pytest.fixture
def container_info_copy(tmp_path: Path) -> Path:
    """A writable copy of the real index directory."""
    dst = tmp_path / "container-info"
    shutil.copytree(CONTAINER_INFO, dst)
    return dst


@pytest.fixture
def shared_dir() -> Path:
    """``../shared`` beside the checkout (CI lays it there); skip when absent."""
    if not SHARED.is_dir():
        pytest.skip("../shared is not beside this checkout")
    return SHARED



# Docker Engine / registry / tiny-zoo fixtures, shared by the engine and infra tests.
from .docker_fixtures import base_image, docker_config, docker_engine, registry, tiny_zoo  # noqa: E402,F401
