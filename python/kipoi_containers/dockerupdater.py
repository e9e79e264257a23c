"""``DockerUpdater``: rebuild, retest and push the image of a model group (upstream name)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Union

from . import _engine
from .dockerhelper import build_docker_image, cleanup, push_docker_image, test_docker_image, zoo_commit, zoo_dir
from .helper import logger

PathType = Union[str, "os.PathLike[str]"]

__all__ = ["DockerUpdater"]


class DockerUpdater:
    """Rebuilds ``name_of_docker_image`` for ``model_group``, tests ``models_to_test`` in
    it, pushes it and cleans up.

    The Dockerfile is ``dockerfiles/Dockerfile.<tag>`` (``-slim`` for a slim image), the
    tag taken from the image name — one rule for every group, where upstream special-cased
    MMSplice and APARENT. Its recipe comes from the engine and the index (``container_info``,
    default ``$KIPOI_CONTAINER_INFO`` or ``./container-info``): a shared image is rebuilt from
    its environment file (written to ``dockerfiles/envfiles/``, the build context then being
    ``dockerfiles/``), never from one group's template; an own image from the group templates
    for its group; an image new to the index from the group templates for ``model_group``.
    """

    def __init__(
        self,
        model_group: str,
        name_of_docker_image: str,
        *,
        dockerfiles_dir: PathType = "dockerfiles",
        template_dir: PathType | None = None,
        base_image: str | None = None,
        zoo: PathType | None = None,
        push: bool = True,
        container_info: PathType | None = None,
    ) -> None:
        self.model_group = model_group
        self.name_of_docker_image = name_of_docker_image
        self.dockerfiles_dir = Path(dockerfiles_dir)
        self.template_dir = template_dir
        self.base_image = base_image
        self.zoo = zoo
        self.push = push
        self.container_info = container_info

    @property
    def tag(self) -> str:
        """The image's tag (``deepmel``, ``deepmel-slim``)."""
        return _engine.image_tag(self.name_of_docker_image)

    def recipe(self) -> _engine.ImageRecipe:
        """The image's recipe (from the index; for an image new to it, ``model_group``'s)."""
        return _engine.recipe_for_image(
            self.name_of_docker_image,
            container_info=os.fspath(self.container_info) if self.container_info else None,
            model_group=self.model_group,
            template_dir=os.fspath(self.template_dir) if self.template_dir else None,
            base_image=self.base_image,
        )

    def dockerfile_path(self, rerender: bool = False) -> Path:
        """``dockerfiles/Dockerfile.<tag>[-slim]`` (the engine's one rule for every image),
        written from the image's recipe when missing (or always, with ``rerender``), with
        the files its build context needs."""
        path, _variant = _engine.dockerfile_for_image(os.fspath(self.dockerfiles_dir), self.name_of_docker_image)
        if rerender or not path.exists():
            written, recipe = _engine.write_image_recipe(
                self.name_of_docker_image,
                os.fspath(self.dockerfiles_dir),
                container_info=os.fspath(self.container_info) if self.container_info else None,
                model_group=self.model_group,
                template_dir=os.fspath(self.template_dir) if self.template_dir else None,
                base_image=self.base_image,
            )
            logger.info("wrote %s (%s recipe) for %s", written, recipe.kind, self.model_group)
        return Path(path)

    def update(self, models_to_test: list[str], *, rerender: bool = False) -> None:
        """Rebuild, test every model of ``models_to_test``, push, clean up. Nothing is
        pushed unless every test passed. ``rerender`` renders the Dockerfile afresh."""
        logger.info("Updating %s and %s", self.model_group, self.name_of_docker_image)
        # A recipe with context files (a shared image's environment file) is always written,
        # so the files are beside the Dockerfile, and built with dockerfiles/ as its context.
        has_context = bool(self.recipe().context)
        path = self.dockerfile_path(rerender or has_context)
        context = self.dockerfiles_dir if has_context else None
        try:
            build_docker_image(
                path,
                self.name_of_docker_image,
                context_dir=context,
                model_group=self.model_group,
                zoo_commit=zoo_commit(zoo_dir(self.zoo)),
            )
            for model in models_to_test:
                test_docker_image(self.name_of_docker_image, model, zoo=self.zoo)
            if self.push:
                push_docker_image(self.tag, image=self.name_of_docker_image)
        finally:
            cleanup(images=True)
