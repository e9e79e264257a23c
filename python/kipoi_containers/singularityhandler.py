"""Adding and updating a model group's Singularity image (upstream's
``kipoi_containers.singularityhandler.SingularityHandler``).

The steps call the module-level names ``build_singularity_image``,
``test_singularity_image``, ``check_integrity``, ``cleanup``,
``push_new_singularity_image`` and ``update_existing_singularity_container`` at run time,
so they can be replaced (monkeypatched) as upstream's tests do. The image conversion can
also be injected per handler with ``build_image=`` / ``test_image=`` (the defaults are the
native conversion and runner of :mod:`kipoi_containers.sif`: no apptainer needed).

The built SIF (often several GB) is removed when ``add``/``update`` ends, whether the test,
the upload or the publication succeeded or failed (upstream left it behind on any failure,
and after ``add`` always). The publishing helpers receive the handler's index
(``model_group_to_singularity_dict=``) so shared environments are recognised from it, when
they accept that argument (replacements with upstream's exact signature still work).

As upstream, ``add`` and ``update`` publish (``push=True``) unless told otherwise, and
``add`` for a group placed in a shared image reuses that image's published entry: no build,
no second Zenodo record. Whether the image is shared is decided from the index data
(``docker_to_model_dict`` and the handler's ``model_group_to_singularity_dict``, by the
engine's rule: its models span two or more top-level groups), not from its name.
"""

from __future__ import annotations

import inspect
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from . import _engine, zenodoclient
from .singularityhelper import (
    build_singularity_image,
    cleanup,
    push_new_singularity_image,
    test_singularity_image,
    update_existing_singularity_container,
)

__all__ = ["SingularityHandler", "check_integrity"]

logger = logging.getLogger("kipoi_containers.singularityhandler")

#: Where the release workflow lists the images whose SIF is built and pushed.
_RELEASE_MATRIX = ("jobs", "buildtestandpushsingularity", "strategy", "matrix", "image")


def check_integrity(fpath: str | os.PathLike[str], md5: str | None = None) -> bool:
    """Whether ``fpath`` exists and (when ``md5`` is given) has that md5."""
    path = Path(fpath)
    if not path.is_file():
        return False
    if md5 is None:
        return True
    return _engine.md5_file(os.fspath(path)) == md5.lower().removeprefix("md5:")


def _accepts(func: Callable[..., Any], name: str) -> bool:
    """Whether ``func`` takes a keyword argument ``name`` (or ``**kwargs``)."""
    try:
        params = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == name or p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


