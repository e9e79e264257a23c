"""The sync plan from Python: ``kipoi_containers.plan(...)``."""

from __future__ import annotations

import os
from typing import Optional, Union

from . import _engine
from ._engine import Action, Plan, Skipped
from .paths import container_info_dir, model_repo_hash_file

__all__ = ["Action", "Plan", "Skipped", "DEFAULT_ZOO", "default_zoo", "plan", "stored_hash"]

#: The real model zoo.
DEFAULT_ZOO = "github:kipoi/models"

PathType = Union[str, "os.PathLike[str]"]


def default_zoo() -> str:
    """``$KIPOI_MODEL_REPO`` (a checkout path or ``github:OWNER/REPO``), else the real zoo."""
    return _engine.config_zoo()


def stored_hash(hash_file: Optional[PathType] = None) -> str:
    """The zoo commit the index reflects (``kipoi-model-repo-hash``)."""
    path = model_repo_hash_file(hash_file)
    try:
        value = path.read_text().strip()
    except OSError as exc:
        raise FileNotFoundError(
            f"cannot read the stored zoo commit from `{path}`: {exc.strerror}; "
            "run from a kipoi_containers checkout or pass --from"
        ) from exc
    if not value:
        raise ValueError(f"`{path}` is empty; it must hold the zoo commit the index reflects")
    return value


def plan(
    zoo: Optional[str] = None,
    from_commit: Optional[str] = None,
    to: Optional[str] = None,
    container_info: Optional[PathType] = None,
    hash_file: Optional[PathType] = None,
    github_api_url: Optional[str] = None,
) -> Plan:
    """Plan a sync: what changed in ``zoo`` between ``from_commit`` (default: the stored
    ``kipoi-model-repo-hash``) and ``to`` (default: the branch head), and what to do.

    Touches nothing. ``zoo`` is a local git checkout or ``github:OWNER/REPO`` (default:
    ``$KIPOI_MODEL_REPO``, else ``github:kipoi/models``; token from ``GITHUB_PAT`` or
    ``GITHUB_TOKEN``, API base from ``GITHUB_API_URL``).
    """
    return _engine.plan(
        zoo or default_zoo(),
        from_commit or stored_hash(hash_file),
        os.fspath(container_info_dir(container_info)),
        to=to,
        github_api_url=github_api_url,
    )
