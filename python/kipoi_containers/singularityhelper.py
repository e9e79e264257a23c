"""Publishing Singularity images on Zenodo (upstream's ``kipoi_containers.singularityhelper``).

Same names, arguments, defaults and result dicts as upstream; the work is done by the
engine (``zenodo::publish`` in Rust), these functions only shape arguments and results.
Differences (upstream was wrong here):

- Every URL is built from the client it is given (``zenodo_client.base_url``), so
  ``Client(base_url=...)`` alone redirects everything, a base URL with a path prefix
  included. ``ZENODO_BASE`` / ``ZENODO_DEPOSITION`` remain as upstream-compatible module
  attributes: they are computed on each access from ``$ZENODO_URL`` (default
  https://zenodo.org) and tell what a ``Client()`` without ``base_url`` talks to; assigning
  them changes nothing the functions do.
- Record ids are read from the ``…/record/<id>/…`` (or ``records``/``depositions``) path
  segment of an index URL, not from a fixed position, so prefixed base URLs work.
- A new version of a record whose draft is already open continues from that draft instead
  of failing (current Zenodo answers 400 "Please remove all files first.").
- Only the file being replaced is deleted from the new version (upstream deleted whatever
  had the name, by the first match); uploads are streamed and md5-checked.
- A failure at any step after the draft exists — or Ctrl-C — deletes that draft (a new
  record's, or the new version's), so no run leaves a draft behind; if the deletion fails
  too, the error says so ("delete it by hand") and carries the draft's id (``draft_id``).
- With ``push=True`` the published file is looked up by name and its checksum compared with
  what was uploaded; a missing file is an error rather than silently empty fields.
- The file name to upload is checked to be one safe path segment before any request
  (``../x.sif`` raises :class:`~kipoi_containers.errors.InvalidNameError`).
- ``get_singularity_image`` resolves a model with the index's longest-prefix rule (the key
  itself, else the longest key that is a ``/``-boundary prefix) and checks the md5 after
  download, keeping nothing on mismatch.
- The record's title and description are decided from the index, not from the image name:
  an image whose keys span two or more top-level groups is a shared environment; one serving
  several keys of one group is that group's image except its other keys (``MMSplice``
  except ``mtsplice``). The index is ``model_group_to_singularity_dict=`` when given (as
  :class:`~kipoi_containers.singularityhandler.SingularityHandler` does), else
  ``container-info/model-to-singularity.json`` (see :mod:`kipoi_containers.paths`) when
  present.

``upload_file`` may be replaced (monkeypatched) as upstream's tests do: the publication then
calls the replacement for the upload step.

Building and running images (``build_singularity_image``, ``test_singularity_image``) use
:mod:`kipoi_containers.sif`: the Docker image is converted to a SIF natively (no apptainer)
and models run with apptainer/singularity when installed, else squashfuse + bubblewrap.
"""

from __future__ import annotations

import logging
import os
import urllib.parse
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Union

from . import _engine, paths, sif
from .zenodoclient import Client

__all__ = [
    "ZENODO_BASE",
    "ZENODO_DEPOSITION",
    "build_singularity_image",
    "cleanup",
    "create_new_deposition",
    "get_deposit",
    "get_singularity_image",
    "push_deposition",
    "push_new_singularity_image",
    "record_id_from_url",
    "singularity_entry_for",
    "test_singularity_image",
    "update_existing_singularity_container",
    "upload_file",
    "upload_metadata",
]

logger = logging.getLogger("kipoi_containers.singularityhelper")

_DEFAULT_BASE = "https://zenodo.org"
_DEPOSITIONS_PATH = "/api/deposit/depositions"

PathLike = Union[str, "os.PathLike[str]"]
SingularityIndex = Mapping[str, Mapping[str, str]]


if TYPE_CHECKING:  # for type checkers and linters; at run time ``__getattr__`` computes them
    ZENODO_BASE: str
    ZENODO_DEPOSITION: str


