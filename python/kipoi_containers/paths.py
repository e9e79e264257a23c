"""Where the index files live by default.

Like upstream, the index is read from a checkout of this repository: ``container-info/``
and ``kipoi-model-repo-hash`` in the current directory. ``KIPOI_CONTAINER_INFO`` and
``KIPOI_MODEL_REPO_HASH`` (or the CLIs' flags) point elsewhere. The rules live in the engine
(``src/config.rs``); these are its Python names.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Union

from . import _engine

__all__ = ["container_info_dir", "model_repo_hash_file"]

PathType = Union[str, "os.PathLike[str]"]


def container_info_dir(explicit: PathType | None = None) -> Path:
    """The ``container-info`` directory: ``explicit``, else ``$KIPOI_CONTAINER_INFO``, else ``./container-info``."""
    return _engine.config_container_info(explicit)


def model_repo_hash_file(explicit: PathType | None = None) -> Path:
    """The ``kipoi-model-repo-hash`` file: ``explicit``, else ``$KIPOI_MODEL_REPO_HASH``, else the local one."""
    return _engine.config_hash_file(explicit)
