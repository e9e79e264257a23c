"""Publishing Singularity images on Zenodo (upstream's ``kipoi_containers.singularityhelper``).

Same names, arguments and result dicts as upstream. Differences (upstream was wrong here):

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
- Only the file being replaced is deleted from the new version (upstream deleted
  ``files[0]``, whatever it was); uploads are streamed into the bucket by the client
  (``upload_file(bucket, filename, path)``) and md5-checked.
- ``push_new_singularity_image`` deletes the draft it created when the upload, the metadata
  or the publication fails, so a failing run leaves no empty draft behind.
- With ``push=True`` the published file is looked up by name and its checksum compared with
  what was uploaded; a missing file is an error rather than silently empty fields.
- ``get_singularity_image`` resolves a model with the index's longest-prefix rule (the key
  itself, else the longest key that is a ``/``-boundary prefix) and checks the md5 after
  download, keeping nothing on mismatch.
- Zenodo titles/descriptions: a shared environment is recognised from the index (an image
  whose keys span two or more top-level model groups) when the caller passes it
  (``model_group_to_singularity_dict=``, as :class:`SingularityHandler` does); without an
  index, upstream's name rule (:data:`SHARED_ENVS`) is used.

Building and running images (``build_singularity_image``, ``test_singularity_image``)
arrive with the SIF conversion issue; until then they raise ``NotImplementedError``.
"""

from __future__ import annotations

import logging
import os
import urllib.parse
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Tuple, Union

from .errors import ChecksumMismatchError, ZenodoError
from .zenodoclient import Client

__all__ = [
    "SHARED_ENVS",
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
    "shared_env_of",
    "singularity_entry_for",
    "test_singularity_image",
    "update_existing_singularity_container",
    "upload_file",
    "upload_metadata",
]

logger = logging.getLogger("kipoi_containers.singularityhelper")

_DEFAULT_BASE = "https://zenodo.org"
_DEPOSITIONS_PATH = "/api/deposit/depositions"

#: Upstream's hard-coded shared environments, in upstream's order: the values
#: :func:`upload_metadata` accepts for ``shared_env`` (anything else is upstream's
#: ``ValueError``), and the name rule used when no index is at hand. Where the index is
#: given, whether an image is shared is read from it instead.
SHARED_ENVS = ("mmsplice", "sharedpy3keras2tf1", "sharedpy3keras2tf2", "sharedpy3keras1.2")

_CREATOR = {"name": "Haimasree, Bhattacharya", "affiliation": "EMBL"}
_ENVFILES = "https://github.com/kipoi/kipoi-containers/blob/main/envfiles"
_KIPOI_MODELS = "https://kipoi.org/models"

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


def __dir__() -> List[str]:
    return sorted(set(globals()) | {"ZENODO_BASE", "ZENODO_DEPOSITION"})


def _base_of(zenodo_client: Any) -> str:
    """The Zenodo root ``zenodo_client`` talks to (no trailing slash)."""
    base = getattr(zenodo_client, "base_url", None)
    return str(base).rstrip("/") if base else _env_base()


def _depositions_of(zenodo_client: Any) -> str:
    return _base_of(zenodo_client) + _DEPOSITIONS_PATH


def _deposition_url(zenodo_client: Any, deposition_id: Union[int, str]) -> str:
    return f"{_depositions_of(zenodo_client)}/{deposition_id}"


#: Path segments that precede a record/deposition id in Zenodo URLs.
_ID_SEGMENTS = ("record", "records", "depositions", "deposit", "uploads")


def record_id_from_url(url: str) -> str:
    """The record id of a Zenodo URL such as an index entry's
    ``https://zenodo.org/record/6576723/files/x.sif?download=1`` → ``"6576723"``.

    The id is the numeric segment after the last ``record``/``records``/``depositions``
    segment, wherever the base URL puts it (upstream took ``url.split("/")[4]``, which breaks
    with a path prefix). Raises ``ValueError`` when there is none."""
    text = str(url).strip()
    if text.isdigit():
        return text
    segments = [seg for seg in urllib.parse.urlsplit(text).path.split("/") if seg]
    for i in range(len(segments) - 2, -1, -1):
        if segments[i] in _ID_SEGMENTS and segments[i + 1].isdigit():
            return segments[i + 1]
    raise ValueError(f"no Zenodo record id in `{url}` (expected …/record/<id>/files/<name>)")


def _top_group(key: str) -> str:
    return key.split("/", 1)[0]