def _env_base() -> str:
    """``$ZENODO_URL`` (as the engine reads it), else https://zenodo.org; no trailing slash."""
    return (os.environ.get("ZENODO_URL") or "").strip().rstrip("/") or _DEFAULT_BASE


def __getattr__(name: str) -> str:
    """``ZENODO_BASE`` and ``ZENODO_DEPOSITION``, computed from ``$ZENODO_URL`` on access."""
    if name == "ZENODO_BASE":
        return _env_base()
    if name == "ZENODO_DEPOSITION":
        return _env_base() + _DEPOSITIONS_PATH
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | {"ZENODO_BASE", "ZENODO_DEPOSITION"})


def _deposition_url(zenodo_client: Client, deposition_id: int | str) -> str:
    return f"{zenodo_client.deposition_url}/{deposition_id}"


def record_id_from_url(url: str) -> str:
    """The record id of a Zenodo URL such as an index entry's
    ``https://zenodo.org/record/6576723/files/x.sif?download=1`` → ``"6576723"`` (the
    numeric segment after the last ``record``/``records``/``depositions`` segment, wherever
    the base URL puts it). Raises ``ValueError`` when there is none."""
    found = _engine.record_id_from_url(str(url))
    if found is None:
        raise ValueError(f"no Zenodo record id in `{url}` (expected …/record/<id>/files/<name>)")
    return str(found)


def singularity_entry_for(singularity_image_dict: Any, model_or_model_group: str) -> dict[str, str]:
    """The index entry responsible for a model or model group, by the index's rule: the key
    itself, else the longest key that is a ``/``-boundary prefix of it
    (``MMSplice/mtsplice`` → its own entry, ``DeepBind/Homo_sapiens/…`` → ``DeepBind``;
    ``Groupie`` never matches ``Group``). Accepts the dict or a ``kipoi_containers.Index``.
    Raises ``KeyError`` when no key covers it."""
    return sif.singularity_entry(singularity_image_dict, model_or_model_group)


def _default_index() -> dict[str, Any] | None:
    """``model-to-singularity.json`` of the default ``container-info`` directory, if present."""
    path = paths.container_info_dir() / "model-to-singularity.json"
    if not path.is_file():
        return None
    loaded = _engine.load_json(path)
    return loaded if isinstance(loaded, dict) else None


# ----------------------------------------------------------------------------- images


def cleanup(singularity_file_path: PathLike) -> None:
    """Delete a Singularity image file built by :func:`build_singularity_image` (if it is there)."""
    Path(singularity_file_path).unlink(missing_ok=True)


def build_singularity_image(
    name_of_docker_image: str, singularity_image_name: str, singularity_image_folder: PathLike
) -> str:
    """Convert the Docker image into ``singularity_image_folder/singularity_image_name``
    natively (no apptainer, no push-then-pull; pulled from ``$KIPOI_DOCKER_REPO`` first when
    it is not local); returns the path. The same image always gives the same bytes."""
    _engine.ensure_image(name_of_docker_image)
    return sif.build_singularity_image(name_of_docker_image, singularity_image_name, singularity_image_folder)


def test_singularity_image(singularity_image_folder: PathLike, singularity_image_name: str, model: str) -> None:
    """Run ``kipoi test <model>`` inside the image (see :func:`kipoi_containers.sif.test_singularity_image`);
    raises :class:`~kipoi_containers.errors.SifTestError` with kipoi's log tail on failure."""
    sif.test_singularity_image(singularity_image_folder, singularity_image_name, model)


test_singularity_image.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


def get_singularity_image(
    singularity_image_folder: PathLike | None,
    singularity_image_dict: Any,
    model_or_model_group: str,
    zenodo_client: Client | None = None,
) -> Path:
    """Download the image of ``model_or_model_group`` into the folder (``None``:
    ``$SINGULARITY_PULL_FOLDER``) unless present; returns its file name. The md5 is checked
    in the same pass (a mismatch keeps nothing and raises ``ChecksumMismatchError``) and an
    interrupted download resumes. (``zenodo_client`` is accepted for compatibility: index
    URLs are public.)"""
    return sif.get_singularity_image(singularity_image_folder, singularity_image_dict, model_or_model_group)


