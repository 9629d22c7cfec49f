"""Getting the release: resumable, verified, parallel downloads, safe extraction, and integrity checks.

Every file is a transaction: it streams to ``<name>.part`` beside its target, resumes with an HTTP Range
request after any interruption (the link is resolved again each time, as NIH's redirect to short-lived
signed URLs), is checked for size and hash, and only then renamed into place. Archives are extracted
into ``ROOT/Images_png/`` with every member checked to stay inside it, each written atomically; per
archive, ``ROOT/.deeplesion/extracted/<archive>.json`` records completion and each member's CRC-32, so
reruns skip finished work and ``deeplesion verify`` can check the extracted files later.

The package, along its seams: :mod:`~deeplesion.download.files` (the file list and checksums),
:mod:`~deeplesion.download.http` (the retry policy, transfers, progress), :mod:`~deeplesion.download.extract`,
:mod:`~deeplesion.download.state` (the ``.deeplesion`` folder), :mod:`~deeplesion.download.run` (the
whole download), :mod:`~deeplesion.download.verify`, and for single slices read out of the remote
archives with HTTP range requests :mod:`~deeplesion.download.remote_zip` and
:mod:`~deeplesion.download.partial` (:func:`fetch_slices`, ``download --only key-slices``).
"""

from deeplesion.download.errors import (
    ChecksumError,
    DownloadCancelled,
    DownloadError,
    LockedError,
    UnsafeArchiveError,
)
from deeplesion.download.extract import extract_archive, safe_member_path
from deeplesion.download.files import (
    ANNOTATIONS_NAME,
    ARCHIVE_PREFIX,
    CHECKSUMS_NAME,
    Checksum,
    RemoteFile,
    human_bytes,
    official_files,
    parse_checksums,
    parse_parts,
)
from deeplesion.download.http import (
    FetchResult,
    LogReporter,
    Policy,
    Reporter,
    fetch,
    request,
    resolve_files,
)
from deeplesion.download.partial import SliceFetchSummary, SlicePlan, fetch_slices
from deeplesion.download.remote_zip import ArchiveChangedError, RangeNotSupportedError
from deeplesion.download.run import Plan, Summary, download, plan_download
from deeplesion.download.state import extraction_record, folder_lock
from deeplesion.download.verify import verify_release

__all__ = [
    "ANNOTATIONS_NAME",
    "ARCHIVE_PREFIX",
    "CHECKSUMS_NAME",
    "ArchiveChangedError",
    "Checksum",
    "ChecksumError",
    "DownloadCancelled",
    "DownloadError",
    "FetchResult",
    "LockedError",
    "LogReporter",
    "Plan",
    "Policy",
    "RangeNotSupportedError",
    "RemoteFile",
    "Reporter",
    "SliceFetchSummary",
    "SlicePlan",
    "Summary",
    "UnsafeArchiveError",
    "download",
    "extract_archive",
    "extraction_record",
    "fetch",
    "fetch_slices",
    "folder_lock",
    "human_bytes",
    "official_files",
    "parse_checksums",
    "parse_parts",
    "plan_download",
    "request",
    "resolve_files",
    "safe_member_path",
    "verify_release",
]
