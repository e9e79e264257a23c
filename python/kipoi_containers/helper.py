"""Upstream-compatible helpers for the index files (``kipoi_containers.helper``).

``populate_json`` / ``write_json`` keep upstream's meaning (read a JSON file into a dict,
write a dict as ``json.dump(d, f, indent=4)`` would) with three differences that only
remove failure modes: the three index files are validated on read and before write
(:class:`~kipoi_containers.errors.IndexFormatError` names the file, entry and line), writes
are atomic (a crash never leaves a half-written file), and key order is kept.

``populate_yaml`` / ``write_yaml`` read and write a YAML file (a GitHub workflow, say) as a
round trip that keeps comments, key order and quoting (upstream's ruamel.yaml), the write
atomic.

``populate_json_from_kipoi``, ``write_json_to_kipoi``, ``branch_exists`` and ``create_pr``
keep upstream's names and arguments for the index files kept in the model zoo
(``shared/containers/`` on a branch ``update-json``, proposed in a pull request). The zoo
(``kipoi_model_repo``) may be ``"OWNER/REPO"``, ``"github:OWNER/REPO"``, a PyGithub
``Repository`` (only its ``full_name`` is used: the engine makes every request itself) or
the path of a local git checkout. GitHub is reached at ``$GITHUB_API_URL`` (default
https://api.github.com) with the token in ``$GITHUB_PAT`` or ``$GITHUB_TOKEN`` (required for
writes). Differences from upstream, each removing a failure mode: a write is an edit of the
file's current content, retried on a concurrent change so both writers' keys survive; an
already open pull request is returned instead of raising; the default branch is the
repository's, not a hard-coded ``master``; an ``update-json`` whose head was merged into the
default branch (merge, squash or rebase) is read through the default branch and restarted
from its head before the next write, so a new pull request never reverts what changed there.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Iterable
from typing import Any, Union

from . import _engine

FileType = Union[str, "os.PathLike[str]"]
#: A model zoo: ``"OWNER/REPO"``, ``"github:OWNER/REPO"``, a local checkout's path, or an
#: object with a ``full_name`` (a PyGithub ``Repository``).
RepoType = Any

#: Where upstream keeps the index files inside the model zoo repository.
CONTAINER_PREFIX = "shared/containers"
#: The branch the index files are written to.
TARGET_BRANCH = "update-json"

logger = logging.getLogger("kipoi_containers")

__all__ = [
    "CONTAINER_PREFIX",
    "TARGET_BRANCH",
    "branch_exists",
    "create_pr",
    "logger",
    "one_model_per_modelgroup",
    "populate_json",
    "populate_json_from_kipoi",
    "populate_yaml",
    "total_number_of_unique_containers",
    "write_json",
    "write_json_to_kipoi",
    "write_yaml",
]


def populate_json(json_file: FileType) -> dict[str, Any]:
    """Read ``json_file`` into a dict (validated when it is one of the three index files)."""
    return _engine.load_json(os.fspath(json_file))


def write_json(container_model_dict: dict[str, Any], container_json: FileType) -> None:
    """Write ``container_model_dict`` to ``container_json`` atomically, formatted like
    ``json.dump(d, f, indent=4)``; an index file is validated before anything is written."""
    _engine.save_json(os.fspath(container_json), container_model_dict)


def _round_trip_yaml() -> Any:
    from ruamel.yaml import YAML  # upstream's YAML library; imported when YAML is used

    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    return yaml


def populate_yaml(yaml_file: FileType) -> Any:
    """Read ``yaml_file`` (a workflow, say) for editing: a round-trip mapping that keeps
    comments, key order and quoting, as upstream's ``round_trip_load(preserve_quotes=True)``."""
    with open(yaml_file, encoding="utf-8") as fh:
        return _round_trip_yaml().load(fh)


def write_yaml(data: Any, yaml_file: FileType) -> None:
    """Write ``data`` (as :func:`populate_yaml` gave it, or plain dicts and lists) to
    ``yaml_file``, keeping what a round trip keeps. Atomic, unlike upstream's: a failure
    leaves the old file intact."""
    buffer = io.StringIO()
    _round_trip_yaml().dump(data, buffer)
    _engine.write_atomic(os.fspath(yaml_file), buffer.getvalue().encode("utf-8"))


def one_model_per_modelgroup(all_models: Iterable[str]) -> list[str]:
    """The first model of each top-level model group, in input order."""
    return _engine.one_model_per_modelgroup(list(all_models))


def total_number_of_unique_containers(list_of_containers: Iterable[str]) -> int:
    """How many distinct container names ``list_of_containers`` holds."""
    return _engine.total_number_of_unique_containers(list(list_of_containers))


def _zoo(kipoi_model_repo: RepoType) -> str:
    """The engine's name for a zoo: a PyGithub ``Repository`` by its ``full_name`` only."""
    full_name = getattr(kipoi_model_repo, "full_name", None)
    if isinstance(full_name, str):
        return f"github:{full_name}"
    return os.fspath(kipoi_model_repo)


def branch_exists(kipoi_model_repo: RepoType) -> bool:
    """Whether the branch ``update-json`` exists in the model zoo (merged or not; reads and
    writes restart a merged one from the default branch)."""
    return _engine.zoo_branch_exists(_zoo(kipoi_model_repo), TARGET_BRANCH)


def populate_json_from_kipoi(json_file: FileType, kipoi_model_repo: RepoType) -> dict[str, Any]:
    """Read ``shared/containers/<json_file>`` of the model zoo into a dict: from branch
    ``update-json`` when it holds changes of its own, else (missing, or merged) from the
    default branch."""
    path = f"{CONTAINER_PREFIX}/{os.fspath(json_file)}"
    return _engine.zoo_read_json(_zoo(kipoi_model_repo), path, TARGET_BRANCH)


def write_json_to_kipoi(
    container_model_dict: dict[str, Any], container_json: FileType, kipoi_model_repo: RepoType
) -> bool:
    """Make ``shared/containers/<container_json>`` on branch ``update-json`` hold
    ``container_model_dict`` (formatted like ``json.dumps(d, indent=4)``), creating the branch
    from the default branch's head when needed. Returns True when the branch was updated,
    False when the file already held that content (then nothing is created or committed).
    Keys another writer adds meanwhile are kept. No pull request is opened (see
    :func:`create_pr`)."""
    path = f"{CONTAINER_PREFIX}/{os.fspath(container_json)}"
    report = _engine.zoo_write_json(
        _zoo(kipoi_model_repo),
        {path: container_model_dict},
        branch=TARGET_BRANCH,
        open_pr=False,
    )
    return bool(report["changed"])


def create_pr(kipoi_model_repo: RepoType) -> dict[str, Any] | None:
    """Open the pull request "Update container jsons" from ``update-json`` to the default
    branch. One already open is returned (``{number, url, created: False}``) instead of
    raising; ``None`` when there is nothing to propose or the zoo is a local checkout."""
    return _engine.zoo_open_pull_request(_zoo(kipoi_model_repo), TARGET_BRANCH)
