"""A CI run cannot turn green by skipping: under ``CI`` (or ``KIPOI_REQUIRE_DOCKER=1``) a test
whose requirement is missing fails naming it; elsewhere it skips with the same reason.

Each case runs pytest in a subprocess on a throwaway test file that uses the real fixtures of
tests/conftest.py, in an environment where the requirement is really missing (an engine address
with no daemon, a PATH without the squashfs tools, a shared/ that does not exist), and reads the
outcome of each test from pytest's JUnit XML report."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Dict, Optional, Tuple

import pytest

from .conftest import REPO
from .requirements import strict_reason

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


def run_probe(tmp_path: Path, env: Dict[str, str], source: str = PROBE, *args: str) -> Dict[str, Tuple[str, str]]:
    """Run ``source`` as a test file under pytest with ``env`` added to a clean environment;
    ``{test name: (outcome, message)}`` with outcome passed/failed/error/skipped."""
    (tmp_path / "pytest.ini").write_text("[pytest]\n")  # this dir is the rootdir: no project config
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["tests.conftest"]\n')
    (tmp_path / "test_probe.py").write_text(source)
    report = tmp_path / "report.xml"
    base = {k: v for k, v in os.environ.items() if k not in ("CI", "KIPOI_REQUIRE_DOCKER", "PYTEST_ADDOPTS")}
    base["PYTHONPATH"] = os.pathsep.join([str(REPO), base.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rfEs", f"--junitxml={report}", "test_probe.py", *args],
        cwd=tmp_path, env={**base, **env}, capture_output=True, text=True, timeout=240,
    )
    if not report.is_file():
        pytest.fail(f"the probe run wrote no report (exit {out.returncode}):\n{out.stdout}\n{out.stderr}")
    outcomes: Dict[str, Tuple[str, str]] = {}
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
def missing_everything(tmp_path: Path) -> Dict[str, str]:
    """No daemon at DOCKER_HOST, no squashfs tools, git, htpasswd nor curl on PATH, no shared/."""
    return {
        "DOCKER_HOST": NO_DAEMON,
        "PATH": path_with_only(tmp_path, "docker"),
        "KIPOI_SHARED_DIR": str(tmp_path / "no-shared-here"),
    }


def expected_reasons(tmp_path: Path) -> Dict[str, str]:
    return {
        "test_docker": f"the Docker Engine is not usable at {NO_DAEMON}"
        if shutil.which("docker") is None
        else f"the Docker Engine is not reachable at {NO_DAEMON} (docker info: ",
        "test_squashfs": "the squashfs toolset is missing: `mksquashfs`, `unsquashfs`, `squashfuse`, `bwrap` not found on PATH",
        "test_shared": f"the project's shared/ directory is missing: `{tmp_path / 'no-shared-here'}` does not exist",
        "test_tiny_zoo": "git is missing: `git` not found on PATH",
        "test_registry": "`htpasswd`, `curl` not found",
        "test_zoo_metadata": "the project's shared/fixtures is missing: "
        f"`{tmp_path / 'no-shared-here' / 'fixtures' / 'kipoi-models-metadata'}` does not exist",
        "test_zenodo_fixtures": f"the project's shared/fixtures is missing: `{tmp_path / 'no-shared-here' / 'fixtures' / 'sif'}`",
        "test_in_the_body": "the probe's widget is missing: there is none: get one",
    }


@pytest.mark.parametrize("strict", [{"CI": "true"}, {"CI": "1"}, {"KIPOI_REQUIRE_DOCKER": "1"}], ids=["CI=true", "CI=1", "REQUIRE"])
def test_missing_requirements_fail_under_ci(tmp_path: Path, missing_everything: Dict[str, str], strict: Dict[str, str]) -> None:
    outcomes = run_probe(tmp_path, {**missing_everything, **strict})
    variable = next(iter(strict))
    for test, reason in expected_reasons(tmp_path).items():
        outcome, message = outcomes[test]
        # a fixture's failure is an error at set-up; one in the test body a failure
        assert outcome == ("failed" if test in ("test_in_the_body", "test_zoo_metadata", "test_zenodo_fixtures") else "error"), (
            test, outcome, message,
        )
        assert reason in message, (test, message)
        assert f"or unset {variable} to skip" in message, (test, message)


@pytest.mark.parametrize("lenient", [{}, {"CI": ""}, {"CI": "false"}, {"CI": "0"}], ids=["unset", "empty", "false", "0"])
def test_missing_requirements_skip_outside_ci(tmp_path: Path, missing_everything: Dict[str, str], lenient: Dict[str, str]) -> None:
    outcomes = run_probe(tmp_path, {**missing_everything, **lenient})
    for test, reason in expected_reasons(tmp_path).items():
        outcome, message = outcomes[test]
        assert outcome == "skipped", (test, outcome, message)
        assert reason in message, (test, message)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, None), ("", None), ("0", None), ("false", None), ("False", None), ("true", "CI=true"), ("1", "CI=1"),
     ("yes", "CI=yes")],
)
def test_what_counts_as_ci(monkeypatch: pytest.MonkeyPatch, value: Optional[str], expected: Optional[str]) -> None:
    monkeypatch.delenv("KIPOI_REQUIRE_DOCKER", raising=False)
    if value is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", value)
    assert strict_reason() == expected
