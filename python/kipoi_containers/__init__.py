"""kipoi_containers: Docker and Singularity images for every model group of the Kipoi zoo.

The engine is written in Rust (``kipoi_containers._engine``); this package is its thin,
typed Python face. Upstream-compatible modules: :mod:`kipoi_containers.helper`, and the
CLI ``python -m kipoi_containers.updateoradd``.
"""

from __future__ import annotations

import logging

from ._engine import Index, __version__
from .errors import (
    GitHubAuthError,
    GitHubError,
    IndexFormatError,
    IndexIOError,
    KipoiContainersError,
    MissingSecretsError,
    SyncError,
    UnknownRevisionError,
    WriteConflictError,
    ZooError,
)
from .planning import Action, Plan, Skipped, SyncReport, plan, sync, sync_async

#: The package logger; engine (Rust) log records are forwarded to it and its children.
logger = logging.getLogger("kipoi_containers")

__all__ = [
    "Action",
    "GitHubAuthError",
    "GitHubError",
    "Index",
    "IndexFormatError",
    "IndexIOError",
    "KipoiContainersError",
    "MissingSecretsError",
    "Plan",
    "Skipped",
    "SyncError",
    "SyncReport",
    "UnknownRevisionError",
    "WriteConflictError",
    "ZooError",
    "__version__",
    "logger",
    "plan",
    "sync",
    "sync_async",
]
