"""pytest plugin (entry point ``pytest11``): run Kipoi models inside their images.

Options (repeatable, comma-separated lists): ``--model``, ``--modelgroup``, ``--image``;
``--kipoi-zoo DIR`` mounts a zoo checkout read-only for offline tests (default:
``$KIPOI_MODEL_REPO`` when it names a directory) and ``--kipoi-container-info DIR``
chooses the index (default: ``$KIPOI_CONTAINER_INFO`` or ``./container-info``).

Suites that define ``--model``/``--modelgroup``/``--image`` in their own ``conftest.py``
(as upstream's ``test-containers/conftest.py`` does) keep working: the plugin adds each
option only after the initial conftests are loaded, and only if nobody defined it.

Fixtures:
- ``test_docker_image``: a callable ``(model, image=None) -> ModelTestResult`` that runs
  ``kipoi test`` for ``model`` in ``image`` (default: the model's image in the index) and
  raises ``ModelTestError`` on failure;
- ``test_singularity_image``: a callable ``(model, image=None)`` doing the same inside a
  SIF (``image``: its path; default: the model's SIF from the index, downloaded into
  ``$SINGULARITY_PULL_FOLDER``), raising ``SifTestError``; upstream's keywords
  ``singularity_image_folder=``, ``singularity_image_name=``, ``model=`` work too;
- ``kipoi_index``: the loaded :class:`kipoi_containers.Index`;
- ``requested_models`` / ``requested_images`` / ``requested_modelgroups``: the flattened options.

Test functions taking ``kipoi_model`` are parametrised with every requested model (from
``--model``, or every model of each ``--modelgroup``); functions taking
``kipoi_image_model`` get ``(image, model)`` pairs for each ``--image`` (its models from
``docker-to-model.json``, filtered by ``--modelgroup``; one model per group for a shared
image, i.e. one whose index keys span several groups).

The engine is imported lazily: this module is loaded in every pytest run.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import pytest

_OPTIONS = {
    "--model": "Model name(s) to test (comma-separated; repeatable)",
    "--modelgroup": "Model group name(s) to test (comma-separated; repeatable)",
    "--image": "Docker image name(s) to test (comma-separated; repeatable)",
}


@pytest.hookimpl(hookwrapper=True)
def pytest_load_initial_conftests(early_config: pytest.Config, parser: pytest.Parser, args: list[str]) -> Any:
    yield
    for name, help_text in _OPTIONS.items():
        try:
            parser.addoption(name, action="append", default=[], help=help_text)
        except ValueError:
            pass  # defined by the suite's own conftest.py: use theirs
    for name, kwargs in {
        "--kipoi-zoo": {"default": None, "help": "zoo checkout to mount read-only for model tests"},
        "--kipoi-container-info": {"default": None, "help": "directory with the index files"},
    }.items():
        try:
            parser.addoption(name, **kwargs)
        except ValueError:
            pass


def _flatten(values: Any) -> list[str]:
    if values is None:
        return []
    if isinstance(values, str):
        values = [values]
    out: list[str] = []
    for value in values:
        out.extend(v.strip() for v in str(value).split(",") if v.strip())
    return out


def _option(config: pytest.Config, name: str) -> Any:
    try:
        return config.getoption(name)
    except ValueError:
        return None


def requested(config: pytest.Config, name: str) -> list[str]:
    """The values of ``--model``/``--modelgroup``/``--image``, comma lists flattened."""
    return _flatten(_option(config, name))


def _index(config: pytest.Config) -> Any:
    cached = getattr(config, "_kipoi_index", None)
    if cached is None:
        from kipoi_containers import Index
        from kipoi_containers.paths import container_info_dir

        cached = Index.load(os.fspath(container_info_dir(_option(config, "kipoi_container_info"))))
        config._kipoi_index = cached  # type: ignore[attr-defined]
    return cached


def _zoo(config: pytest.Config) -> str | None:
    from kipoi_containers.dockerhelper import zoo_dir

    return zoo_dir(_option(config, "kipoi_zoo"))


def models_for_request(config: pytest.Config) -> list[str]:
    models = requested(config, "model")
    groups = requested(config, "modelgroup")
    if not models and groups:
        from kipoi_containers import _engine

        zoo = _zoo(config)
        if zoo is None:
            raise pytest.UsageError(
                "--modelgroup without --model needs a zoo checkout: pass --kipoi-zoo or set KIPOI_MODEL_REPO"
            )
        for group in groups:
            models.extend(_engine.models_of_group(zoo, group))
    return models


def image_model_pairs(config: pytest.Config) -> list[tuple]:
    from kipoi_containers.helper import one_model_per_modelgroup

    index = _index(config)
    groups = set(requested(config, "modelgroup"))
    pairs: list[tuple] = []
    for image in requested(config, "image"):
        models = index.models_for_image(image)
        if models is None:
            raise pytest.UsageError(f"image `{image}` is not in docker-to-model.json")
        if groups:
            models = [m for m in models if m.split("/")[0] in groups or (index.key_for_model(m) or "") in groups]
        elif index.is_shared(image):
            models = one_model_per_modelgroup(models)
        pairs.extend((image, m) for m in models)
    return pairs


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "kipoi_model" in metafunc.fixturenames:
        models = models_for_request(metafunc.config)
        metafunc.parametrize("kipoi_model", models, ids=models)
    if "kipoi_image_model" in metafunc.fixturenames:
        pairs = image_model_pairs(metafunc.config)
        metafunc.parametrize("kipoi_image_model", pairs, ids=[f"{i}::{m}" for i, m in pairs])


@pytest.fixture(scope="session")
def kipoi_index(pytestconfig: pytest.Config) -> Any:
    """The index (``container-info``) the tests resolve images with."""
    return _index(pytestconfig)


@pytest.fixture(scope="session")
def requested_models(pytestconfig: pytest.Config) -> list[str]:
    return requested(pytestconfig, "model")


@pytest.fixture(scope="session")
def requested_modelgroups(pytestconfig: pytest.Config) -> list[str]:
    return requested(pytestconfig, "modelgroup")


@pytest.fixture(scope="session")
def requested_images(pytestconfig: pytest.Config) -> list[str]:
    return requested(pytestconfig, "image")


@pytest.fixture
def test_docker_image(pytestconfig: pytest.Config) -> Callable[..., Any]:
    """``run(model, image=None)``: ``kipoi test`` of ``model`` in ``image`` (default: the
    first ``--image`` given, else the model's image in the index); raises
    ``ModelTestError`` with kipoi's output on failure. Upstream's keyword form
    ``run(model_name=..., image_name=...)`` works too."""
    from kipoi_containers.dockerhelper import test_docker_image as run_test

    images = requested(pytestconfig, "image")

    def run(
        model: str | None = None,
        image: str | None = None,
        *,
        model_name: str | None = None,
        image_name: str | None = None,
    ) -> Any:
        model = _one_of("model", model, "model_name", model_name)
        image = image if image is not None else image_name
        image = image or (images[0] if images else None) or _index(pytestconfig).image_for_model(model)
        if image is None:
            raise LookupError(f"model `{model}` has no image in model-to-docker.json")
        return run_test(image, model, zoo=_zoo(pytestconfig))

    return run


def _one_of(name: str, value: str | None, alias: str, alias_value: str | None) -> str:
    """The argument given as ``name`` or as upstream's ``alias`` (exactly one of them)."""
    if value is not None and alias_value is not None and value != alias_value:
        raise TypeError(f"pass `{name}` or `{alias}`, not both")
    chosen = value if value is not None else alias_value
    if chosen is None:
        raise TypeError(f"missing the `{name}` argument (or upstream's `{alias}`)")
    return chosen


@pytest.fixture
def test_singularity_image(pytestconfig: pytest.Config) -> Callable[..., Any]:
    """``run(model, image=None)``: ``kipoi test`` of ``model`` inside a SIF (apptainer or
    singularity when on PATH, else squashfuse + bwrap); raises ``SifTestError`` with kipoi's
    output on failure. ``image`` is the SIF's path; by default the model's SIF in the index
    (``model-to-singularity.json``), downloaded into ``$SINGULARITY_PULL_FOLDER`` (else the
    current directory) unless there. Upstream's keyword form
    ``run(singularity_image_folder=..., singularity_image_name=..., model=...)`` works too."""
    from kipoi_containers.sif import get_singularity_image, pull_folder
    from kipoi_containers.sif import test_singularity_image as run_test

    def run(
        model: str | None = None,
        image: str | os.PathLike[str] | None = None,
        *,
        singularity_image_folder: str | os.PathLike[str] | None = None,
        singularity_image_name: str | os.PathLike[str] | None = None,
    ) -> Any:
        if model is None:
            raise TypeError("missing the `model` argument")
        folder: str | os.PathLike[str]
        name: str | os.PathLike[str]
        if image is not None:
            if singularity_image_name is not None:
                raise TypeError("pass `image` or `singularity_image_name`, not both")
            folder, name = Path(image).parent, Path(image).name
        elif singularity_image_name is not None:
            folder, name = pull_folder(singularity_image_folder), singularity_image_name
        else:
            folder = pull_folder(singularity_image_folder)
            name = get_singularity_image(folder, _index(pytestconfig), model)
        return run_test(folder, name, model, zoo=_zoo(pytestconfig))

    return run