# ----------------------------------------------------------------------------- depositions


def create_new_deposition(zenodo_client: Client, deposition_id: int | str) -> str:
    """Open a new version of the published deposition; returns the new draft's id (str).

    An already open draft of that record is continued from instead of failing.
    """
    return str(zenodo_client.new_version(deposition_id))


def get_deposit(zenodo_client: Client, deposition_id: int | str) -> dict[str, Any]:
    """The deposition ``deposition_id`` as Zenodo returns it (from the client's Zenodo)."""
    return zenodo_client.get_content(_deposition_url(zenodo_client, deposition_id))


def _bucket_of(url: str, filename: str) -> str:
    """The bucket URL of ``url``: the bucket itself, or (upstream's form) the bucket object
    URL ``{bucket}/{filename}`` with the last segment removed."""
    split = urllib.parse.urlsplit(url)
    path = split.path.rstrip("/")
    head, _, last = path.rpartition("/")
    if head and urllib.parse.unquote(last) == filename:
        return urllib.parse.urlunsplit(split._replace(path=head))
    return url


def upload_file(zenodo_client: Client, url: str, singularity_image_folder: PathLike, filename: str) -> dict[str, Any]:
    """Stream ``singularity_image_folder/filename`` into a deposition's bucket as
    ``filename`` (md5-checked); returns the bucket object.

    ``url`` is the bucket (``links.bucket``) or, as upstream passed it, the bucket object URL
    ``{bucket}/{filename}``; the client adds the (percent-encoded) file name itself."""
    path = Path(singularity_image_folder) / filename
    return zenodo_client.upload_file(_bucket_of(url, filename), filename, path)


_ENGINE_UPLOAD = upload_file

#: ``shared_env`` values of :func:`upload_metadata`, as upstream lists them in its error.
_UPSTREAM_ENV_OPTIONS = "mmsplice, sharedpy3keras2tf1, sharedpy3keras2tf2, sharedpy3keras1.2"


def upload_metadata(
    zenodo_client: Client,
    url: str,
    model_group: str = "",
    shared_env: str = "",
    *,
    title: str | None = None,
    description: str | None = None,
) -> dict[str, Any]:
    """Replace the deposition's metadata (``url``: the deposition) with kipoi's title and
    description (texts from the engine) for a model group, or else for a shared environment,
    by upstream's rules: a ``shared_env`` containing ``shared`` is a shared conda
    environment, ``mmsplice`` is MMSplice except mtsplice. ``title`` and ``description``,
    when given, are used as they are.

    Raises upstream's ``ValueError`` (before any request) without a group, environment or
    title, or for any other ``shared_env``."""
    if title is None:
        if not model_group and not shared_env:
            raise ValueError("You need to provide atlease a shared env name or a model group name")
        if model_group:
            title, text = _engine.model_group_text(model_group)
        elif "shared" in shared_env:
            title, text = _engine.shared_env_text(shared_env)
        elif shared_env == "mmsplice":  # upstream's only non-"shared" environment
            title, text = _engine.group_except_text("MMSplice", ["mtsplice"])
        else:
            raise ValueError(f"Unknown shared env `{shared_env}`. Available options are - {_UPSTREAM_ENV_OPTIONS}")
        description = description if description is not None else text
    metadata = _engine.deposit_metadata(
        title, description if description is not None else title, date.today().isoformat()
    )
    return zenodo_client.put_content(url, data={"metadata": metadata})


def push_deposition(zenodo_client: Client, deposition_id: int | str) -> dict[str, Any]:
    """Publish the draft, then return the deposition as read back."""
    zenodo_client.publish(deposition_id)
    return get_deposit(zenodo_client, deposition_id)


