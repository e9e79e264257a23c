"""Run the compatible models of each requested image (one per group for a shared image),
optionally only those of ``--modelgroup`` (upstream's test, on our plugin).

    pytest test-containers/test_containers_from_command_line.py --image=kipoi/kipoi-docker:deepmel
    pytest test-containers/test_containers_from_command_line.py \
        --image=kipoi/kipoi-docker:sharedpy3keras2tf2 --modelgroup=Basset
"""

from typing import Any, Callable


def test_image_runs_its_models(kipoi_image_model: tuple[str, str], test_docker_image: Callable[..., Any]) -> None:
    image, model = kipoi_image_model
    result = test_docker_image(model, image)
    assert result.passed
