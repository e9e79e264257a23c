"""Where the SIF of a model comes from in ``test_models_from_command_line.py``.

``--sif-from=index`` (default; or ``$KIPOI_SIF_FROM``): the model's SIF in the index
(``model-to-singularity.json``), downloaded with ``get_singularity_image`` into
``$SINGULARITY_PULL_FOLDER`` (else the current directory) unless there, as upstream did.
``--sif-from=docker``: converted from the model's local ``-slim`` image (no registry, no
network: for offline runs against local images), into ``$SINGULARITY_PULL_FOLDER`` or a
session temporary directory; each image is converted once per session.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import pytest

SIF_SOURCES = ("index", "docker")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--sif-from",
        choices=SIF_SOURCES,
        default=None,
        help="where each model's SIF comes from: `index` (download, default) or `docker` "
        "(convert the local -slim image; offline). Default: $KIPOI_SIF_FROM, else index",
    )


def _source(config: pytest.Config) -> str:
    source = config.getoption("sif_from") or os.environ.get("KIPOI_SIF_FROM") or "index"
    if source not in SIF_SOURCES:
        raise pytest.UsageError(f"KIPOI_SIF_FROM must be one of {', '.join(SIF_SOURCES)}, got `{source}`")
    return source


@pytest.fixture(scope="session")
def singularity_image(
    pytestconfig: pytest.Config, kipoi_index: Any, tmp_path_factory: pytest.TempPathFactory
) -> Callable[[str], tuple[Path, str]]:
    """``get(model) -> (folder, file name)`` of the SIF to test ``model`` in."""
    from kipoi_containers import _engine
    from kipoi_containers.sif import PULL_FOLDER_ENV, build_singularity_image, get_singularity_image, pull_folder

    source = _source(pytestconfig)
    built: dict[str, tuple[Path, str]] = {}

    def get(model: str) -> tuple[Path, str]:
        if source == "index":
            folder = pull_folder()
            return folder, os.fspath(get_singularity_image(folder, kipoi_index, model))
        image = kipoi_index.image_for_model(model)
        if image is None:
            raise LookupError(f"model `{model}` has no image in model-to-docker.json")
        slim = f"{image}-slim"
        if slim not in built:
            folder = (
                Path(os.environ[PULL_FOLDER_ENV]) if os.environ.get(PULL_FOLDER_ENV) else tmp_path_factory.mktemp("sif")
            )
            name = f"{_engine.sif_name_for_image(slim)}.sif"
            build_singularity_image(slim, name, folder, model_group=model.split("/")[0])
            built[slim] = (folder, name)
        return built[slim]

    return get
