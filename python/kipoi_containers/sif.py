"""Singularity images (SIF) without apptainer: convert, inspect, verify, run, test, download.

The engine does the work (``kipoi_containers._engine.sif_*``); this module gives it
upstream's names and signatures, so ``singularityhelper`` can delegate in one line each:

- :func:`build_singularity_image` converts straight from the local Docker Engine (no push
  and ``singularity pull``); the SIF is deterministic for the same image.
- :func:`test_singularity_image` runs ``kipoi test`` inside the SIF — with apptainer or
  singularity when on ``PATH``, else with squashfuse + bwrap — against a zoo checkout
  (``zoo=`` or ``$KIPOI_MODEL_REPO`` naming a directory; read-only, no network) or, like
  upstream, ``--source=kipoi``. A failure raises :class:`~kipoi_containers.errors.SifTestError`
  (a ``ValueError``, as upstream raised) with kipoi's log tail.
- :func:`get_singularity_image` downloads the index entry's file (md5 checked while
  writing; a partial file is resumed; the file appears atomically) into the folder, or
  ``$SINGULARITY_PULL_FOLDER`` when the folder is ``None``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

from . import _engine
from ._engine import ModelTestResult

__all__ = [
    "PULL_FOLDER_ENV",
    "RunResult",
    "build_singularity_image",
    "convert",
    "download",
    "get_singularity_image",
    "inspect",
    "pull_folder",
    "run",
    "singularity_entry",
    "test_singularity_image",
    "verify",
]

logger = logging.getLogger("kipoi_containers.sif")

PathType = Union[str, "os.PathLike[str]"]

#: Where SIFs are downloaded when no folder is given (as singularity's own variable).
PULL_FOLDER_ENV = "SINGULARITY_PULL_FOLDER"


@dataclass(frozen=True)
class RunResult:
    """What a command run inside a SIF did."""

    exit_code: int
    """The exit code; 128 + N when killed by signal N; -1 when killed for its time limit."""
    timed_out: bool
    tail: str
    """The last lines of its output (empty when not captured)."""
    runner: str
    """``apptainer``, ``singularity`` or ``bwrap``."""
    seconds: float


# ----------------------------------------------------------------------------- upstream API


def build_singularity_image(
    name_of_docker_image: str,
    singularity_image_name: str,
    singularity_image_folder: PathType,
    *,
    model_group: str | None = None,
    zoo_commit: str | None = None,
) -> str:
    """Convert the local Docker image ``name_of_docker_image`` into
    ``singularity_image_folder/singularity_image_name``; returns that path (as upstream, a
    string). ``model_group`` and ``zoo_commit`` are recorded in the SIF's labels."""
    folder = Path(singularity_image_folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = f"{os.fspath(singularity_image_folder)}/{singularity_image_name}"
    logger.info("Building %s from %s", singularity_image_name, name_of_docker_image)
    convert(name_of_docker_image, path, model_group=model_group, zoo_commit=zoo_commit)
    return path


def test_singularity_image(
    singularity_image_folder: PathType,
    singularity_image_name: PathType,
    model: str,
    *,
    zoo: PathType | None = None,
    timeout: float | None = None,
) -> ModelTestResult:
    """Run ``kipoi test <model>`` inside ``singularity_image_folder/singularity_image_name``.

    With a zoo checkout (``zoo``, else ``$KIPOI_MODEL_REPO`` naming a directory) the test
    runs ``--source=dir`` against exactly it, read-only and without network; otherwise
    upstream's ``--source=kipoi``. Raises :class:`~kipoi_containers.errors.SifTestError`
    with kipoi's log tail when the test fails; returns the result when it passes."""
    from .dockerhelper import zoo_dir

    path = Path(singularity_image_folder) / Path(singularity_image_name)
    logger.info("Testing %s with %s", model, path)
    return _engine.sif_test_model(path, model, zoo_dir=zoo_dir(zoo), timeout=timeout, check=True)


test_singularity_image.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


def get_singularity_image(
    singularity_image_folder: PathType | None,
    singularity_image_dict: Any,
    model_or_model_group: str,
) -> Path:
    """Download the SIF of ``model_or_model_group`` into the folder (``None``:
    ``$SINGULARITY_PULL_FOLDER``, else the current directory) unless it is there; returns
    its file name. The entry is the index's longest ``/``-boundary prefix key
    (:func:`singularity_entry`); the md5 is checked while downloading (a mismatch keeps
    nothing and raises ``ChecksumMismatchError``), an interrupted download is resumed."""
    entry = singularity_entry(singularity_image_dict, model_or_model_group)
    image_name = Path(f"{entry['name']}.sif")
    folder = pull_folder(singularity_image_folder)
    target = folder / image_name
    if not target.exists():
        folder.mkdir(parents=True, exist_ok=True)
        logger.info("Downloading %s into %s", image_name, folder)
        download(entry["url"], target, md5=entry.get("md5") or None)
    return image_name


# ----------------------------------------------------------------------------- helpers


def pull_folder(folder: PathType | None = None) -> Path:
    """``folder``, else ``$SINGULARITY_PULL_FOLDER``, else the current directory (the
    engine's rule, ``src/config.rs``)."""
    return _engine.config_sif_folder(folder)


def singularity_entry(singularity_image_dict: Any, model_or_model_group: str) -> dict[str, str]:
    """The index entry (``url``, ``name``, ``md5``) responsible for a model or group: the
    key itself, else the longest key that is a ``/``-boundary prefix
    (``_engine.longest_prefix_key``). Accepts the mapping or a ``kipoi_containers.Index``;
    raises ``KeyError`` when no key covers it."""
    finder = getattr(singularity_image_dict, "singularity_for_model", None)
    if callable(finder):
        found = finder(model_or_model_group)
        if found is None:
            raise KeyError(model_or_model_group)
        return dict(found)
    mapping: Mapping[str, Mapping[str, str]] = singularity_image_dict
    key = _engine.longest_prefix_key(list(mapping), model_or_model_group)
    if key is None:
        raise KeyError(model_or_model_group)
    return dict(mapping[key])


def convert(
    image: str,
    out: PathType,
    *,
    model_group: str | None = None,
    zoo_commit: str | None = None,
    source_date_epoch: int | None = None,
    level: int | None = None,
) -> dict[str, Any]:
    """Convert the local Docker image ``image`` into the SIF ``out``; returns the report
    (``md5``, ``size``, ``source_digest``, ``seconds``, ...). Raises ``SifError``."""
    return _engine.sif_convert(
        image,
        os.fspath(out),
        model_group=model_group,
        zoo_commit=zoo_commit,
        source_date_epoch=source_date_epoch,
        level=level,
    )


def inspect(path: PathType) -> dict[str, Any]:
    """Header, descriptor table, deffile and labels of a SIF (see ``_engine.sif_inspect``)."""
    return _engine.sif_inspect(os.fspath(path))


def verify(path: PathType) -> None:
    """Raise ``SifError`` naming the problem unless ``path`` is a valid SIF."""
    _engine.sif_verify(os.fspath(path))


def run(
    sif: PathType,
    command: Sequence[str],
    *,
    binds: Sequence[tuple[PathType, str]] = (),
    network: bool = True,
    workdir: str | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
    capture: bool = True,
    runner: str | None = None,
) -> RunResult:
    """Run ``command`` inside ``sif`` (apptainer/singularity when on PATH, else squashfuse +
    bwrap; ``runner`` or ``$KIPOI_SIF_RUNNER`` forces one, and ``runner="auto"`` takes the
    first available whatever the variable says) with private ``/tmp`` and
    ``$HOME``, ``binds`` read-only, and no network unless ``network``. Always unmounted
    afterwards, also on Ctrl-C (``KeyboardInterrupt``). A failing command is a result, not
    an error."""
    out = _engine.sif_run(
        os.fspath(sif),
        list(command),
        binds=[(os.fspath(src), dest) for src, dest in binds],
        isolate_network=not network,
        workdir=workdir,
        env=sorted((env or {}).items()),
        timeout=timeout,
        capture=capture,
        runner=runner,
    )
    return RunResult(**out)


def download(url: str, dest: PathType, *, md5: str | None = None) -> dict[str, Any]:
    """Download ``url`` to ``dest`` through ``<dest>.part`` (resumed when present),
    checking ``md5`` while writing; the file appears atomically (see
    ``_engine.sif_download``)."""
    return _engine.sif_download(url, os.fspath(dest), md5=md5)
