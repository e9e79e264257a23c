"""``update_all_singularity DOCKER_IMAGE`` (console script) and
``python -m kipoi_containers.update_all_singularity_images DOCKER_IMAGE``: rebuild the SIF
of one Docker image, publish it as a new version of its Zenodo record (nothing is uploaded
when its md5 is unchanged), point the entry of every model the image serves at it, and
write ``model-to-singularity.json`` back to the zoo.

Upstream's click command with upstream's module-level names (``singularityhandler``,
``populate_json_from_kipoi``, ``write_json_to_kipoi``, ``populate_json``) looked up at run
time, so upstream's tests that replace them keep working. Differences: the SIF is converted
from the local engine (the image is pulled from ``$KIPOI_DOCKER_REPO`` first when absent),
the zoo is ``$KIPOI_MODEL_REPO`` (else ``github:kipoi/models``; token from ``GITHUB_PAT`` /
``GITHUB_TOKEN``, only needed to write), and every key the image serves is updated, read
from the index rather than from a copy of it.
"""

from __future__ import annotations

import os

import click

from . import _engine, singularityhandler
from .helper import (
    one_model_per_modelgroup,
    populate_json,
    populate_json_from_kipoi,
    write_json_to_kipoi,
)
from .updateoradd import DOCKER_TO_MODEL_JSON, MODEL_GROUP_TO_DOCKER_JSON, MODEL_GROUP_TO_SINGULARITY_JSON

__all__ = ["main", "run_update"]


def _keys_of_image(model_group_to_docker: dict[str, str], docker_image: str) -> list[str]:
    """The index keys served by ``docker_image`` (or by its full image, for a slim tag)."""
    full = _engine.full_image(docker_image)
    return [key for key, image in model_group_to_docker.items() if image == full]


@click.command()
@click.argument("docker_image", required=True, type=str)
def run_update(docker_image: str) -> None:
    """Rebuild and republish the Singularity image of DOCKER_IMAGE (e.g.
    kipoi/kipoi-docker:deepmel-slim) and update every model it serves."""
    click.echo(f"Updating the singularity container for {docker_image}")
    zoo = _engine.config_zoo()
    model_group_to_singularity_dict = populate_json_from_kipoi(MODEL_GROUP_TO_SINGULARITY_JSON, zoo)
    model_group_to_docker_dict = populate_json_from_kipoi(MODEL_GROUP_TO_DOCKER_JSON, zoo)
    keys = _keys_of_image(model_group_to_docker_dict, docker_image)
    if not keys:
        raise click.ClickException(f"`{docker_image}` serves no model of {MODEL_GROUP_TO_DOCKER_JSON}")
    docker_to_model_dict = populate_json(DOCKER_TO_MODEL_JSON)
    models = docker_to_model_dict.get(_engine.full_image(docker_image))
    if not models:
        raise click.ClickException(f"`{docker_image}` has no models to test in {DOCKER_TO_MODEL_JSON}")
    handler = singularityhandler.SingularityHandler(
        model_group=keys[0],
        docker_image_name=docker_image,
        singularity_image_folder=os.fspath(_engine.config_sif_folder()),
        model_group_to_singularity_dict=model_group_to_singularity_dict,
        workflow_release_data={},
    )
    handler.update(one_model_per_modelgroup(models))
    for key in keys[1:]:
        model_group_to_singularity_dict[key] = model_group_to_singularity_dict[keys[0]]
    write_json_to_kipoi(model_group_to_singularity_dict, MODEL_GROUP_TO_SINGULARITY_JSON, zoo)


def main() -> None:
    """The console script ``update_all_singularity``."""
    run_update()


if __name__ == "__main__":
    main()
