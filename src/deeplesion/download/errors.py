"""The download errors: each says which file, what was expected and found, and what to do."""

from __future__ import annotations

import logging

from deeplesion.errors import DeepLesionError

log = logging.getLogger(__name__)


class DownloadError(DeepLesionError, OSError):
    """A file could not be downloaded (after retries), or the server sent something else."""


class ChecksumError(DownloadError):
    """A downloaded file's hash or size differs from the file list."""


class DownloadCancelled(DownloadError):
    """The run was interrupted (Ctrl-C); the part files are kept for a later resume."""


class LockedError(DeepLesionError, RuntimeError):
    """Another download is running on the same folder."""


class UnsafeArchiveError(DeepLesionError, ValueError):
    """An archive member would be written outside ``Images_png/``."""
