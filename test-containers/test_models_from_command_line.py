"""Run each requested model in its image (upstream's test, on our plugin).

    pytest test-containers/test_models_from_command_line.py --model=Basset,HAL
    pytest test-containers/test_models_from_command_line.py --modelgroup=CpGenie --kipoi-zoo=/path/to/models
"""

from typing import Any, Callable


def test_model_runs_in_its_image(kipoi_model: str, test_docker_image: Callable[..., Any]) -> None:
    result = test_docker_image(kipoi_model)
    assert result.passed
