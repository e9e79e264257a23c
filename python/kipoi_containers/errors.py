"""Exceptions raised by kipoi_containers.

Every exception derives from :class:`KipoiContainersError`, and also from the standard
exception users would naturally catch (``ValueError`` for bad data, ``OSError`` for I/O).
The engine raises these classes by name (see ``src/py/errors.rs``).
"""

from __future__ import annotations

__all__ = ["KipoiContainersError", "IndexFormatError", "IndexIOError"]


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
