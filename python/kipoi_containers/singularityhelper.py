"""Publishing Singularity images on Zenodo (upstream's ``kipoi_containers.singularityhelper``).

Same names, arguments and result dicts as upstream. Differences (upstream was wrong here):

- ``ZENODO_BASE`` follows ``$ZENODO_URL`` (default https://zenodo.org) and
  ``ZENODO_DEPOSITION`` is derived from it; both are read when a function runs, so setting
  them (or the environment before import) redirects everything, e.g. to the emulator.
- A new version of a record whose draft is already open continues from that draft instead
  of failing (current Zenodo answers 400 "Please remove all files first.").
- Only the file being replaced is deleted from the new version (upstream deleted
  ``files[0]``, whatever it was); uploads are streamed and md5-checked.
- With ``push=True`` the published file is looked up by name and its checksum compared with
  what was uploaded; a missing file is an error rather than silently empty fields.
- ``get_singularity_image`` checks the md5 after download and keeps nothing on mismatch.

Building and running images (``build_singularity_image``, ``test_singularity_image``)
arrive with the SIF conversion issue; until then they raise ``NotImplementedError``.
"""

from __future__ import annotations

import logging
import os
from datetime import date
from pathlib import Path
from typing import Any, Dict, Optional, Union

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
    "shared_env_of",
    "test_singularity_image",
    "update_existing_singularity_container",
    "upload_file",
    "upload_metadata",
]

logger = logging.getLogger("kipoi_containers.singularityhelper")

#: The Zenodo root (``$ZENODO_URL``, default https://zenodo.org), without trailing slash.
ZENODO_BASE = (os.environ.get("ZENODO_URL") or "https://zenodo.org").rstrip("/")
#: The deposition collection under :data:`ZENODO_BASE`.
ZENODO_DEPOSITION = f"{ZENODO_BASE}/api/deposit/depositions"

#: Images shared by several model groups, in upstream's order.
SHARED_ENVS = ("mmsplice", "sharedpy3keras2tf1", "sharedpy3keras2tf2", "sharedpy3keras1.2")

_CREATOR = {"name": "Haimasree, Bhattacharya", "affiliation": "EMBL"}
_ENVFILES = "https://github.com/kipoi/kipoi-containers/blob/main/envfiles"

PathLike = Union[str, "os.PathLike[str]"]


def _deposition_url(deposition_id: Union[int, str]) -> str:
    return f"{ZENODO_DEPOSITION}/{deposition_id}"


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
    singularity_image_dict: Dict[str, Dict[str, str]],
    model_or_model_group: str,
    zenodo_client: Optional[Client] = None,
) -> Path:
    """Download the image of ``model_or_model_group`` into the folder unless present;
    returns its file name. The md5 is checked (a mismatch keeps nothing and raises)."""
    if model_or_model_group in singularity_image_dict:  # MMSplice/mtsplice, APARENT/veff
        entry = singularity_image_dict[model_or_model_group]
    else:
        entry = singularity_image_dict[model_or_model_group.split("/")[0]]
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
    """The deposition ``deposition_id`` as Zenodo returns it."""
    return zenodo_client.get_content(_deposition_url(deposition_id))


def upload_file(zenodo_client: Client, url: str, singularity_image_folder: PathLike, filename: str) -> Dict[str, Any]:
    """Stream ``singularity_image_folder/filename`` to the bucket object ``url``."""
    return zenodo_client.put_content(url, data=Path(singularity_image_folder) / filename)


def shared_env_of(singularity_name: str) -> Optional[str]:
    """The shared environment an image name stands for (``kipoi-docker_sharedpy3keras2tf1-slim``
    → ``sharedpy3keras2tf1``), or ``None`` for a model group's own image."""
    core = singularity_name
    if core.endswith(".sif"):
        core = core[: -len(".sif")]
    if core.startswith("kipoi-docker_"):
        core = core[len("kipoi-docker_") :]
    if core.endswith("-slim"):
        core = core[: -len("-slim")]
    return core if core in SHARED_ENVS else None


def upload_metadata(
    zenodo_client: Client,
    url: str,
    model_group: Optional[str] = None,
    shared_env: Optional[str] = None,
) -> Dict[str, Any]:
    """Replace the deposition's metadata with kipoi's title/description for a model group,
    a shared environment or MMSplice. Raises ``ValueError`` (before any request) without a
    group or environment, or for an unknown environment."""
    if not model_group and not shared_env:
        raise ValueError("You need to provide atlease a shared env name or a model group name")
    if shared_env:
        if shared_env not in SHARED_ENVS:
            raise ValueError(
                f"Unknown shared env `{shared_env}`. Available options are - {', '.join(SHARED_ENVS)}"
            )
        if shared_env == "mmsplice":
            title = "MMSplice singularity container except mtsplice"
            description = (
                "Singularity container for MMSplice models except mtsplice, see "
                "https://kipoi.org/models/MMSplice/"
            )
        else:
            title = f"{shared_env} singularity container"
            description = (
                f"Singularity container with the conda environment {_ENVFILES}/{shared_env}.yml "
                "shared by several kipoi model groups"
            )
    else:
        title = f"{model_group} singularity container"
        description = f"This is a singularity container for models under https://kipoi.org/models/{model_group}/"
    data = {
        "metadata": {
            "title": title,
            "upload_type": "physicalobject",
            "description": description,
            "creators": [dict(_CREATOR)],
            "publication_date": date.today().strftime("%Y-%m-%d"),
            "license": "MIT",
        }
    }
    return zenodo_client.put_content(url, data=data)