def singularity_entry_for(singularity_image_dict: Any, model_or_model_group: str) -> Dict[str, str]:
    """The index entry responsible for a model or model group, by the index's rule: the key
    itself, else the longest key that is a ``/``-boundary prefix of it
    (``MMSplice/mtsplice`` → its own entry, ``DeepBind/Homo_sapiens/…`` → ``DeepBind``;
    ``Groupie`` never matches ``Group``). Accepts the dict or a ``kipoi_containers.Index``.
    Raises ``KeyError`` when no key covers it."""
    finder = getattr(singularity_image_dict, "singularity_for_model", None)
    if callable(finder):
        found = finder(model_or_model_group)
        if found is None:
            raise KeyError(model_or_model_group)
        return dict(found)
    if model_or_model_group in singularity_image_dict:
        return singularity_image_dict[model_or_model_group]
    best: Optional[str] = None
    for key in singularity_image_dict:
        if model_or_model_group.startswith(f"{key}/") and (best is None or len(key) > len(best)):
            best = key
    if best is None:
        raise KeyError(model_or_model_group)
    return singularity_image_dict[best]


# ----------------------------------------------------------------------------- images


def cleanup(singularity_file_path: PathLike) -> None:
    """Delete a Singularity image file built by :func:`build_singularity_image`."""
    Path(singularity_file_path).unlink()


def build_singularity_image(
    name_of_docker_image: str, singularity_image_name: str, singularity_image_folder: PathLike
) -> Path:
    """Convert a Docker image into ``singularity_image_folder/singularity_image_name``."""
    raise NotImplementedError(
        f"converting `{name_of_docker_image}` into a Singularity image arrives with the SIF "
        "conversion issue"
    )


def test_singularity_image(singularity_image_folder: PathLike, singularity_image_name: str, model: str) -> None:
    """Run ``kipoi test <model>`` inside the image."""
    raise NotImplementedError(
        f"running `{singularity_image_name}` to test `{model}` arrives with the SIF conversion issue"
    )


test_singularity_image.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


def get_singularity_image(
    singularity_image_folder: PathLike,
    singularity_image_dict: Any,
    model_or_model_group: str,
    zenodo_client: Optional[Client] = None,
) -> Path:
    """Download the image of ``model_or_model_group`` into the folder unless present;
    returns its file name. The entry is found with :func:`singularity_entry_for` (longest
    ``/``-boundary prefix); the md5 is checked (a mismatch keeps nothing and raises)."""
    entry = singularity_entry_for(singularity_image_dict, model_or_model_group)
    image_name = Path(f"{entry['name']}.sif")
    folder = Path(singularity_image_folder)
    target = folder / image_name
    if not target.exists():
        folder.mkdir(parents=True, exist_ok=True)
        client = zenodo_client or Client()
        client.download(entry["url"], target, md5=entry["md5"])
    return image_name


# ----------------------------------------------------------------------------- depositions


def create_new_deposition(zenodo_client: Client, deposition_id: Union[int, str]) -> str:
    """Open a new version of the published deposition; returns the new draft's id (str).

    An already open draft of that record is continued from instead of failing.
    """
    return str(zenodo_client.new_version(deposition_id))


def get_deposit(zenodo_client: Client, deposition_id: Union[int, str]) -> Dict[str, Any]:
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


def upload_file(zenodo_client: Client, url: str, singularity_image_folder: PathLike, filename: str) -> Dict[str, Any]:
    """Stream ``singularity_image_folder/filename`` into a deposition's bucket as
    ``filename`` (md5-checked); returns the bucket object.

    ``url`` is the bucket (``links.bucket``) or, as upstream passed it, the bucket object URL
    ``{bucket}/{filename}``; the client adds the (percent-encoded) file name itself."""
    path = Path(singularity_image_folder) / filename
    return zenodo_client.upload_file(_bucket_of(url, filename), filename, path)


def shared_env_of(singularity_name: str) -> Optional[str]:
    """Upstream's name rule: the shared environment an image name stands for
    (``kipoi-docker_sharedpy3keras2tf1-slim`` → ``sharedpy3keras2tf1``) when it is one of
    :data:`SHARED_ENVS`, else ``None``. Used only when no index is given."""
    core = _image_core(singularity_name)
    return core if core in SHARED_ENVS else None


def _image_core(singularity_name: str) -> str:
    """``kipoi-docker_sharedpy3keras2tf1-slim(.sif)`` → ``sharedpy3keras2tf1``."""
    core = singularity_name
    if core.endswith(".sif"):
        core = core[: -len(".sif")]
    if core.startswith("kipoi-docker_"):
        core = core[len("kipoi-docker_") :]
    if core.endswith("-slim"):
        core = core[: -len("-slim")]
    return core


def _model_group_text(model_group: str) -> Tuple[str, str]:
    return (
        f"{model_group} singularity container",
        f"This is a singularity container for models under {_KIPOI_MODELS}/{model_group}/",
    )


