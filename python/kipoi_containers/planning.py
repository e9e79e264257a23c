"""The sync from Python: ``kipoi_containers.plan(...)``, ``sync(...)`` and ``sync_async(...)``.

Defaults come from the engine (``src/config.rs``): the zoo from ``$KIPOI_MODEL_REPO``
(else ``github:kipoi/models``), the index from ``$KIPOI_CONTAINER_INFO`` (else
``./container-info``), the stored commit from ``$KIPOI_MODEL_REPO_HASH`` (else
``./kipoi-model-repo-hash``).
"""

from __future__ import annotations

import os
from typing import Any, Union

from . import _engine
from ._engine import Action, Plan, Skipped, SyncReport

__all__ = [
    "DEFAULT_ZOO",
    "Action",
    "Plan",
    "Skipped",
    "SyncReport",
    "default_zoo",
    "plan",
    "stored_hash",
    "sync",
    "sync_async",
]

#: The real model zoo.
DEFAULT_ZOO = "github:kipoi/models"

PathType = Union[str, "os.PathLike[str]"]


def default_zoo() -> str:
    """``$KIPOI_MODEL_REPO`` (a checkout path or ``github:OWNER/REPO``), else the real zoo."""
    return _engine.config_zoo()


def stored_hash(hash_file: PathType | None = None) -> str:
    """The zoo commit the index reflects (``kipoi-model-repo-hash``)."""
    return _engine.stored_hash(hash_file)


def plan(
    zoo: str | None = None,
    from_commit: str | None = None,
    to: str | None = None,
    container_info: PathType | None = None,
    hash_file: PathType | None = None,
    github_api_url: str | None = None,
    only: list[str] | None = None,
) -> Plan:
    """Plan a sync: what changed in ``zoo`` between ``from_commit`` (default: the stored
    ``kipoi-model-repo-hash``) and ``to`` (default: the branch head), and what to do.

    Touches nothing. ``zoo`` is a local git checkout or ``github:OWNER/REPO`` (token from
    ``GITHUB_PAT`` or ``GITHUB_TOKEN``, API base from ``GITHUB_API_URL``).
    """
    return _engine.sync_plan(
        zoo=zoo,
        from_commit=from_commit,
        to=to,
        container_info=container_info,
        hash_file=hash_file,
        github_api_url=github_api_url,
        only=only,
    )


def sync(**options: Any) -> SyncReport:
    """Run a sync (see ``python -m kipoi_containers.updateoradd --help``; the keyword
    arguments are its options: ``zoo``, ``from_commit``, ``to``, ``registry``, ``only``,
    ``push``, ``concurrency``, ``journal``, ``restart``, ...). Returns its report."""
    return _engine.sync(**options)


async def sync_async(**options: Any) -> SyncReport:
    """Awaitable :func:`sync`, for notebooks: ``report = await sync_async(zoo=...)``."""
    return await _engine.sync_async(**options)