def push_deposition(zenodo_client: Client, deposition_id: Union[int, str]) -> Dict[str, Any]:
    """Publish the draft, then return the deposition as read back."""
    zenodo_client.publish(deposition_id)
    return get_deposit(zenodo_client, deposition_id)


def _published_entry(
    response: Dict[str, Any], deposition_id: Union[int, str], filename: str, uploaded: Optional[Dict[str, Any]]
) -> Dict[str, Any]:
    files = [f for f in response.get("files", []) if f.get("filename") == filename]
    if not files:
        raise ZenodoError(f"published deposition `{deposition_id}` has no file `{filename}`")
    fileobj = files[0]
    checksum = str(fileobj.get("checksum", "")).removeprefix("md5:")
    if uploaded is not None:
        sent = str(uploaded.get("checksum", "")).removeprefix("md5:")
        if sent and sent != checksum:
            raise ChecksumMismatchError(
                f"published `{filename}` of deposition `{deposition_id}` has md5 {checksum}, uploaded {sent}"
            )
    record_id = response["metadata"]["prereserve_doi"]["recid"]
    return {
        "new_deposition_id": deposition_id,
        "file_id": fileobj["id"],
        "url": f"{ZENODO_BASE}/record/{record_id}/files/{filename}?download=1",
        "name": fileobj["filename"].replace(".sif", ""),
        "md5": checksum,
    }


def _metadata_target(singularity_dict: Dict[str, Any], model_group: str) -> Dict[str, Optional[str]]:
    env = shared_env_of(str(singularity_dict.get("name", "")))
    return {"shared_env": env} if env else {"model_group": model_group}


def update_existing_singularity_container(
    zenodo_client: Client,
    singularity_dict: Dict[str, Any],
    singularity_image_folder: PathLike,
    model_group: str,
    file_to_upload: str = "",
    push: bool = False,
) -> Dict[str, Any]:
    """Publish ``file_to_upload`` (default ``<name>.sif``) as a new version of the record in
    ``singularity_dict['url']``: new version, remove the file of that name, upload, metadata,
    and with ``push`` publish. Returns upstream's dict (see module docs)."""
    deposition_id = singularity_dict["url"].split("/")[4]
    new_deposition_id = create_new_deposition(zenodo_client, deposition_id)
    response = get_deposit(zenodo_client, new_deposition_id)
    bucket_url = response["links"]["bucket"]
    filename = file_to_upload or f"{singularity_dict['name']}.sif"

    for fileobj in response.get("files", []):
        if fileobj.get("filename") == filename:
            zenodo_client.delete_content(f"{_deposition_url(new_deposition_id)}/files/{fileobj['id']}")

    uploaded = upload_file(zenodo_client, f"{bucket_url}/{filename}", singularity_image_folder, filename)
    upload_metadata(
        zenodo_client, _deposition_url(new_deposition_id), **_metadata_target(singularity_dict, model_group)
    )
    if push:
        response = push_deposition(zenodo_client, new_deposition_id)
        return _published_entry(response, new_deposition_id, filename, uploaded)
    return {**singularity_dict, "new_deposition_id": new_deposition_id, "file_id": ""}


def push_new_singularity_image(
    zenodo_client: Client,
    singularity_image_folder: PathLike,
    singularity_dict: Dict[str, Any],
    model_group: str,
    file_to_upload: str = "",
    path: str = "",
    push: bool = False,
) -> Dict[str, Any]:
    """Publish ``file_to_upload`` (default ``<name>.sif``) as a new Zenodo record: create,
    upload, metadata, and with ``push`` publish. Returns upstream's dict. (``path`` is
    accepted for compatibility and unused, as upstream.)"""
    response = zenodo_client.create_deposition()
    deposition_id = response["id"]
    bucket_url = response["links"]["bucket"]
    filename = file_to_upload or f"{singularity_dict['name']}.sif"
    uploaded = upload_file(zenodo_client, f"{bucket_url}/{filename}", singularity_image_folder, filename)
    upload_metadata(zenodo_client, _deposition_url(deposition_id), **_metadata_target(singularity_dict, model_group))
    if push:
        response = push_deposition(zenodo_client, deposition_id)
        return _published_entry(response, deposition_id, filename, uploaded)
    return {**singularity_dict, "new_deposition_id": deposition_id, "file_id": ""}
