"""Run each requested model in its image, its ``-slim`` image and its SIF (upstream's
test, on our plugin).

    pytest test-containers/test_models_from_command_line.py --model=Basset,HAL
    pytest test-containers/test_models_from_command_line.py --modelgroup=CpGenie --kipoi-zoo=/path/to/models

The SIF comes from the index (downloaded into ``$SINGULARITY_PULL_FOLDER``), or with
``--sif-from=docker`` is converted from the local ``-slim`` image: with ``--kipoi-zoo``
that runs offline against local images only (see ``conftest.py``).
"""

from typing import Any, Callable


def test_model_runs_in_its_image(kipoi_model: str, test_docker_image: Callable[..., Any]) -> None:
    result = test_docker_image(kipoi_model)
    assert result.passed


def test_model_runs_in_its_slim_image(
    kipoi_model: str, kipoi_index: Any, test_docker_image: Callable[..., Any]
) -> None:
    image = kipoi_index.image_for_model(kipoi_model)
    assert image is not None, f"model `{kipoi_model}` has no image in model-to-docker.json"
    result = test_docker_image(kipoi_model, f"{image}-slim")
    assert result.passed


def test_model_runs_in_its_singularity_image(
    kipoi_model: str,
    singularity_image: Callable[[str], tuple[Any, str]],
    test_singularity_image: Callable[..., Any],
) -> None:
    folder, name = singularity_image(kipoi_model)
    result = test_singularity_image(singularity_image_folder=folder, singularity_image_name=name, model=kipoi_model)
    assert result.passed
