"""Upstream-compatible Docker helpers (``kipoi_containers.dockerhelper``), on the Rust
engine (bollard) against the real Docker Engine at ``DOCKER_HOST`` or the local socket.

Differences from upstream, all removing failure modes: a failing build raises
:class:`~kipoi_containers.errors.DockerBuildError` naming the step; model tests always
remove their container; extra ``kipoi test`` arguments come from the data table
``test-containers/model-test-args.json`` (e.g. ``--batch_size=2`` for Basenji); ``cleanup``
only touches what this tool created; the registry password is sent correctly encoded.

Model tests run upstream's ``kipoi test MODEL --source=kipoi`` unless a zoo checkout is
given (``zoo_dir`` or ``$KIPOI_MODEL_REPO`` naming a directory): then the checkout is
mounted read-only and the test runs offline against exactly that zoo.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Union

from . import _engine
from ._engine import ModelTestResult
from .errors import DockerError, KipoiContainersError
from .helper import logger

PathType = Union[str, "os.PathLike[str]"]

#: Where images are pushed unless ``KIPOI_DOCKER_REPO`` says otherwise.
DEFAULT_REPOSITORY = "kipoi/kipoi-docker"

__all__ = [
    "DEFAULT_REPOSITORY",
    "ModelTestResult",
    "build_docker_image",
    "cleanup",
    "docker_repository",
    "push_docker_image",
    "test_docker_image",
    "test_docker_image_without_exception",
    "test_models",
    "zoo_commit",
    "zoo_dir",
]


def docker_repository(repository: str | None = None) -> str:
    """The repository images are pushed to: ``repository``, ``$KIPOI_DOCKER_REPO``, or
    ``kipoi/kipoi-docker``. Index entries keep the ``kipoi/kipoi-docker:`` form."""
    return _engine.config_docker_repository(repository)


def zoo_dir(explicit: PathType | None = None) -> str | None:
    """The zoo checkout to mount for tests: ``explicit``, else ``$KIPOI_MODEL_REPO`` when
    it names a directory, else ``None`` (upstream's ``--source=kipoi``)."""
    found = _engine.config_test_zoo(explicit)
    return os.fspath(found) if found is not None else None


def build_docker_image(
    dockerfile_path: PathType,
    name_of_docker_image: str,
    *,
    nocache: bool = True,
    context_dir: PathType | None = None,
    labels: dict[str, str] | None = None,
    model_group: str | None = None,
    zoo_commit: str | None = None,
) -> str:
    """Build ``name_of_docker_image`` from ``dockerfile_path`` (no cache, like upstream);
    the build log goes to the ``kipoi_containers`` logger. The image is labelled with its
    recipe hash, ``model_group`` and ``zoo_commit``. Returns the image id."""
    return _engine.build_image(
        os.fspath(dockerfile_path),
        name_of_docker_image,
        context_dir=os.fspath(context_dir) if context_dir is not None else None,
        labels=labels,
        nocache=nocache,
        model_group=model_group,
        zoo_commit=zoo_commit,
    )


def zoo_commit(zoo: PathType | None) -> str | None:
    """The commit checked out in a local zoo ``zoo`` (``None`` when it is not a git checkout)."""
    if zoo is None:
        return None
    try:
        return _engine.resolve_revision(os.fspath(zoo))
    except KipoiContainersError:
        return None


def test_docker_image(
    image_name: str,
    model_name: str,
    *,
    zoo: PathType | None = None,
    timeout: float | None = None,
    network: bool = False,
) -> ModelTestResult:
    """Run ``kipoi test <model_name>`` in ``image_name``; raise
    :class:`~kipoi_containers.errors.ModelTestError` (with kipoi's log tail) on failure.
    With a zoo checkout the test has no network unless ``network`` (real models download
    their weights)."""
    result = _engine.test_model(
        image_name, model_name, zoo_dir=zoo_dir(zoo), timeout=timeout, check=True, network=network
    )
    logger.info("kipoi test %s in %s:\n%s", model_name, image_name, result.log_tail)
    return result


def test_docker_image_without_exception(
    image_name: str, model_name: str, *, zoo: PathType | None = None, timeout: float | None = None
) -> bool:
    """Like :func:`test_docker_image` but returns whether the test passed (a missing
    image or an engine error is ``False`` too, as upstream)."""
    try:
        result = _engine.test_model(image_name, model_name, zoo_dir=zoo_dir(zoo), timeout=timeout)
    except DockerError as exc:
        logger.warning("testing %s in %s failed: %s", model_name, image_name, exc)
        return False
    return result.passed


def test_models(
    image_name: str,
    models: Sequence[str],
    *,
    zoo: PathType | None = None,
    concurrency: int | None = None,
    timeout: float | None = None,
) -> list[ModelTestResult]:
    """Test several models of one image concurrently (default: one per core)."""
    return _engine.test_models(
        image_name, list(models), zoo_dir=zoo_dir(zoo), concurrency=concurrency, timeout=timeout
    )


def push_docker_image(
    tag: str,
    *,
    repository: str | None = None,
    image: str | None = None,
    username: str | None = None,
    password: str | None = None,
) -> tuple[str, str]:
    """Push the local ``kipoi/kipoi-docker:<tag>`` (or ``image``) to
    ``<repository>:<tag>`` with ``DOCKER_USERNAME``/``DOCKER_PASSWORD``. Returns
    ``(reference, digest)``; a rejected login raises
    :class:`~kipoi_containers.errors.DockerAuthError`."""
    local = image or f"{DEFAULT_REPOSITORY}:{tag}"
    return _engine.push_image(
        local, repository=docker_repository(repository), tag=tag, username=username, password=password
    )


def cleanup(images: bool = False) -> dict[str, list[str]]:
    """Remove the containers, networks and volumes this tool created (and, with
    ``images``, its dangling images). Never touches anything else."""
    return _engine.docker_cleanup(images=images)


# Keep pytest from collecting the upstream-named helpers as tests when imported into a
# test module.
for _f in (test_docker_image, test_docker_image_without_exception, test_models):
    setattr(_f, "__test__", False)  # noqa: B010 (a function attribute mypy does not know)
del _f
