"""Where the index files live by default.

Like upstream, the index is read from a checkout of this repository: ``container-info/``
and ``kipoi-model-repo-hash`` in the current directory. ``KIPOI_CONTAINER_INFO`` and
``KIPOI_MODEL_REPO_HASH`` (or the CLIs' flags) point elsewhere.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["container_info_dir", "model_repo_hash_file"]


def container_info_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The ``container-info`` directory: ``explicit``, else ``$KIPOI_CONTAINER_INFO``, else ``./container-info``."""
    return Path(explicit or os.environ.get("KIPOI_CONTAINER_INFO") or "container-info")


def model_repo_hash_file(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The ``kipoi-model-repo-hash`` file: ``explicit``, else ``$KIPOI_MODEL_REPO_HASH``, else ``./kipoi-model-repo-hash``."""
    return Path(explicit or os.environ.get("KIPOI_MODEL_REPO_HASH") or "kipoi-model-repo-hash")
