"""``DockerAdder``: containerise a model group new to the index (upstream name).

Steps, as upstream: list the group's models from the zoo; try the shared images (derived
from the index: images whose keys span several groups, not a hard-coded list); if one runs
every model, use it; otherwise render the group's full and ``-slim`` Dockerfiles, build
both, test every model in both, push both, clean up. Then record the group in the index
dicts (and, when given, upstream's workflow data).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Union

from . import _engine
from .dockerhelper import test_docker_image_without_exception
from .dockerupdater import DockerUpdater
from .helper import logger
from .paths import container_info_dir

PathType = Union[str, "os.PathLike[str]"]

__all__ = ["DockerAdder"]


def _shared_images_of_local_index() -> list[str]:
    """The shared images of the local index; none when there is no index directory (a
    malformed index raises rather than silently meaning "no shared images")."""
    directory = container_info_dir()
    if not directory.is_dir():
        return []
    return list(_engine.Index.load(os.fspath(directory)).shared_images())


def _zoo_spec(kipoi_model_repo: Any) -> str:
    """A zoo the engine reads: a checkout path or ``github:OWNER/REPO``; upstream passed a
    PyGithub ``Repository``, which is read by its ``full_name`` (the engine does the requests)."""
    full_name = getattr(kipoi_model_repo, "full_name", None)
    if isinstance(full_name, str):
        return f"github:{full_name}"
    return os.fspath(kipoi_model_repo)


class DockerAdder:
    """Adds ``model_group`` from ``kipoi_model_repo`` (a zoo checkout path,
    ``github:OWNER/REPO``, or a PyGithub ``Repository``) to the containers.

    Model tests run against ``zoo`` when given, else against ``kipoi_model_repo`` when it is
    a local checkout (offline, exactly that commit), else upstream's ``--source=kipoi``.
    """

    def __init__(
        self,
        model_group: str,
        kipoi_model_repo: Any,
        kipoi_container_repo: Any | None = None,
        *,
        shared_images: list[str] | None = None,
        dockerfiles_dir: PathType = "dockerfiles",
        template_dir: PathType | None = None,
        base_image: str | None = None,
        zoo: PathType | None = None,
        push: bool = True,
    ) -> None:
        self.model_group = model_group
        self.kipoi_model_repo = kipoi_model_repo
        self.kipoi_container_repo = kipoi_container_repo
        self.image_name = _engine.image_for_group(model_group)
        self.slim_image = _engine.slim_image(self.image_name)
        self.list_of_models: list[str] = []
        self.shared_images = shared_images if shared_images is not None else _shared_images_of_local_index()
        self.dockerfiles_dir = Path(dockerfiles_dir)
        self.template_dir = template_dir
        self.base_image = base_image
        if zoo is None and not hasattr(kipoi_model_repo, "full_name"):
            spec = _zoo_spec(kipoi_model_repo)
            if Path(spec).is_dir():
                zoo = spec
        self.zoo = zoo
        self.push = push

    def get_list_of_models_from_repo(self) -> list[str]:
        """The group's models in the zoo (``models.tsv``, sub-folders, or the group)."""
        return _engine.models_of_group(_zoo_spec(self.kipoi_model_repo), self.model_group)

    def _models(self) -> list[str]:
        return self.list_of_models or [self.model_group]

    def is_compatible_with_existing_image(self) -> bool:
        """Whether a shared image runs every model of the group; if so it (and its slim
        variant) become ``image_name`` / ``slim_image``."""
        for image in self.shared_images:
            if all(test_docker_image_without_exception(image, m, zoo=self.zoo) for m in self._models()):
                logger.info("%s runs in the shared image %s", self.model_group, image)
                self.image_name = image
                self.slim_image = _engine.slim_image(image)
                return True
        return False

    def update_content(
        self,
        model_group_to_docker_dict: dict[str, str],
        docker_to_model_dict: dict[str, list[str]],
        workflow_test_data: dict[str, Any] | None = None,
        workflow_release_data: dict[str, Any] | None = None,
    ) -> None:
        """Record the group in the index dicts (and upstream's workflow data if given)."""
        model_group_to_docker_dict[self.model_group] = self.image_name
        listed = docker_to_model_dict.setdefault(self.image_name, [])
        listed.extend(m for m in self._models() if m not in listed)
        if workflow_test_data is not None:
            workflow_test_data["jobs"]["test"]["strategy"]["matrix"]["model"].append(self._models()[0])
        if workflow_release_data is not None and self.image_name not in self.shared_images:
            workflow_release_data["jobs"]["buildtestandpush"]["strategy"]["matrix"]["image"].append(
                _engine.image_tag(self.image_name)
            )

    def add(
        self,
        model_group_to_docker_dict: dict[str, str],
        docker_to_model_dict: dict[str, list[str]],
        workflow_test_data: dict[str, Any] | None = None,
        workflow_release_data: dict[str, Any] | None = None,
    ) -> None:
        """Containerise the group (shared image first, else its own full and ``-slim``
        images, each rendered, built, tested with every model and pushed) and record it."""
        self.list_of_models = self.get_list_of_models_from_repo()
        if not self.is_compatible_with_existing_image():
            # Its own images: the same render → build → test → push path as an update.
            for image in (self.image_name, self.slim_image):
                DockerUpdater(
                    self.model_group,
                    image,
                    dockerfiles_dir=self.dockerfiles_dir,
                    template_dir=self.template_dir,
                    base_image=self.base_image,
                    zoo=self.zoo,
                    push=self.push,
                ).update(self._models(), rerender=True)
        self.update_content(model_group_to_docker_dict, docker_to_model_dict, workflow_test_data, workflow_release_data)
