"""Exceptions raised by kipoi_containers.

Every exception derives from :class:`KipoiContainersError`, and also from the standard
exception users would naturally catch (``ValueError`` for bad data, ``OSError`` for I/O).
The engine raises these classes by name (see ``src/py/errors.rs``).
"""

from __future__ import annotations

__all__ = [
    "ChecksumMismatchError",
    "DockerAuthError",
    "DockerBuildError",
    "DockerError",
    "DockerPushError",
    "DockerUnreachableError",
    "DockerfileError",
    "DownloadError",
    "FileIOError",
    "GitHubAuthError",
    "GitHubError",
    "ImageNotFoundError",
    "IndexFormatError",
    "IndexIOError",
    "InvalidNameError",
    "KipoiContainersError",
    "MissingSecretsError",
    "ModelTestError",
    "RecipeError",
    "SharedImageError",
    "SifError",
    "SifTestError",
    "SyncError",
    "UnknownRevisionError",
    "WriteConflictError",
    "ZenodoAuthError",
    "ZenodoError",
    "ZooError",
]


class KipoiContainersError(Exception):
    """Base class of every error raised by kipoi_containers."""


class IndexFormatError(KipoiContainersError, ValueError):
    """An index file is not valid JSON or an entry has the wrong shape.

    The message names the file, the entry and the problem; ``file``, ``line`` and
    ``column`` (1-based; 0 when unknown) locate it.
    """

    file: str = ""
    line: int = 0
    column: int = 0


class IndexIOError(KipoiContainersError, OSError):
    """An index file could not be read or written (a failed write leaves the old file intact)."""


class ZooError(KipoiContainersError):
    """The model zoo could not be read (not a git repository, a bad file, git failed)."""


class UnknownRevisionError(ZooError, LookupError):
    """A commit, branch or tag does not exist in the zoo."""


class GitHubError(ZooError):
    """GitHub answered with an error (the message has the status and GitHub's own words)."""


class GitHubAuthError(GitHubError, PermissionError):
    """GitHub rejected the token (401) or refused access (403), or a write was asked for
    without a token (``GITHUB_PAT`` / ``GITHUB_TOKEN``); the token is never shown."""


class WriteConflictError(ZooError):
    """An index file on the write-back branch kept changing under us: every re-read and
    re-applied edit met another writer's newer version, until the retries ran out."""


class DockerError(KipoiContainersError):
    """A Docker Engine operation failed (the message names the image/container and step)."""


class DockerUnreachableError(DockerError, ConnectionError):
    """The Docker daemon does not answer at the configured address (``DOCKER_HOST``)."""


class DockerBuildError(DockerError):
    """An image build failed; the message names the failing step and the last log lines."""


class DockerfileError(KipoiContainersError, ValueError):
    """A Dockerfile template could not be rendered (unknown placeholder, unsafe value)."""


class RecipeError(KipoiContainersError, ValueError):
    """An image has no recipe (no environment file for a shared image, not in the index), an
    environment file is malformed, or the recipes' ``FROM`` images form a cycle or name an
    image of ours without a recipe; the message names the image and the file."""


class SharedImageError(RecipeError):
    """A group's template was asked to render an image the index has as shared: a shared
    image is built from its environment file only (``dockerfiles/envfiles/<tag>.yml``)."""


class ModelTestError(DockerError):
    """``kipoi test`` failed for a model in an image; the message has kipoi's log tail."""


class DockerPushError(DockerError):
    """Pushing an image failed; nothing is recorded as pushed."""


class DockerAuthError(DockerPushError, PermissionError):
    """The registry rejected the credentials (``DOCKER_USERNAME``/``DOCKER_PASSWORD``)."""


class ImageNotFoundError(DockerError, LookupError):
    """The image does not exist in the local Docker Engine."""


class ZenodoError(KipoiContainersError, OSError):
    """A Zenodo operation failed. The message names the step (deposition id, file) and holds
    the HTTP status with Zenodo's own message, or the transport cause.

    ``status`` is the HTTP status (0 when there was no answer); ``step`` is what failed.
    When publishing failed and its draft could not be deleted, ``draft_id`` names that
    draft (0 otherwise; the message then says "delete it by hand").
    """

    status: int = 0
    step: str = ""
    draft_id: int = 0


class ZenodoAuthError(ZenodoError, PermissionError):
    """Zenodo rejected the token (401) or refused access (403); the token is never shown."""


class ChecksumMismatchError(ZenodoError, ValueError):
    """Zenodo recorded another md5 than the bytes sent (the bad upload is removed), or a
    download did not match the expected md5 (nothing is kept)."""


class FileIOError(KipoiContainersError, OSError):
    """A local file could not be read or written (e.g. hashing a SIF); the message names the
    file and the cause, and ``errno`` is set as on ``OSError``."""


class SifError(KipoiContainersError, ValueError):
    """A SIF could not be read, verified or written, or an image could not be converted to
    one; the message names the file, image or layer entry and the problem."""


class InvalidNameError(KipoiContainersError, ValueError):
    """A name that becomes a path segment (e.g. a file name to upload to Zenodo) is not one
    safe path segment (``../x.sif``, ``a/b``, empty, ...); nothing was sent."""


class SyncError(KipoiContainersError):
    """A sync could not run (a bad journal, a failed write-back, ...); a failing model group
    is not one: it is a row of the ``Sync summary``."""


class MissingSecretsError(SyncError, ValueError):
    """The sync needs credentials that are not in the environment; nothing was done. The
    message names the variables."""


class SifTestError(SifError):
    """``kipoi test`` failed for a model inside a SIF; the message has kipoi's log tail.

    A ``ValueError`` (through :class:`SifError`), as upstream's ``test_singularity_image``
    raised; not a :class:`DockerError`, since no Docker is involved. ``model``, ``sif``,
    ``exit_code`` (-1 when killed for its time limit) and ``log_tail`` describe the failure.
    """

    model: str = ""
    sif: str = ""
    exit_code: int = 0
    log_tail: str = ""


class DownloadError(KipoiContainersError, OSError):
    """A download failed: the server answered with an error (``status``, with its own
    words in the message) or the connection kept failing (the bytes received are kept in
    ``<file>.part`` and the next download resumes from there)."""

    status: int = 0
