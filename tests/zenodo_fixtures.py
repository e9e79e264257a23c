"""Fixtures for the Zenodo tests: a seeded emulator (spec C.4), a client pointed at it, and
``singularityhelper`` redirected to it. Import the fixtures by name into a test module."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator

import pytest

from tests.emulators.zenodo import ZenodoEmulator
from tests.requirements import SHARED_FIX, require, shared_path, shared_problem

SHARED = shared_path()
SIF_DIR = SHARED / "fixtures" / "sif"
SINGULARITY_INDEX = SHARED / "fixtures" / "container-info" / "model-to-singularity.json"
BUSYBOX_MD5 = "3d5d20b1c64ffb55c86ec35623e8dfee"
TINY_MD5 = "0a85bfc85e749894210d1e53b4add11d"

#: A long random token, so finding it in a URL or a message is never a coincidence.
TOKEN = "zenodo-test-" + secrets.token_hex(20)


def _require_shared() -> None:
    """The SIF fixtures and their index in shared/fixtures (fails under CI, else skips)."""
    for parts in (("fixtures", "sif"), ("fixtures", "container-info", "model-to-singularity.json")):
        require("the project's shared/fixtures", shared_problem(*parts), SHARED_FIX)


def singularity_index() -> dict:
    _require_shared()
    return json.loads(SINGULARITY_INDEX.read_text())


def start_emulator(behaviour: str = "rdm", **kwargs: object) -> ZenodoEmulator:
    _require_shared()
    emu = ZenodoEmulator(TOKEN, behaviour=behaviour, **kwargs).start()  # type: ignore[arg-type]
    emu.seed_kipoi(singularity_index(), SIF_DIR)
    return emu


def _finish(emu: ZenodoEmulator) -> None:
    try:
        assert emu.token_in_url_violations == [], emu.token_in_url_violations
        assert emu.server_errors == [], emu.server_errors[0]
    finally:
        emu.stop()


@pytest.fixture(params=["rdm", "legacy"])
def zenodo(request: pytest.FixtureRequest) -> Iterator[ZenodoEmulator]:
    """A seeded emulator, once per behaviour; asserts afterwards that no URL carried the
    token and that the emulator raised nothing."""
    emu = start_emulator(request.param)
    yield emu
    _finish(emu)


@pytest.fixture
def zenodo_rdm() -> Iterator[ZenodoEmulator]:
    emu = start_emulator("rdm")
    yield emu
    _finish(emu)


def make_client(emu: ZenodoEmulator, token: str | None = TOKEN, **kwargs: object):
    from kipoi_containers import zenodoclient

    options = {"initial_backoff": 0.05, "max_backoff": 0.2, "max_retries": 4}
    options.update(kwargs)
    return zenodoclient.Client(emu.url, token, **options)  # type: ignore[arg-type]


@pytest.fixture
def helper_env(monkeypatch: pytest.MonkeyPatch):
    """``(point_at(emulator) -> Client)``: sets ``ZENODO_URL``/``ZENODO_ACCESS_TOKEN`` to the
    emulator, which ``singularityhelper.ZENODO_BASE``/``ZENODO_DEPOSITION`` then reflect
    (they are computed from ``ZENODO_URL`` on access, so nothing is patched on the module)."""

    def point_at(emu: ZenodoEmulator):
        monkeypatch.setenv("ZENODO_URL", emu.url)
        monkeypatch.setenv("ZENODO_ACCESS_TOKEN", TOKEN)
        return make_client(emu)

    return point_at
