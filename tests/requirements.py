"""What a test needs from the machine, and one rule for when it is missing.

A test or fixture that needs something outside the repository (the Docker Engine, the local
registry, the squashfs tools, debootstrap, git, the project's ``shared/`` fixtures) states it
with :func:`require`::

    from tests.requirements import missing_commands, require

    require("the squashfs toolset", missing_commands("mksquashfs", "unsquashfs"),
            fix="run `make setup` (apt-get install squashfs-tools)")

When ``problem`` is ``None`` nothing happens. Otherwise the test **fails** under CI (``CI`` set
to anything but empty, ``0`` or ``false``, as GitHub Actions and ``.ci/run`` do) or with
``KIPOI_REQUIRE_DOCKER=1``, and is skipped elsewhere; both with the message
``"{what} {problem}: {fix}"``. So a CI run never turns green by skipping what it was meant to
test. Called from a fixture, pytest reports the failure as an error in setup (``E``); called
from a test body, as a failure (``F``); either makes the run fail.

The probes below return ``None`` or the problem, for ``require``:
:func:`missing_commands`, :func:`docker_problem`, :func:`squashfs_problem`, :func:`shared_problem`.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

#: How to install what ``scripts/setup.sh`` installs.
SETUP_HINT = "run `make setup` (scripts/setup.sh)"

#: The environment variable that points the tests at the project's ``shared/`` directory when
#: it is not beside the checkout (CI lays it beside the clone: ``../shared``).
SHARED_ENV = "KIPOI_SHARED_DIR"


def strict_reason() -> str | None:
    """Why a missing requirement fails instead of skipping (``"CI=true"``,
    ``"KIPOI_REQUIRE_DOCKER=1"``), or ``None`` when it may skip."""
    ci = os.environ.get("CI", "")
    if ci.strip().lower() not in ("", "0", "false"):
        return f"CI={ci}"
    if os.environ.get("KIPOI_REQUIRE_DOCKER", "").strip() == "1":
        return "KIPOI_REQUIRE_DOCKER=1"
    return None


def require(what: str, problem: str | None, fix: str = "") -> None:
    """Fail (under CI or ``KIPOI_REQUIRE_DOCKER=1``) or skip (elsewhere) when ``problem`` is set.

    ``what`` names the requirement (``"the Docker Engine"``); ``problem`` continues the
    sentence (``"is not reachable at unix:///x (docker info: ...)"``) or is ``None``;
    ``fix`` says how to get it (``"start it"``).
    """
    if problem is None:
        return
    message = f"{what} {problem}"
    if fix:
        message += f": {fix}"
    strict = strict_reason()
    if strict is not None:
        variable = strict.split("=", 1)[0]
        pytest.fail(f"{message}, or unset {variable} to skip", pytrace=False)
    pytest.skip(message)


# ---------------------------------------------------------------------------------------------
# probes: None when all is well, else the problem (a phrase continuing "<what> ...")


def missing_commands(*names: str) -> str | None:
    """``"is missing: `a`, `b` not found on PATH"`` for the commands not found; a name with a
    ``/`` is an absolute path that must be an executable file (for scripts that run it so)."""
    missing = [n for n in names if shutil.which(n) is None]
    if not missing:
        return None
    where = " on PATH" if all("/" not in n for n in missing) else " (on PATH, or at that path)"
    return "is missing: " + ", ".join(f"`{n}`" for n in missing) + " not found" + where


def docker_address() -> str:
    """Where the docker CLI and the engine look for the daemon."""
    return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


def docker_problem() -> str | None:
    """Whether ``docker info`` answers (the CLI and the engine at ``DOCKER_HOST``)."""
    if shutil.which("docker") is None:
        return f"is not usable at {docker_address()}: the `docker` CLI is not on PATH"
    try:
        out = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        return f"is not reachable at {docker_address()} (`docker info` did not answer within 30 s)"
    if out.returncode != 0:
        last = (out.stderr.strip().splitlines() or ["no message"])[-1]
        return f"is not reachable at {docker_address()} (docker info: {last})"
    return None


def shared_path() -> Path:
    """The project's ``shared/`` directory: ``$KIPOI_SHARED_DIR``, else ``../shared`` beside the
    checkout. Only tests read it; nothing user-facing may."""
    override = os.environ.get(SHARED_ENV)
    return Path(override) if override else REPO.parent / "shared"


def shared_problem(*parts: str) -> str | None:
    """Whether ``shared_path()/parts...`` exists."""
    path = shared_path().joinpath(*parts)
    if path.exists():
        return None
    return f"is missing: `{path}` does not exist"


SHARED_FIX = f"lay the project's shared/ beside the checkout, or set {SHARED_ENV} to it"

#: The squashfs/FUSE/sandbox tools of the SIF path and the Debian packages that hold them.
SQUASHFS_COMMANDS = ("mksquashfs", "unsquashfs", "squashfuse", "bwrap")
SQUASHFS_PACKAGES = "squashfs-tools squashfuse bubblewrap fuse3"
SQUASHFS_FIX = f"{SETUP_HINT}, i.e. apt-get install {SQUASHFS_PACKAGES}; in a container also pass --device /dev/fuse"


def _run(cmd: list, timeout: float = 30) -> str | None:
    """None when ``cmd`` exits 0, else what went wrong (its last stderr line)."""
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return f"`{' '.join(map(str, cmd))}` did not finish within {timeout:g} s"
    if out.returncode != 0:
        last = (out.stderr.strip().splitlines() or out.stdout.strip().splitlines() or ["no message"])[-1]
        return f"`{' '.join(map(str, cmd))}` exited {out.returncode}: {last}"
    return None


def squashfs_problem() -> str | None:
    """Whether the SIF tools work here: the commands are on PATH, ``/dev/fuse`` is a usable
    character device, a squashfs image made by ``mksquashfs`` mounts with ``squashfuse`` and reads
    back, and ``bwrap`` can start a sandbox."""
    missing = missing_commands(*SQUASHFS_COMMANDS)
    if missing:
        return missing
    fuse = Path("/dev/fuse")
    try:
        if not stat.S_ISCHR(fuse.stat().st_mode):
            return "is not usable: /dev/fuse is not a character device"
    except OSError:
        return "is not usable: /dev/fuse does not exist"
    if not os.access(fuse, os.R_OK | os.W_OK):
        return "is not usable: /dev/fuse is not readable and writable by this user"
    with tempfile.TemporaryDirectory(prefix="kipoi-squashfs-probe-") as tmp:
        src, image, mnt = Path(tmp, "src"), Path(tmp, "probe.sqfs"), Path(tmp, "mnt")
        src.mkdir()
        mnt.mkdir()
        (src / "probe").write_text("kipoi\n")
        problem = _run(["mksquashfs", src, image, "-quiet", "-noappend", "-no-progress"])
        if problem:
            return f"is not usable: {problem}"
        problem = _run(["squashfuse", image, mnt], timeout=10)
        if problem:
            return f"is not usable: {problem}"
        try:
            if (mnt / "probe").read_text() != "kipoi\n":
                return "is not usable: a squashfuse mount did not read back what mksquashfs wrote"
        finally:
            unmount = ["fusermount3", "-u", mnt] if shutil.which("fusermount3") else ["umount", mnt]
            subprocess.run(unmount, capture_output=True, timeout=10)
    problem = _run(["bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "true"])
    if problem:
        return f"is not usable: {problem}"
    return None
