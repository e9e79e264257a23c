"""A CI run cannot turn green by skipping: under ``CI`` (or ``KIPOI_REQUIRE_DOCKER=1``) a test
whose requirement is missing fails naming it; elsewhere it skips with the same reason.

Each case runs pytest in a subprocess on a throwaway test file that uses the real fixtures of
tests/conftest.py, in an environment where the requirement is really missing (an engine address
with no daemon, a PATH without the squashfs tools, a shared/ that does not exist), and reads the
outcome of each test from pytest's JUnit XML report."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from .conftest import REPO, SLOW_SETUP_BUDGET
from .docker_fixtures import REGISTRY_BIN
from .requirements import SETUP_HINT, SQUASHFS_COMMANDS, require, strict_reason

PROBE = '''
from tests.requirements import require
from tests.zoo_repo import ZooRepo
from tests.zenodo_fixtures import singularity_index


def test_docker(docker_engine):
    pass


def test_squashfs(squashfs_tools):
    pass


def test_shared(shared_dir):
    pass


def test_tiny_zoo(tiny_zoo):
    pass


def test_registry(registry):
    pass


def test_zoo_metadata(tmp_path):
    ZooRepo.from_metadata(tmp_path / "models")


def test_zenodo_fixtures():
    singularity_index()


def test_in_the_body():
    require("the probe's widget", "is missing: there is none", "get one")
'''

NO_DAEMON = "unix:///nonexistent/kipoi-ci-honesty.sock"


def run_probe(tmp_path: Path, env: dict[str, str], source: str = PROBE, *args: str) -> dict[str, tuple[str, str]]:
    """Run ``source`` as a test file under pytest with ``env`` added to a clean environment;
    ``{test name: (outcome, message)}`` with outcome passed/failed/error/skipped."""
    (tmp_path / "pytest.ini").write_text("[pytest]\n")  # this dir is the rootdir: no project config
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["tests.conftest"]\n')
    (tmp_path / "test_probe.py").write_text(source)
    report = tmp_path / "report.xml"
    base = {k: v for k, v in os.environ.items() if k not in ("CI", "KIPOI_REQUIRE_DOCKER", "PYTEST_ADDOPTS")}
    base["PYTHONPATH"] = os.pathsep.join([str(REPO), base.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rfEs", f"--junitxml={report}"]
    out = subprocess.run(
        [*command, "test_probe.py", *args],
        cwd=tmp_path, env={**base, **env}, capture_output=True, text=True, timeout=240,
    )
    if not report.is_file():
        pytest.fail(f"the probe run wrote no report (exit {out.returncode}):\n{out.stdout}\n{out.stderr}")
    outcomes: dict[str, tuple[str, str]] = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        outcome, message = "passed", ""
        for tag, name in (("error", "error"), ("failure", "failed"), ("skipped", "skipped")):
            found = case.find(tag)
            if found is not None:
                outcome, message = name, found.get("message", "") + "\n" + (found.text or "")
                break
        outcomes[case.get("name", "?")] = (outcome, message)
    return outcomes


def path_with_only(tmp_path: Path, *commands: str) -> str:
    """A PATH holding links to ``commands`` only (those that exist here)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in commands:
        found = shutil.which(name)
        if found:
            (bin_dir / name).symlink_to(found)
    return str(bin_dir)


@pytest.fixture
def missing_everything(tmp_path: Path) -> dict[str, str]:
    """No daemon at DOCKER_HOST, no squashfs tools, git, htpasswd nor curl on PATH, no shared/."""
    return {
        "DOCKER_HOST": NO_DAEMON,
        "PATH": path_with_only(tmp_path, "docker"),
        "KIPOI_SHARED_DIR": str(tmp_path / "no-shared-here"),
    }


def expected(tmp_path: Path) -> dict[str, tuple[str, str]]:
    """``{probe test: (outcome under CI, part of the reason)}``. A requirement found missing by a
    fixture fails the test at set-up, which pytest reports as an error; in the body, a failure."""
    shared = tmp_path / "no-shared-here"
    if shutil.which("docker") is None:
        docker = f"the Docker Engine is not usable at {NO_DAEMON}: the `docker` CLI is not on PATH"
    else:
        docker = f"the Docker Engine is not reachable at {NO_DAEMON} (docker info: "
    squashfs = "`mksquashfs`, `unsquashfs`, `squashfuse`, `bwrap` not found on PATH"
    return {
        "test_docker": ("error", docker),
        "test_squashfs": ("error", f"the squashfs toolset is missing: {squashfs}"),
        "test_shared": ("error", f"the project's shared/ directory is missing: `{shared}` does not exist"),
        "test_tiny_zoo": ("error", "git is missing: `git` not found on PATH"),
        "test_registry": ("error", "`htpasswd`, `curl` not found"),
        "test_zoo_metadata": ("failed", f"shared/fixtures is missing: `{shared / 'fixtures/kipoi-models-metadata'}`"),
        "test_zenodo_fixtures": ("failed", f"shared/fixtures is missing: `{shared / 'fixtures' / 'sif'}`"),
        "test_in_the_body": ("failed", "the probe's widget is missing: there is none: get one"),
    }


