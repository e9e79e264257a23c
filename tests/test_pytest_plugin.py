"""The pytest plugin: options, parametrisation, and coexistence with suites that define
the same options in their own conftest.py (like upstream's test-containers)."""

from __future__ import annotations

import shutil
import textwrap

import pytest

from .conftest import CONTAINER_INFO

pytest_plugins = ["pytester"]

UPSTREAM_CONFTEST = '''
def pytest_addoption(parser):
    parser.addoption("--model", action="append", default=[], help="Model name(s)")
    parser.addoption("--modelgroup", action="append", default=[], help="Model group name(s)")
    parser.addoption("--image", action="append", default=[], help="Image name")
'''


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    shutil.copytree(CONTAINER_INFO, pytester.path / "container-info")
    return pytester


def test_plugin_options_and_parametrisation(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        test_x=textwrap.dedent(
            """
            def test_models(kipoi_model):
                assert kipoi_model in ("Basset", "HAL", "MMSplice/mtsplice")

            def test_pairs(kipoi_image_model):
                image, model = kipoi_image_model
                assert image.startswith("kipoi/kipoi-docker:")
            """
        )
    )
    result = suite.runpytest_subprocess(
        "--model=Basset,HAL",
        "--model=MMSplice/mtsplice",
        "--image=kipoi/kipoi-docker:sharedpy3keras2tf2",
        "--image=kipoi/kipoi-docker:mmsplice-slim",
        "-v",
    )
    result.assert_outcomes(passed=3 + 11 + 4)
    out = result.stdout.str()
    assert "test_models[MMSplice/mtsplice]" in out
    # A shared image tests one model per group; the slim tag uses the full image's list.
    assert "test_pairs[kipoi/kipoi-docker:sharedpy3keras2tf2::Basset]" in out
    # mmsplice serves four keys of one group: its own image, every model is tested.
    assert "test_pairs[kipoi/kipoi-docker:mmsplice-slim::MMSplice/deltaLogitPSI]" in out


def test_modelgroup_filters_an_image(suite: pytest.Pytester) -> None:
    suite.makepyfile(test_x="def test_pairs(kipoi_image_model):\n    pass\n")
    result = suite.runpytest_subprocess(
        "--image=kipoi/kipoi-docker:sharedpy3keras2tf2", "--modelgroup=HAL,Basset", "-v"
    )
    result.assert_outcomes(passed=2)


def test_upstream_conftest_defining_the_same_options_still_runs(suite: pytest.Pytester) -> None:
    suite.makeconftest(UPSTREAM_CONFTEST)
    suite.makepyfile(
        test_x=textwrap.dedent(
            """
            def test_option_values(pytestconfig):
                assert pytestconfig.getoption("model") == ["Basset"]
                assert pytestconfig.getoption("image") == []

            def test_plugin_still_parametrises(kipoi_model):
                assert kipoi_model == "Basset"
            """
        )
    )
    result = suite.runpytest_subprocess("--model=Basset")
    result.assert_outcomes(passed=2)
    assert "already added" not in result.stderr.str()


def test_singularity_fixture_takes_upstreams_keywords(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        test_x=textwrap.dedent(
            """
            import pytest
            from kipoi_containers.errors import SifError

            def test_sif(test_singularity_image, tmp_path):
                # upstream's keyword form reaches the SIF runner, which names the missing file
                with pytest.raises(SifError, match="nope.sif"):
                    test_singularity_image(
                        singularity_image_folder=str(tmp_path), singularity_image_name="nope.sif", model="Basset"
                    )
                with pytest.raises(SifError, match="other.sif"):
                    test_singularity_image("Basset", tmp_path / "other.sif")
                with pytest.raises(TypeError):
                    test_singularity_image("Basset", "a.sif", singularity_image_name="b.sif")

            def test_model_without_a_sif_in_the_index(test_singularity_image):
                with pytest.raises(KeyError):
                    test_singularity_image("NoSuchGroup/model")
            """
        )
    )
    suite.runpytest_subprocess().assert_outcomes(passed=2)


def test_unknown_image_is_a_usage_error(suite: pytest.Pytester) -> None:
    suite.makepyfile(test_x="def test_pairs(kipoi_image_model):\n    pass\n")
    result = suite.runpytest_subprocess("--image=kipoi/kipoi-docker:nope")
    assert result.ret != 0
    assert "image `kipoi/kipoi-docker:nope` is not in docker-to-model.json" in result.stderr.str() + result.stdout.str()
