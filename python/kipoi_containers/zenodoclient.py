"""Upstream-compatible Zenodo client (``kipoi_containers.zenodoclient.Client``).

Same four methods as upstream — ``get_content``, ``put_content``, ``post_content``,
``delete_content`` — over the engine's Rust client, with these differences, all of which
only remove failure modes:

- the token (``ZENODO_ACCESS_TOKEN``) goes in the ``Authorization: Bearer`` header, only to
  the configured Zenodo origin, never in a URL (an ``access_token`` parameter is dropped);
- the base URL is configurable (``base_url=`` or ``ZENODO_URL``; default https://zenodo.org);
- every method, POST included where it is safe, and downloads are retried on 429
  (``Retry-After`` honoured up to ``max_retry_after``, beyond it the call fails at once),
  500/502/503/504 and dropped connections;
- ``put_content(url, Path)`` streams the file in constant memory, hashes it in the same
  pass and fails (removing the upload) when Zenodo's md5 differs;
- failures raise :class:`~kipoi_containers.errors.ZenodoError` (an ``OSError``, like
  ``requests``' errors) or :class:`~kipoi_containers.errors.ZenodoAuthError` for 401/403,
  with the step, the status and Zenodo's own message.

The typed deposition operations (``new_version``, ``publish``, …) are available too, and
the whole publication of a SIF (:meth:`Client.publish_new`, :meth:`Client.publish_version`):
draft, upload, metadata, publish, read back — deleting the draft on any failure or Ctrl-C.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Callable

from . import _engine

__all__ = ["Client", "ProgressCallback", "StepCallback", "progress_printer"]

#: ``progress(bytes_done, bytes_total)``, called while a file is transferred.
ProgressCallback = Callable[[int, int], Any]
#: ``on_step(event, info)`` after each completed step of a publication: ``"draft_created"``
#: / ``"draft_deleted"`` (``{"deposition_id"}``), ``"file_uploaded"`` (``{"deposition_id",
#: "file_name", "md5"}``), ``"published"`` (``{"record_id", "file_id", "url", "name", "md5"}``).
StepCallback = Callable[[str, dict[str, Any]], Any]


def _params(params: dict[str, Any]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for key, value in params.items():
        if value is None:
            continue
        if isinstance(value, bool):
            value = "true" if value else "false"
        out.append((str(key), str(value)))
    return out


def progress_printer(label: str = "upload", stream: Any = None) -> ProgressCallback:
    """A simple progress display: one line, rewritten in place, on ``stream`` (stderr)."""
    import sys

    out = stream if stream is not None else sys.stderr

    def report(done: int, total: int) -> None:
        pct = 100.0 * done / total if total else 100.0
        end = "\n" if done >= total else ""
        out.write(f"\r{label}: {done / 2**20:8.1f} / {total / 2**20:.1f} MiB ({pct:5.1f} %){end}")
        out.flush()

    return report


class Client:
    """Zenodo REST client (upstream's ``zenodoclient.Client``).

    Args:
        base_url: the Zenodo root, e.g. ``https://zenodo.org`` (default ``$ZENODO_URL``).
        access_token: the personal token (default ``$ZENODO_ACCESS_TOKEN``).
        progress: called as ``progress(done, total)`` during file uploads.
        max_retries, initial_backoff, max_backoff, max_retry_after: retry policy (seconds;
            a ``Retry-After`` longer than ``max_retry_after`` fails at once).
        connect_timeout, read_timeout: seconds to connect, and of silence while waiting for
            an answer (default: ``$KIPOI_HTTP_TIMEOUT``, else 60).

    Durations must be finite and non-negative (timeouts more than 0): anything else —
    ``-1``, ``nan``, ``inf`` — is a ``ValueError`` naming the argument.
    """

    def __init__(
        self,
        base_url: str | None = None,
        access_token: str | None = None,
        *,
        progress: ProgressCallback | None = None,
        user_agent: str | None = None,
        max_retries: int = 5,
        initial_backoff: float = 0.5,
        max_backoff: float = 30.0,
        max_retry_after: float = 300.0,
        connect_timeout: float | None = None,
        read_timeout: float | None = None,
    ) -> None:
        self._engine = _engine.ZenodoClient(
            base_url,
            access_token,
            user_agent=user_agent,
            max_retries=max_retries,
            initial_backoff=initial_backoff,
            max_backoff=max_backoff,
            max_retry_after=max_retry_after,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
        )
        self.progress = progress

    def __repr__(self) -> str:
        return f"zenodoclient.Client(base_url={self.base_url!r})"

    @property
    def base_url(self) -> str:
        """The Zenodo root this client talks to (no trailing slash)."""
        return self._engine.base_url

    @property
    def deposition_url(self) -> str:
        """``{base_url}/api/deposit/depositions``."""
        return f"{self.base_url}/api/deposit/depositions"

    # ------------------------------------------------------------------ upstream API
    def get_content(self, url: str, **params: Any) -> Any:
        """``GET url`` with query ``params`` → the decoded JSON answer."""
        return self._engine.get(url, _params(params))

    def put_content(self, url: str, data: Path | dict[str, Any] | Any, **params: Any) -> Any:
        """``PUT url``: a :class:`~pathlib.Path` is streamed as the file's bytes (bucket
        upload, md5 checked), anything else is sent as JSON. Returns the decoded answer."""
        if isinstance(data, (Path, os.PathLike)):
            if params:
                raise TypeError("query parameters are not supported for file uploads")
            return self._engine.upload(url, os.fspath(data), self.progress)
        return self._engine.put_json(url, data, _params(params))

    def post_content(self, url: str, **params: Any) -> tuple[int, Any]:
        """``POST url`` with an empty JSON body → ``(status, decoded JSON)``."""
        return self._engine.post(url, _params(params), {})

    def delete_content(self, url: str, **params: Any) -> None:
        """``DELETE url``."""
        self._engine.delete(url, _params(params))

    # ------------------------------------------------------------------ typed operations
    def list_depositions(self, **query: Any) -> list[dict[str, Any]]:
        """Depositions of the account (``q``, ``status``, ``sort``, ``page``, ``size``, ``all_versions``)."""
        return self._engine.list_depositions(**query)

    def create_deposition(self, metadata: dict[str, Any] | None = None) -> dict[str, Any]:
        """A new draft deposition (with ``metadata`` when given)."""
        return self._engine.create_deposition(metadata)

    def get_deposition(self, deposition_id: int | str) -> dict[str, Any]:
        return self._engine.get_deposition(deposition_id)

    def new_version(self, deposition_id: int | str) -> int:
        """Open a new-version draft of a published deposition; returns the draft's id. A draft
        of that record that is already open (RDM answers 400) is found and returned."""
        return self._engine.new_version(deposition_id)

    def find_open_draft(self, deposition_id: int | str) -> int | None:
        return self._engine.find_open_draft(deposition_id)

    def list_files(self, deposition_id: int | str) -> list[dict[str, Any]]:
        return self._engine.list_files(deposition_id)

    def delete_file(self, deposition_id: int | str, file_id: str) -> None:
        self._engine.delete_file(deposition_id, file_id)

    def upload_file(
        self,
        bucket_url: str,
        filename: str,
        path: str | os.PathLike[str],
        progress: ProgressCallback | None = None,
    ) -> dict[str, Any]:
        """Stream ``path`` into the bucket as ``filename``; returns the bucket object."""
        return self._engine.upload_file(bucket_url, filename, os.fspath(path), progress or self.progress)

    def update_metadata(self, deposition_id: int | str, metadata: dict[str, Any]) -> dict[str, Any]:
        return self._engine.update_metadata(deposition_id, metadata)

    def publish(self, deposition_id: int | str) -> dict[str, Any]:
        return self._engine.publish(deposition_id)

    def delete_deposition(self, deposition_id: int | str) -> None:
        self._engine.delete_deposition(deposition_id)

    # ------------------------------------------------------------------ publishing a SIF
    def publish_new(
        self,
        path: str | os.PathLike[str],
        file_name: str,
        *,
        model_group: str,
        name: str | None = None,
        index: Mapping[str, Mapping[str, str]] | None = None,
        push: bool = True,
        draft_id: int | str | None = None,
        publication_date: str | None = None,
        progress: ProgressCallback | None = None,
        upload: Callable[[str], Any] | None = None,
        on_step: StepCallback | None = None,
    ) -> dict[str, Any]:
        """Publish ``path`` as a new record holding it as ``file_name``.

        The record's title and description follow from ``index`` (``model-to-singularity``)
        for the SIF ``name`` (default: ``file_name``): a shared environment, a group's image
        except some sub-models, or ``model_group``'s own. ``push=False`` leaves the draft open.
        ``draft_id`` resumes a draft an earlier (killed) run created: nothing new is
        created, and a file already there with the same md5 is not uploaded again.
        ``upload(object_url)`` replaces the client's upload. A failure after the draft exists
        (or Ctrl-C) deletes the draft.

        Returns ``{"deposition_id", "md5", "published"}``; ``published`` is ``None`` without
        ``push``, else ``{"record_id", "file_id", "url", "name", "md5"}``.
        """
        return self._engine.publish_new(
            os.fspath(path), file_name, model_group=model_group, name=name, index=index, push=push,
            draft_id=draft_id, publication_date=publication_date, progress=progress or self.progress,
            upload=upload, on_step=on_step,
        )

    def publish_version(
        self,
        record: int | str,
        path: str | os.PathLike[str],
        file_name: str,
        *,
        model_group: str,
        name: str | None = None,
        index: Mapping[str, Mapping[str, str]] | None = None,
        push: bool = True,
        draft_id: int | str | None = None,
        publication_date: str | None = None,
        progress: ProgressCallback | None = None,
        upload: Callable[[str], Any] | None = None,
        on_step: StepCallback | None = None,
    ) -> dict[str, Any]:
        """Publish ``path`` as a new version of ``record`` (an id, or an index entry's URL):
        only the file named ``file_name`` is replaced. Otherwise as :meth:`publish_new`."""
        return self._engine.publish_version(
            record, os.fspath(path), file_name, model_group=model_group, name=name, index=index,
            push=push, draft_id=draft_id, publication_date=publication_date,
            progress=progress or self.progress, upload=upload, on_step=on_step,
        )

    def download(
        self,
        url: str,
        dest: str | os.PathLike[str],
        md5: str | None = None,
        progress: ProgressCallback | None = None,
    ) -> str:
        """Download ``url`` into ``dest``; with ``md5``, a mismatch keeps nothing and raises."""
        return self._engine.download(url, os.fspath(dest), md5, progress)