@dataclass
class SingularityHandler:
    """Builds, tests and publishes the Singularity image of one model group and keeps
    ``model_group_to_singularity_dict`` (and the release workflow's image matrix) in step."""

    model_group: str
    docker_image_name: str
    model_group_to_singularity_dict: dict[str, dict[str, str]]
    workflow_release_data: dict[str, Any] = field(default_factory=dict)
    singularity_image_folder: str | Path | None = None
    zenodo_client: zenodoclient.Client | None = None
    #: ``build_image(name_of_docker_image=, singularity_image_name=, singularity_image_folder=)``
    #: → path of the built SIF; default :func:`singularityhelper.build_singularity_image`.
    build_image: Callable[..., Any] | None = None
    #: ``test_image(singularity_image_folder=, singularity_image_name=, model=)``.
    test_image: Callable[..., Any] | None = None

    def __post_init__(self) -> None:
        """The image folder defaults to ``$SINGULARITY_PULL_FOLDER``, else the current
        directory (upstream used the installed package's directory)."""
        if self.singularity_image_folder is None:
            self.singularity_image_folder = os.environ.get("SINGULARITY_PULL_FOLDER") or Path.cwd()
        if self.zenodo_client is None:
            self.zenodo_client = zenodoclient.Client()

    # ------------------------------------------------------------------ helpers
    def _folder(self) -> Path:
        """The folder SIFs are built in (set in ``__post_init__``)."""
        return Path(self.singularity_image_folder or Path.cwd())

    def _build(self, singularity_image_name: str, docker_image: str) -> Path:
        builder = self.build_image or build_singularity_image
        built = builder(
            name_of_docker_image=docker_image,
            singularity_image_name=singularity_image_name,
            singularity_image_folder=self._folder(),
        )
        if built is None:
            return self._folder() / singularity_image_name
        return Path(built)

    def _cleanup(self, built: Path) -> None:
        """Remove the built image if it is there; a failure to do so is logged, never raised
        (it must not hide the error of the step that failed)."""
        try:
            if built.exists():
                cleanup(built)
        except OSError as err:
            logger.warning("could not remove the built image `%s`: %s", built, err)

    def _publish(self, publish: Callable[..., Any], **kwargs: Any) -> dict[str, Any]:
        if _accepts(publish, "model_group_to_singularity_dict"):
            kwargs["model_group_to_singularity_dict"] = self.model_group_to_singularity_dict
        return publish(**kwargs)

    def _test(self, singularity_image_name: str, models_to_test: list[str]) -> None:
        tester = self.test_image or test_singularity_image
        for model in models_to_test:
            tester(
                singularity_image_folder=self._folder(),
                singularity_image_name=singularity_image_name,
                model=model,
            )

    def update_container_info(self, updated_singularity_dict: dict[str, Any]) -> None:
        """Set the group's entry to the ``url``, ``name`` and ``md5`` of ``updated_singularity_dict``."""
        self.model_group_to_singularity_dict[self.model_group] = {
            k: v for k, v in updated_singularity_dict.items() if k in ("url", "name", "md5")
        }

    def _add_to_release_matrix(self, image: str) -> None:
        node: Any = self.workflow_release_data
        for key in _RELEASE_MATRIX[:-1]:
            if not isinstance(node, dict) or key not in node:
                return
            node = node[key]
        images = node.get(_RELEASE_MATRIX[-1]) if isinstance(node, dict) else None
        if isinstance(images, list) and image not in images:
            images.append(image)

    def _shared_entry(self, docker_to_model_dict: Mapping[str, list[str]], sif_name: str) -> dict[str, str] | None:
        """The published entry of the handler's image when it is a shared one (its models,
        with this group, span two or more top-level groups) and already has a SIF: the entry
        of the first of its models (``docker_to_model_dict``, then the index) that has one."""
        image = _engine.full_image(self.docker_image_name)
        index = self.model_group_to_singularity_dict
        serving = list(docker_to_model_dict.get(image, []))
        serving += [key for key, entry in index.items() if entry.get("name") == sif_name]
        models = dict.fromkeys(serving, image)
        models[self.model_group] = image
        if image not in _engine.shared_images_of(models):
            return None
        keys = list(index)
        for model in serving:
            key = _engine.longest_prefix_key(keys, model)
            if key is not None and key != self.model_group and index[key].get("name") == sif_name:
                return dict(index[key])
        return None

    # ------------------------------------------------------------------ steps
    def add(
        self,
        models_to_test: list[str],
        docker_to_model_dict: Mapping[str, list[str]] | None = None,
        push: bool = True,
    ) -> None:
        """Add the SIF of a new group. In a shared image that already has a SIF (see
        :meth:`_shared_entry`), the group gets that image's entry: nothing is built or
        published. Otherwise: build the SIF from the slim Docker image, test it with
        ``models_to_test``, publish it as a new Zenodo record (``push=False`` leaves the
        draft unpublished), record it in the index and add the image to the release
        workflow's matrix. The built SIF is removed in any case."""
        sif_name = _engine.sif_name_for_image(self.docker_image_name)
        self.singularity_image_name = f"{sif_name}.sif"
        self.singularity_dict = {"url": "", "name": sif_name, "md5": ""}
        shared = self._shared_entry(docker_to_model_dict or {}, sif_name)
        if shared is not None:
            logger.info(
                "%s runs in the shared image %s: reusing its Singularity image %s",
                self.model_group, self.docker_image_name, shared.get("url"),
            )
            self.update_container_info(shared)
            return
        built = self._build(self.singularity_image_name, _engine.slim_image(self.docker_image_name))
        try:
            self._test(built.name, models_to_test)
            new_singularity_dict = self._publish(
                push_new_singularity_image,
                zenodo_client=self.zenodo_client,
                singularity_image_folder=built.parent,
                singularity_dict=self.singularity_dict,
                model_group=self.model_group,
                file_to_upload=built.name,
                push=push,
            )
        finally:
            self._cleanup(built)
        self.update_container_info(new_singularity_dict)
        # The release matrix lists full tags: the tag of the full image (which always has one).
        self._add_to_release_matrix(_engine.full_image(self.docker_image_name).rsplit(":", 1)[-1])

    def update(self, models_to_test: list[str], push: bool = True) -> None:
        """Rebuild the group's SIF; when its md5 equals the index's, say so and stop (no
        Zenodo call). Otherwise test it and publish it as a new version of the record
        (``push=False`` leaves the new version's draft unpublished). The built SIF is
        removed in any case."""
        self.singularity_dict = self.model_group_to_singularity_dict[self.model_group]
        self.singularity_image_name = f"{self.singularity_dict['name']}.sif"
        built = self._build(self.singularity_image_name, self.docker_image_name)
        try:
            if check_integrity(built, self.singularity_dict["md5"]):
                message = f"No need to update the existing singularity container for {self.model_group}"
                logger.info(message)
                print(message)
                return
            self._test(built.name, models_to_test)
            updated_singularity_dict = self._publish(
                update_existing_singularity_container,
                zenodo_client=self.zenodo_client,
                singularity_dict=self.singularity_dict,
                singularity_image_folder=built.parent,
                model_group=self.model_group,
                file_to_upload=built.name,
                push=push,
            )
        finally:
            self._cleanup(built)
        self.update_container_info(updated_singularity_dict)