STRICT = [{"CI": "true"}, {"CI": "1"}, {"KIPOI_REQUIRE_DOCKER": "1"}]
LENIENT = [{}, {"CI": ""}, {"CI": "false"}, {"CI": "0"}]


@pytest.mark.parametrize("strict", STRICT, ids=["CI=true", "CI=1", "KIPOI_REQUIRE_DOCKER=1"])
def test_missing_requirements_fail_under_ci(
    tmp_path: Path, missing_everything: dict[str, str], strict: dict[str, str]
) -> None:
    outcomes = run_probe(tmp_path, {**missing_everything, **strict})
    variable = next(iter(strict))
    for test, (outcome, reason) in expected(tmp_path).items():
        got, message = outcomes[test]
        assert got == outcome, (test, got, message)
        assert reason in message, (test, message)
        assert f"or unset {variable} to skip" in message, (test, message)


@pytest.mark.parametrize("lenient", LENIENT, ids=["unset", "empty", "false", "0"])
def test_missing_requirements_skip_outside_ci(
    tmp_path: Path, missing_everything: dict[str, str], lenient: dict[str, str]
) -> None:
    outcomes = run_probe(tmp_path, {**missing_everything, **lenient})
    for test, (_, reason) in expected(tmp_path).items():
        got, message = outcomes[test]
        assert got == "skipped", (test, got, message)
        assert reason in message, (test, message)
        assert "to skip" not in message, (test, message)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, None), ("", None), ("0", None), ("false", None), ("False", None), ("true", "CI=true"), ("1", "CI=1"),
     ("yes", "CI=yes")],
)
def test_what_counts_as_ci(monkeypatch: pytest.MonkeyPatch, value: str | None, expected: str | None) -> None:
    monkeypatch.delenv("KIPOI_REQUIRE_DOCKER", raising=False)
    if value is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", value)
    assert strict_reason() == expected


SLOW_PROBE = '''
import os

import pytest


@pytest.fixture(scope="session")
def base_image():  # stands in for the real one: only its name matters here
    return "probe"


def test_a_first(base_image, request):
    assert request.node.get_closest_marker("timeout").args[0] == float(os.environ["EXPECT_FIRST"])


def test_b_second(base_image, request):
    assert request.node.get_closest_marker("timeout") is None


@pytest.mark.timeout(50)
def test_c_own_timeout(request):
    assert request.node.get_closest_marker("timeout").args[0] == 50
'''


def test_first_test_needing_the_base_image_gets_its_build_budget(tmp_path: Path) -> None:
    import importlib.util

    plugin = importlib.util.find_spec("pytest_timeout")
    require("pytest-timeout", None if plugin else "is not installed", f"{SETUP_HINT} (pip install pytest-timeout)")
    default = 7
    env = {"EXPECT_FIRST": str(float(default + SLOW_SETUP_BUDGET["base_image"]))}
    outcomes = run_probe(tmp_path, env, SLOW_PROBE, f"--timeout={default}")
    assert outcomes == {
        "test_a_first": ("passed", ""),
        "test_b_second": ("passed", ""),
        "test_c_own_timeout": ("passed", ""),
    }


def _quoted(text: str) -> set[str]:
    return set(re.findall(r'"([^"]+)"', text))


def test_setup_installs_what_the_tests_require() -> None:
    setup = (REPO / "scripts" / "setup.sh").read_text()
    pyproject = (REPO / "pyproject.toml").read_text()
    python_packages = re.search(r"^PYTHON_PACKAGES=\((.*?)^\)", setup, re.M | re.S)
    debian_tools = re.search(r"^DEBIAN_TOOLS=\((.*?)^\)", setup, re.M | re.S)
    test_extra = re.search(r"^test = \[(.*)\]$", pyproject, re.M)
    build = re.search(r"^requires = \[(.*)\]$", pyproject, re.M)
    assert python_packages and debian_tools and test_extra and build, "the lists moved: update this test"
    # the same Python packages as the `test` extra plus the build backend
    assert _quoted(python_packages.group(1)) == _quoted(test_extra.group(1)) | _quoted(build.group(1))
    # every command a fixture requires is installed by setup.sh
    tools = {entry.split(":", 1)[0] for entry in debian_tools.group(1).split()}
    required = {*SQUASHFS_COMMANDS, "git", "debootstrap", "htpasswd", "curl", "chattr", REGISTRY_BIN}
    assert required <= tools, required - tools