def _shared_env_text(shared_env: str) -> Tuple[str, str]:
    return (
        f"{shared_env} singularity container",
        f"Singularity container with the conda environment {_ENVFILES}/{shared_env}.yml "
        "shared by several kipoi model groups",
    )


def _group_except_text(group: str, others: List[str]) -> Tuple[str, str]:
    """An image for all models of ``group`` but ``others`` (which have their own images)."""
    if not others:
        return _model_group_text(group)
    listed = ", ".join(others)
    return (
        f"{group} singularity container except {listed}",
        f"Singularity container for {group} models except {listed}, see {_KIPOI_MODELS}/{group}/",
    )


def upload_metadata(
    zenodo_client: Client,
    url: str,
    model_group: Optional[str] = None,
    shared_env: Optional[str] = None,
    *,
    title: Optional[str] = None,
    description: Optional[str] = None,
) -> Dict[str, Any]:
    """Replace the deposition's metadata (``url``: the deposition) with kipoi's title and
    description for a model group or one of upstream's shared environments
    (:data:`SHARED_ENVS`; ``mmsplice`` is MMSplice except mtsplice). ``title`` and
    ``description``, when given, are used as they are.

    Raises upstream's ``ValueError`` (before any request) without a group, environment or
    title, or for a ``shared_env`` that is not one of :data:`SHARED_ENVS`."""
    if title is None:
        if not model_group and not shared_env:
            raise ValueError("You need to provide atlease a shared env name or a model group name")
        if shared_env:
            if shared_env not in SHARED_ENVS:
                raise ValueError(
                    f"Unknown shared env `{shared_env}`. Available options are - {', '.join(SHARED_ENVS)}"
                )
            if shared_env == "mmsplice":
                title, text = _group_except_text("MMSplice", ["mtsplice"])
            else:
                title, text = _shared_env_text(shared_env)
        else:
            title, text = _model_group_text(str(model_group))
        description = description if description is not None else text
    data = {
        "metadata": {
            "title": title,
            "upload_type": "physicalobject",
            "description": description if description is not None else title,
            "creators": [dict(_CREATOR)],
            "publication_date": date.today().strftime("%Y-%m-%d"),
            "license": "MIT",
        }
    }
    return zenodo_client.put_content(url, data=data)


def _describe(
    singularity_dict: Mapping[str, Any], model_group: str, index: Optional[SingularityIndex]
) -> Tuple[str, str]:
    """Title and description of the record of ``singularity_dict``'s image.

    With the index: an image whose keys span two or more top-level groups is a shared
    environment; one serving several keys of a single group is that group's image (minus
    the group's keys that have other images: ``MMSplice`` except ``mtsplice``); otherwise
    the image belongs to ``model_group``. Without it: upstream's name rule."""
    name = str(singularity_dict.get("name", ""))
    if index is None:
        env = shared_env_of(name)
        if env == "mmsplice":
            return _group_except_text("MMSplice", ["mtsplice"])
        if env:
            return _shared_env_text(env)
        return _model_group_text(model_group)
    keys = [key for key, entry in index.items() if entry.get("name") == name]
    groups = sorted({_top_group(key) for key in keys})
    if len(groups) >= 2:
        return _shared_env_text(_image_core(name))
    if len(keys) >= 2:
        group = groups[0]
        others = sorted(
            key.split("/", 1)[1]
            for key in index
            if "/" in key and _top_group(key) == group and key not in keys
        )
        return _group_except_text(group, others)
    return _model_group_text(model_group)


def _put_metadata(
    zenodo_client: Client,
    deposition_id: Union[int, str],
    singularity_dict: Mapping[str, Any],
    model_group: str,
    index: Optional[SingularityIndex],
) -> None:
    title, description = _describe(singularity_dict, model_group, index)
    upload_metadata(
        zenodo_client, _deposition_url(zenodo_client, deposition_id), title=title, description=description
    )


def push_deposition(zenodo_client: Client, deposition_id: Union[int, str]) -> Dict[str, Any]:
    """Publish the draft, then return the deposition as read back."""
    zenodo_client.publish(deposition_id)
    return get_deposit(zenodo_client, deposition_id)