def _upload_hook(zenodo_client: Client, folder: Path, filename: str) -> Callable[[str], Any] | None:
    """The replacement of :func:`upload_file`, when it was replaced (monkeypatched)."""
    replaced = globals()["upload_file"]
    if replaced is _ENGINE_UPLOAD:
        return None
    return lambda object_url: replaced(zenodo_client, object_url, folder, filename)


def _publication(
    zenodo_client: Client,
    singularity_dict: Mapping[str, Any],
    singularity_image_folder: PathLike,
    model_group: str,
    file_to_upload: str,
    push: bool,
    index: SingularityIndex | None,
) -> dict[str, Any]:
    """The keyword arguments of ``Client.publish_new`` / ``publish_version``."""
    folder = Path(singularity_image_folder)
    filename = file_to_upload or f"{singularity_dict['name']}.sif"
    return {
        "path": folder / filename,
        "file_name": filename,
        "model_group": model_group,
        "name": str(singularity_dict["name"]),
        "index": index if index is not None else _default_index(),
        "push": push,
        "publication_date": date.today().isoformat(),
        "upload": _upload_hook(zenodo_client, folder, filename),
    }


def _result(outcome: dict[str, Any], singularity_dict: Mapping[str, Any], deposition_id: int | str) -> dict[str, Any]:
    """Upstream's result dict: the published entry, or (not pushed) the input dict plus the draft id."""
    published = outcome["published"]
    if published is None:
        return {**singularity_dict, "new_deposition_id": deposition_id, "file_id": ""}
    return {
        "new_deposition_id": deposition_id,
        "file_id": published["file_id"],
        "url": published["url"],
        "name": published["name"],
        "md5": published["md5"],
    }


def update_existing_singularity_container(
    zenodo_client: Client,
    singularity_dict: dict[str, Any],
    singularity_image_folder: PathLike,
    model_group: str,
    file_to_upload: str = "",
    push: bool = True,
    *,
    model_group_to_singularity_dict: SingularityIndex | None = None,
) -> dict[str, Any]:
    """Publish ``file_to_upload`` (default ``<name>.sif``) as a new version of the record in
    ``singularity_dict['url']``: new version (or the record's open draft), remove the file of
    that name, upload, metadata, and with ``push`` publish. Returns upstream's dict: with
    ``push``, ``{new_deposition_id, file_id, url, name, md5}`` of the published file; without,
    ``singularity_dict`` plus ``new_deposition_id`` (str) and ``file_id: ""``.

    A failure (or Ctrl-C) after the new version's draft exists deletes that draft."""
    outcome = zenodo_client.publish_version(
        singularity_dict["url"],
        **_publication(
            zenodo_client, singularity_dict, singularity_image_folder, model_group, file_to_upload, push,
            model_group_to_singularity_dict,
        ),
    )
    return _result(outcome, singularity_dict, str(outcome["deposition_id"]))


def push_new_singularity_image(
    zenodo_client: Client,
    singularity_image_folder: PathLike,
    singularity_dict: dict[str, Any],
    model_group: str,
    file_to_upload: str = "",
    path: str = "",
    push: bool = True,
    *,
    model_group_to_singularity_dict: SingularityIndex | None = None,
) -> dict[str, Any]:
    """Publish ``file_to_upload`` (default ``<name>.sif``) as a new Zenodo record: create,
    upload, metadata, and with ``push`` publish. Returns upstream's dict (as
    :func:`update_existing_singularity_container`, ``new_deposition_id`` an int). ``path`` is
    accepted for compatibility and unused, as upstream.

    A failure (or Ctrl-C) after the draft was created deletes the draft."""
    outcome = zenodo_client.publish_new(
        **_publication(
            zenodo_client, singularity_dict, singularity_image_folder, model_group, file_to_upload, push,
            model_group_to_singularity_dict,
        ),
    )
    return _result(outcome, singularity_dict, outcome["deposition_id"])
