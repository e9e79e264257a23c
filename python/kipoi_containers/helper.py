"""Upstream-compatible helpers for the index files (``kipoi_containers.helper``).

``populate_json`` / ``write_json`` keep upstream's meaning (read a JSON file into a dict,
write a dict as ``json.dump(d, f, indent=4)`` would) with three differences that only
remove failure modes: the three index files are validated on read and before write
(:class:`~kipoi_containers.errors.IndexFormatError` names the file, entry and line), writes
are atomic (a crash never leaves a half-written file), and key order is kept.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Dict, Iterable, List, Union

from . import _engine

FileType = Union[str, "os.PathLike[str]"]

#: Where upstream keeps the index files inside the model zoo repository.
CONTAINER_PREFIX = "shared/containers"

logger = logging.getLogger("kipoi_containers")

__all__ = [
    "CONTAINER_PREFIX",
    "logger",
    "one_model_per_modelgroup",
    "populate_json",
    "total_number_of_unique_containers",
    "write_json",
]


def populate_json(json_file: FileType) -> Dict[str, Any]:
    """Read ``json_file`` into a dict (validated when it is one of the three index files)."""
    return _engine.load_json(os.fspath(json_file))


def write_json(container_model_dict: Dict[str, Any], container_json: FileType) -> None:
    """Write ``container_model_dict`` to ``container_json`` atomically, formatted like
    ``json.dump(d, f, indent=4)``; an index file is validated before anything is written."""
    _engine.save_json(os.fspath(container_json), container_model_dict)


def one_model_per_modelgroup(all_models: Iterable[str]) -> List[str]:
    """The first model of each top-level model group, in input order."""
    return _engine.one_model_per_modelgroup(list(all_models))


def total_number_of_unique_containers(list_of_containers: Iterable[str]) -> int:
    """How many distinct container names ``list_of_containers`` holds."""
    return _engine.total_number_of_unique_containers(list(list_of_containers))