def _published_entry(
    zenodo_client: Client,
    response: Dict[str, Any],
    deposition_id: Union[int, str],
    filename: str,
    uploaded: Optional[Dict[str, Any]],
) -> Dict[str, Any]:
    files = [f for f in response.get("files", []) if f.get("filename") == filename]
    if not files:
        raise ZenodoError(f"published deposition `{deposition_id}` has no file `{filename}`")
    fileobj = files[0]
    checksum = str(fileobj.get("checksum", "")).removeprefix("md5:")
    if isinstance(uploaded, dict):
        sent = str(uploaded.get("checksum", "")).removeprefix("md5:")
        if sent and sent != checksum:
            raise ChecksumMismatchError(
                f"published `{filename}` of deposition `{deposition_id}` has md5 {checksum}, uploaded {sent}"
            )
    record_id = response["metadata"]["prereserve_doi"]["recid"]
    return {
        "new_deposition_id": deposition_id,
        "file_id": fileobj["id"],
        "url": f"{_base_of(zenodo_client)}/record/{record_id}/files/{urllib.parse.quote(filename)}?download=1",
        "name": fileobj["filename"].replace(".sif", ""),
        "md5": checksum,
    }


def update_existing_singularity_container(
    zenodo_client: Client,
    singularity_dict: Dict[str, Any],
    singularity_image_folder: PathLike,
    model_group: str,
    file_to_upload: str = "",
    push: bool = False,
    *,
    model_group_to_singularity_dict: Optional[SingularityIndex] = None,
) -> Dict[str, Any]:
    """Publish ``file_to_upload`` (default ``<name>.sif``) as a new version of the record in
    ``singularity_dict['url']``: new version, remove the file of that name, upload, metadata,
    and with ``push`` publish. Returns upstream's dict (see module docs).

    ``model_group_to_singularity_dict`` (the index), when given, decides whether the image
    is a shared environment (see :func:`upload_metadata`'s texts). A failure leaves the new
    version's draft open; the next run continues from it."""
    deposition_id = record_id_from_url(singularity_dict["url"])
    new_deposition_id = create_new_deposition(zenodo_client, deposition_id)
    response = get_deposit(zenodo_client, new_deposition_id)
    bucket_url = response["links"]["bucket"]
    filename = file_to_upload or f"{singularity_dict['name']}.sif"

    for fileobj in response.get("files", []):
        if fileobj.get("filename") == filename:
            zenodo_client.delete_file(new_deposition_id, str(fileobj["id"]))

    uploaded = upload_file(zenodo_client, bucket_url, singularity_image_folder, filename)
    _put_metadata(zenodo_client, new_deposition_id, singularity_dict, model_group, model_group_to_singularity_dict)
    if push:
        response = push_deposition(zenodo_client, new_deposition_id)
        return _published_entry(zenodo_client, response, new_deposition_id, filename, uploaded)
    return {**singularity_dict, "new_deposition_id": new_deposition_id, "file_id": ""}


def _discard_draft(zenodo_client: Client, deposition_id: Union[int, str], error: BaseException) -> None:
    """Delete the draft a failed publication created; a failure to do so is logged and noted
    on ``error`` (which the caller re-raises), never raised over it."""
    try:
        zenodo_client.delete_deposition(deposition_id)
        logger.info("deleted draft deposition `%s` after the failure: %s", deposition_id, error)
    except Exception as cleanup_error:  # noqa: BLE001 - the original error matters more
        note = f"the draft deposition `{deposition_id}` could not be deleted: {cleanup_error}; delete it by hand"
        logger.warning(note)
        if hasattr(error, "add_note"):
            error.add_note(note)


def push_new_singularity_image(
    zenodo_client: Client,
    singularity_image_folder: PathLike,
    singularity_dict: Dict[str, Any],
    model_group: str,
    file_to_upload: str = "",
    path: str = "",
    push: bool = False,
    *,
    model_group_to_singularity_dict: Optional[SingularityIndex] = None,
) -> Dict[str, Any]:
    """Publish ``file_to_upload`` (default ``<name>.sif``) as a new Zenodo record: create,
    upload, metadata, and with ``push`` publish. Returns upstream's dict. (``path`` is
    accepted for compatibility and unused, as upstream.)

    If anything fails after the draft was created, the draft is deleted before the error is
    raised, so reruns do not pile up empty drafts."""
    response = zenodo_client.create_deposition()
    deposition_id = response["id"]
    filename = file_to_upload or f"{singularity_dict['name']}.sif"
    try:
        bucket_url = response["links"]["bucket"]
        uploaded = upload_file(zenodo_client, bucket_url, singularity_image_folder, filename)
        _put_metadata(zenodo_client, deposition_id, singularity_dict, model_group, model_group_to_singularity_dict)
        if push:
            response = push_deposition(zenodo_client, deposition_id)
    except BaseException as error:
        _discard_draft(zenodo_client, deposition_id, error)
        raise
    if push:
        return _published_entry(zenodo_client, response, deposition_id, filename, uploaded)
    return {**singularity_dict, "new_deposition_id": deposition_id, "file_id": ""}
