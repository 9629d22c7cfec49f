"""Getting the release: resumable, verified, parallel downloads, safe extraction, and integrity checks.

Every file is a transaction: it streams to ``<name>.part`` beside its target, resumes with an HTTP Range
request after any interruption (the link is resolved again each time, as NIH's redirect to short-lived
signed URLs), is checked for size and hash, and only then renamed into place. Archives are extracted
into ``ROOT/Images_png/`` with every member checked to stay inside it, each written atomically; per
archive, ``ROOT/.deeplesion/extracted/<archive>.json`` records completion and each member's CRC-32, so
reruns skip finished work and ``deeplesion verify`` can check the extracted files later.
"""

from __future__ import annotations

import contextlib
import email.utils
import json
import logging
import math
import os
import shutil
import threading
import time
import zipfile
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Any, Literal, Protocol

from deeplesion.errors import DeepLesionError, UsageError
from deeplesion.findings import Finding, make_finding
from deeplesion.inventory import REQUESTED_FILE, STATE_DIR
from deeplesion.io import file_digest, replacing
from deeplesion.names import IMAGES_DIR

log = logging.getLogger(__name__)

Checksum = Literal["md5", "sha256", "size"]
CHECKSUMS_NAME = "MD5_checksums.txt"
ANNOTATIONS_NAME = "DL_info.csv"
ARCHIVE_PREFIX = "Images_png_"
LOCK_NAME = "download.lock"
VERIFIED_NAME = "verified.json"
EXTRACTED_DIR = "extracted"
TYPICAL_ARCHIVE_BYTES = 4_300_000_000


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


@dataclass(frozen=True)
class RemoteFile:
    """A file of the release: where it comes from and how to check it (None: unknown)."""

    name: str
    url: str
    size: int | None
    md5: str | None
    sha256: str | None

    @property
    def archive_number(self) -> int | None:
        """``7`` for ``Images_png_07.zip``; None for other files."""
        stem = self.name.removeprefix(ARCHIVE_PREFIX).removesuffix(".zip")
        if self.name.startswith(ARCHIVE_PREFIX) and self.name.endswith(".zip") and stem.isdigit():
            return int(stem)
        return None


def official_files() -> list[RemoteFile]:
    """The release's files from the packaged ``release_files.tsv`` (56 archives, MD5 list, DL_info.csv)."""
    text = resources.files("deeplesion.resources").joinpath("release_files.tsv").read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    header = lines[0].split("\t")
    out = []
    for line in lines[1:]:
        row = dict(zip(header, line.split("\t"), strict=True))
        out.append(
            RemoteFile(
                row["name"],
                row["url"],
                int(row["bytes"]) if row["bytes"] else None,
                row["md5"] or None,
                row["sha256"] or None,
            )
        )
    return out


def parse_checksums(text: str) -> dict[str, str]:
    """``<md5>  <name>`` lines (``MD5_checksums.txt``) -> {name: md5}."""
    out = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        digest, _, name = line.strip().partition("  ")
        if len(digest) != 32 or not name:
            raise DownloadError(f"{CHECKSUMS_NAME} line {number}: expected '<md5>  <name>', found {line!r}")
        out[name.strip().lstrip("*")] = digest.lower()
    return out


def parse_parts(text: str | None) -> set[int] | None:
    """``"1-3,7"`` -> {1, 2, 3, 7}; None or empty -> None (every part)."""
    if not text:
        return None
    parts: set[int] = set()
    for piece in text.split(","):
        first, dash, last = piece.strip().partition("-")
        try:
            low, high = int(first), int(last) if dash else int(first)
        except ValueError:
            raise UsageError(f"`parts={text!r}`: use numbers and ranges like 1-3,7") from None
        if low < 1 or high < low:
            raise UsageError(f"`parts={text!r}`: {piece.strip()} is not a valid part range")
        parts.update(range(low, high + 1))
    return parts


# --- progress -----------------------------------------------------------------------------------------


class Reporter(Protocol):
    """Receives progress (the CLI draws bars; the default logs)."""

    def start(self, name: str, total: int | None, done: int) -> None: ...
    def advance(self, name: str, nbytes: int) -> None: ...
    def finish(self, name: str, status: str) -> None: ...


class LogReporter:
    """Plain log lines (when stderr is not a terminal)."""

    def start(self, name: str, total: int | None, done: int) -> None:
        size = "unknown size" if total is None else f"{total / 1e6:.1f} MB"
        log.info("%s: %s (%s)", name, "resuming at %.1f MB" % (done / 1e6) if done else "starting", size)

    def advance(self, name: str, nbytes: int) -> None:
        pass

    def finish(self, name: str, status: str) -> None:
        log.info("%s: %s", name, status)


# --- one file -----------------------------------------------------------------------------------------


@dataclass
class Policy:
    """Retries and timeouts.

    Attributes
    ----------
    attempts
        Tries per file for connection errors, 5xx, 408 and 429.
    backoff
        First wait, seconds; doubles each retry up to ``backoff_cap``.
    retry_after_cap
        Longest ``Retry-After`` honoured, seconds.
    """

    attempts: int = 8
    backoff: float = 1.0
    backoff_cap: float = 30.0
    retry_after_cap: float = 300.0
    timeout: float = 60.0
    chunk: int = 1 << 20

    def delay(self, failures: int, retry_after: float | None = None) -> float:
        """Seconds to wait after the ``failures``-th failure (the server's ``Retry-After`` when given)."""
        wait = retry_after if retry_after is not None else self.backoff * 2 ** (failures - 1)
        return min(wait, self.backoff_cap if retry_after is None else self.retry_after_cap)


RETRY_STATUS = {408, 429, 500, 502, 503, 504}


def request(
    client: Any,
    method: Literal["GET", "HEAD"],
    url: str,
    *,
    policy: Policy | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Any:
    """One small HTTP request (a file list, a HEAD) under the same retry policy as the archives.

    Connection errors (refused, dropped while reading the body, timeouts) and the statuses in
    :data:`RETRY_STATUS` are retried with back-off (honouring ``Retry-After``); the body is read
    inside the retry loop, so a connection dropped half-way is retried too.

    Returns
    -------
    httpx.Response
        The final response, body read (any status not retried, for the caller to judge).

    Raises
    ------
    DownloadError
        Still failing after ``policy.attempts`` tries: one line naming the URL.
    """
    import httpx

    policy = policy or Policy()
    failures = 0
    while True:
        retry_after: float | None = None
        try:
            response = client.request(method, url)
            if response.status_code not in RETRY_STATUS:
                return response
            reason = f"HTTP {response.status_code}"
            if response.status_code in (429, 503):
                retry_after = _retry_after(response.headers.get("Retry-After"))
        except httpx.TransportError as exc:
            reason = str(exc) or type(exc).__name__
        failures += 1
        if failures >= policy.attempts:
            raise DownloadError(f"{url}: no answer after {failures} attempts ({reason})")
        wait = policy.delay(failures, retry_after)
        log.warning(
            "%s: %s; retrying in %.1f s (attempt %d of %d)", url, reason, wait, failures + 1, policy.attempts
        )
        sleep(wait)


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    with contextlib.suppress(ValueError):
        return max(float(value), 0.0)
    with contextlib.suppress(TypeError, ValueError):
        moment = email.utils.parsedate_to_datetime(value)
        return max((moment - datetime.now(UTC)).total_seconds(), 0.0)
    return None


def _hash_algorithm(file: RemoteFile, checksum: Checksum) -> Literal["md5", "sha256"] | None:
    """The hash to check ``file`` with: the requested one when known, else the other known one, else None
    (size only)."""
    if checksum == "size":
        return None
    if checksum == "sha256" and file.sha256:
        return "sha256"
    return "md5" if file.md5 else ("sha256" if file.sha256 else None)


@dataclass
class FetchResult:
    """What happened to one file."""

    name: str
    path: Path
    status: str  # downloaded | resumed | present
    transferred: int = 0
    checked: str = "size"


def fetch(
    client: Any,
    file: RemoteFile,
    directory: Path,
    *,
    checksum: Checksum = "md5",
    policy: Policy | None = None,
    reporter: Reporter | None = None,
    sleep: Callable[[float], None] = time.sleep,
    stop: threading.Event | None = None,
) -> FetchResult:
    """Download one file into ``directory`` (resuming a ``.part``), verify it, rename it into place.

    Parameters
    ----------
    client
        An ``httpx.Client`` (following redirects).
    file
        What to fetch and how to check it.
    checksum
        ``md5``, ``sha256`` or ``size``.

    Raises
    ------
    DownloadError
        After the retries, on a 4xx other than 408/429, on an HTML page, or a size that is not the
        expected one.
    ChecksumError
        The hash differs twice (the part file is deleted each time).
    """
    policy = policy or Policy()
    reporter = reporter or LogReporter()
    target = directory / file.name
    part = directory / f"{file.name}.part"
    for round_ in (1, 2):
        transferred, resumed = _transfer(client, file, part, policy, reporter, sleep, stop)
        algorithm = _hash_algorithm(file, checksum)
        found = file_digest(part, algorithm) if algorithm else None
        expected = getattr(file, algorithm) if algorithm else None
        size = part.stat().st_size
        if file.size is not None and size != file.size:
            part.unlink()
            raise DownloadError(
                f"{file.name}: {size} bytes received, the file list says {file.size}; part deleted"
            )
        if algorithm is None or found == expected:
            os.replace(part, target)
            checked = algorithm or "size"
            reporter.finish(file.name, f"verified ({checked})")
            return FetchResult(
                file.name, target, "resumed" if resumed else "downloaded", transferred, checked
            )
        part.unlink()
        message = (
            f"{file.name}: {algorithm.upper()} expected {expected}, found {found}; the part file was deleted"
        )
        if round_ == 2:
            raise ChecksumError(message + " (twice: the server or the network corrupts this file)")
        log.warning("%s; downloading it again", message)
    raise AssertionError("unreachable")


def _transfer(
    client: Any,
    file: RemoteFile,
    part: Path,
    policy: Policy,
    reporter: Reporter,
    sleep: Callable[[float], None],
    stop: threading.Event | None = None,
) -> tuple[int, bool]:
    """Bring ``part`` to the full file; returns (bytes transferred now, whether it resumed)."""
    import httpx

    transferred = 0
    resumed = False
    failures = 0
    started = False
    while True:
        have = part.stat().st_size if part.exists() else 0
        if file.size is not None and have > file.size:
            part.unlink()
            have = 0
        if file.size is not None and have == file.size:
            return transferred, resumed
        if not started:
            reporter.start(file.name, file.size, have)
            started = True
        headers = {"Range": f"bytes={have}-"} if have else {}
        wait: float | None = None
        try:
            with client.stream("GET", file.url, headers=headers) as response:
                status = response.status_code
                if status in RETRY_STATUS:
                    wait = _retry_after(response.headers.get("Retry-After")) if status in (429, 503) else None
                    raise _Retryable(f"HTTP {status}")
                if status == 416 and have:
                    part.unlink()  # the server says our part is past its end: start again
                    continue
                if status >= 400:
                    raise DownloadError(
                        f"{file.name}: HTTP {status} from {response.url}; check the URL or `mirror`"
                    )
                if "text/html" in response.headers.get("Content-Type", "") and not file.name.endswith(
                    ".html"
                ):
                    raise DownloadError(
                        f"{file.name}: the server sent an HTML page (status {status}) instead of the file: "
                        "a login, quota or error page? Try again later or use another `mirror`"
                    )
                if have and status == 206:
                    total = _content_range(response.headers.get("Content-Range"), have, file)
                    if file.size is None and total is not None:
                        file = RemoteFile(file.name, file.url, total, file.md5, file.sha256)
                    mode = "ab"
                    resumed = True
                else:
                    if have:
                        log.info("%s: the server ignored the Range request; starting again", file.name)
                        reporter.start(file.name, file.size, 0)
                    mode = "wb"
                with part.open(mode) as handle:
                    for block in response.iter_bytes(policy.chunk):
                        if stop is not None and stop.is_set():
                            raise DownloadCancelled(
                                f"{file.name}: interrupted; {part} is kept, rerun to resume"
                            )
                        handle.write(block)
                        transferred += len(block)
                        reporter.advance(file.name, len(block))
            if file.size is None or part.stat().st_size >= file.size:
                return transferred, resumed
            raise _Retryable("the connection closed before the end of the file")
        except (_Retryable, httpx.TransportError) as exc:
            failures += 1
            if failures >= policy.attempts:
                raise DownloadError(
                    f"{file.name}: gave up after {failures} attempts ({exc}); rerun to resume"
                ) from None
            delay = policy.delay(failures, wait)
            log.warning(
                "%s: %s; retrying in %.1f s (attempt %d of %d)",
                file.name,
                exc,
                delay,
                failures + 1,
                policy.attempts,
            )
            sleep(delay)
        except OSError as exc:
            if exc.errno == 28:  # ENOSPC
                raise DownloadError(
                    f"{file.name}: the disk is full; {part} is kept, free some space and rerun to resume"
                ) from None
            raise


class _Retryable(Exception):
    pass


def _content_range(header: str | None, have: int, file: RemoteFile) -> int | None:
    """Check ``bytes start-end/total`` of a 206 answer; returns the total."""
    if not header or not header.startswith("bytes "):
        raise DownloadError(f"{file.name}: a partial answer without a Content-Range header")
    span, _, total_text = header[6:].partition("/")
    start = int(span.split("-")[0])
    if start != have:
        raise DownloadError(f"{file.name}: asked for bytes from {have}, the server sent from {start}")
    total = None if total_text == "*" else int(total_text)
    if file.size is not None and total is not None and total != file.size:
        raise DownloadError(
            f"{file.name}: the server's file has {total} bytes, the file list says {file.size}: it changed"
        )
    return total


# --- extraction ---------------------------------------------------------------------------------------


def _record_path(root: Path, archive: str) -> Path:
    return root / STATE_DIR / EXTRACTED_DIR / f"{archive}.json"


def extraction_record(root: Path, archive: str) -> dict[str, Any] | None:
    """The completion record of an archive's extraction, or None."""
    path = _record_path(root, archive)
    if not path.is_file():
        return None
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data if data.get("complete") else None


def safe_member_path(root: Path, member: str) -> Path:
    """Where a member ``Images_png/<series>/<NNN>.png`` goes; refuses anything that would leave
    ``ROOT/Images_png``.

    Raises
    ------
    UnsafeArchiveError
        Absolute names, ``..`` components, or names outside ``Images_png/``.
    """
    pure = PurePosixPath(member.replace("\\", "/"))
    images = (root / IMAGES_DIR).resolve()
    target = (root / Path(*pure.parts)).resolve() if pure.parts else images
    if pure.is_absolute() or ".." in pure.parts or not target.is_relative_to(images) or target == images:
        raise UnsafeArchiveError(f"archive member {member!r} would be written outside {images}; refused")
    return target


def extract_archive(
    root: Path, archive_path: Path, *, chunk: int = 1 << 20, stop: threading.Event | None = None
) -> dict[str, int]:
    """Extract ``archive_path`` into ``root/Images_png`` atomically per member; record CRC-32s.

    Returns
    -------
    dict
        Member name -> CRC-32 (as the archive records it; zipfile checks it while reading).

    Raises
    ------
    UnsafeArchiveError
        A member would escape the target folder (nothing is extracted then).
    """
    with zipfile.ZipFile(archive_path) as archive:
        members = [info for info in archive.infolist() if not info.is_dir()]
        targets = [safe_member_path(root, info.filename) for info in members]  # all checked before writing
        crcs: dict[str, int] = {}
        for info, target in zip(members, targets, strict=True):
            if stop is not None and stop.is_set():  # no record is written: a rerun extracts it again
                raise DownloadCancelled(f"{archive_path.name}: extraction interrupted; rerun to finish it")
            with replacing(target) as tmp, archive.open(info) as source, tmp.open("wb") as sink:
                shutil.copyfileobj(source, sink, chunk)
            crcs[info.filename] = info.CRC
    record = {
        "archive": archive_path.name,
        "size": archive_path.stat().st_size,
        "complete": True,
        "extracted_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "members": crcs,
    }
    with replacing(_record_path(root, archive_path.name)) as tmp:
        tmp.write_text(json.dumps(record), encoding="utf-8")
    return crcs


# --- the whole download -------------------------------------------------------------------------------


@contextlib.contextmanager
def folder_lock(root: Path) -> Iterator[None]:
    """An exclusive lock file ``ROOT/.deeplesion/download.lock`` (a stale one, whose process is gone, is
    taken over)."""
    path = root / STATE_DIR / LOCK_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            break
        except FileExistsError:
            pid = int(path.read_text().strip() or "0") if path.exists() else 0
            if pid and _alive(pid):
                raise LockedError(
                    f"another download (process {pid}) is running in {root}; wait for it, or delete {path} "
                    "if that process is gone"
                ) from None
            log.warning("removing a stale lock %s (process %d is gone)", path, pid)
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
    else:
        raise LockedError(f"could not take the lock {path}")
    try:
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class Plan:
    """What a download run will do."""

    files: list[RemoteFile]
    archives: list[RemoteFile]
    to_transfer: int  # bytes still to download (known sizes)
    unknown_sizes: list[str]
    peak_bytes: int
    present: list[str] = field(default_factory=list)


@dataclass
class Summary:
    """What a download run did."""

    downloaded: list[str] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)
    present: list[str] = field(default_factory=list)
    extracted: list[str] = field(default_factory=list)
    already_extracted: list[str] = field(default_factory=list)
    zips_removed: list[str] = field(default_factory=list)
    transferred: int = 0
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)


def _verified_state(root: Path) -> dict[str, Any]:
    path = root / STATE_DIR / VERIFIED_NAME
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _save_verified(root: Path, state: dict[str, Any], lock: threading.Lock) -> None:
    with lock, replacing(root / STATE_DIR / VERIFIED_NAME) as tmp:
        tmp.write_text(json.dumps(state, indent=1, sort_keys=True), encoding="utf-8")


def resolve_files(
    client: Any,
    mirror: str | None,
    checksum: Checksum,
    *,
    policy: Policy | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[list[RemoteFile], list[str]]:
    """The files to get: the official list, or what the mirror's ``MD5_checksums.txt`` lists (fetched,
    and each file's size asked with HEAD, under the retry policy)."""
    if mirror is None:
        return official_files(), []
    if checksum == "sha256":
        raise UsageError("`checksum='sha256'` cannot be used with a `mirror`: a mirror publishes MD5s only")
    base = mirror.rstrip("/")
    response = request(client, "GET", f"{base}/{CHECKSUMS_NAME}", policy=policy, sleep=sleep)
    if response.status_code != 200:
        raise DownloadError(
            f"{base}/{CHECKSUMS_NAME}: HTTP {response.status_code}; is {mirror} a release mirror?"
        )
    md5s = parse_checksums(response.text)
    files = [
        RemoteFile(name, f"{base}/{name}", _remote_size(client, f"{base}/{name}", policy, sleep), md5, None)
        for name, md5 in md5s.items()
    ]
    warnings = []
    if ANNOTATIONS_NAME not in md5s:
        warnings.append(
            f"{CHECKSUMS_NAME} of the mirror does not list {ANNOTATIONS_NAME}: checked by size only"
        )
        files.append(RemoteFile(ANNOTATIONS_NAME, f"{base}/{ANNOTATIONS_NAME}", None, None, None))
    files.append(RemoteFile(CHECKSUMS_NAME, f"{base}/{CHECKSUMS_NAME}", len(response.content), None, None))
    return files, warnings


def _remote_size(client: Any, url: str, policy: Policy | None, sleep: Callable[[float], None]) -> int | None:
    """Content-Length from a HEAD request (None when the server does not say, or does not do HEAD).

    Raises
    ------
    DownloadError
        The HEAD failed after the retries, or the server says the file is not there.
    """
    response = request(client, "HEAD", url, policy=policy, sleep=sleep)
    if response.status_code in (405, 501):  # no HEAD on this server: the size is checked after the GET
        return None
    if response.status_code != 200:
        raise DownloadError(f"{url}: HTTP {response.status_code} (the mirror's file list names this file)")
    length = response.headers.get("Content-Length")
    return int(length) if length and length.isdigit() else None


def plan_download(
    root: Path, files: list[RemoteFile], parts: set[int] | None, *, extract: bool, keep_zips: bool, jobs: int
) -> Plan:
    """Which files to fetch, how many bytes remain, and the peak disk use."""
    archives = [
        f for f in files if f.archive_number is not None and (parts is None or f.archive_number in parts)
    ]
    if parts is not None:
        known = {f.archive_number for f in files}
        unknown = sorted(parts - known)
        if unknown:
            raise UsageError(f"`parts`: no archive numbered {', '.join(map(str, unknown))} in the file list")
    others = [f for f in files if f.archive_number is None]
    selected = others + archives
    to_transfer = 0  # bytes still to download
    unknown_sizes = []
    present = []
    new_archives = 0  # bytes of archives still to download and extract
    largest = 0
    for f in selected:
        target = root / f.name
        done = f.archive_number is not None and extraction_record(root, f.name) is not None
        if target.exists() or done:
            present.append(f.name)
            continue
        if f.size is None:
            unknown_sizes.append(f.name)
            continue
        have = (root / f"{f.name}.part").stat().st_size if (root / f"{f.name}.part").exists() else 0
        to_transfer += max(f.size - have, 0)
        if f.archive_number is not None:
            new_archives += f.size
            largest = max(largest, f.size)
    small = to_transfer - new_archives
    # the PNGs are stored, so an archive's extracted tree is about as large as the archive
    if not extract:
        peak = to_transfer
    elif keep_zips:
        peak = to_transfer + new_archives
    else:  # at most `jobs` archives exist next to the growing tree at any time
        peak = small + new_archives + min(jobs, max(len(archives), 1)) * largest
    return Plan(selected, archives, to_transfer, unknown_sizes, peak, present)


def download(
    root: str | os.PathLike[str],
    *,
    parts: set[int] | None = None,
    jobs: int = 4,
    mirror: str | None = None,
    extract: bool = True,
    keep_zips: bool = False,
    checksum: Checksum = "md5",
    dry_run: bool = False,
    reporter: Reporter | None = None,
    policy: Policy | None = None,
) -> Summary | Plan:
    """Download (and extract) the release into ``root``.

    Parameters
    ----------
    root
        Target folder (created).
    parts
        Archive numbers to get (None: all); the annotation file and the MD5 list always come along.
    jobs
        Files downloaded at the same time.
    mirror
        Base URL of a mirror serving the files and its own ``MD5_checksums.txt``.
    extract
        Unpack archives into ``root/Images_png`` (the archives are then deleted unless ``keep_zips``).
    checksum
        ``md5`` (default), ``sha256`` (official list only) or ``size``.
    dry_run
        Only plan: return the :class:`Plan` (bytes to transfer, peak disk use) and change nothing.

    Returns
    -------
    Summary or Plan
        What was done (or, with ``dry_run``, what would be).

    Raises
    ------
    DownloadError, ChecksumError, LockedError, UnsafeArchiveError, UsageError
        With a message that names the file and what to do.
    """
    import httpx

    if checksum not in ("md5", "sha256", "size"):
        raise UsageError(f"`checksum={checksum!r}`: use md5, sha256 or size")
    root_path = Path(root)
    policy = policy or Policy()
    reporter = reporter or LogReporter()
    started = time.monotonic()
    with httpx.Client(follow_redirects=True, timeout=policy.timeout) as client:
        files, warnings = resolve_files(client, mirror, checksum, policy=policy)
        plan = plan_download(root_path, files, parts, extract=extract, keep_zips=keep_zips, jobs=jobs)
        if dry_run:
            return plan
        root_path.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(root_path).free
        if plan.peak_bytes > free:
            raise DownloadError(
                f"{root_path}: {free / 1e9:.1f} GB free, this download needs up to "
                f"{plan.peak_bytes / 1e9:.1f} GB (fewer `jobs`, `parts`, or another `root`)"
            )
        summary = Summary(warnings=list(warnings))
        for message in warnings:
            log.warning("%s", message)
        with folder_lock(root_path):
            stop = threading.Event()
            state = _verified_state(root_path)
            state_lock = threading.Lock()

            def one(file: RemoteFile) -> None:
                target = root_path / file.name
                if file.archive_number is not None and extraction_record(root_path, file.name) is not None:
                    summary.already_extracted.append(file.name)
                    return
                known = state.get(file.name)
                stat = target.stat() if target.exists() else None
                if stat and known and known["size"] == stat.st_size and known["mtime_ns"] == stat.st_mtime_ns:
                    summary.present.append(file.name)
                else:
                    if stat:  # present but not verified by us: check it, or fetch it again
                        target.rename(root_path / f"{file.name}.part")
                    result = fetch(
                        client,
                        file,
                        root_path,
                        checksum=checksum,
                        policy=policy,
                        reporter=reporter,
                        stop=stop,
                    )
                    stat = target.stat()
                    state[file.name] = {
                        "size": stat.st_size,
                        "mtime_ns": stat.st_mtime_ns,
                        "checked": result.checked,
                    }
                    _save_verified(root_path, state, state_lock)
                    (summary.resumed if result.status == "resumed" else summary.downloaded).append(file.name)
                    summary.transferred += result.transferred
                if extract and file.archive_number is not None:
                    extract_archive(root_path, target, stop=stop)
                    summary.extracted.append(file.name)
                    if not keep_zips:
                        target.unlink()
                        summary.zips_removed.append(file.name)
                        with state_lock:
                            state.pop(file.name, None)
                        _save_verified(root_path, state, state_lock)

            small = [f for f in plan.files if f.archive_number is None]
            for file in small:
                one(file)
            failures: list[BaseException] = []

            def guarded(file: RemoteFile) -> None:
                try:
                    one(file)
                except Exception as exc:  # the other archives go on; the first failure is raised at the end
                    failures.append(exc)

            pool = ThreadPoolExecutor(max_workers=max(jobs, 1))
            try:
                for future in [pool.submit(guarded, f) for f in plan.archives]:
                    future.result()
            except BaseException:  # Ctrl-C: stop every transfer at its next block, keep the part files
                stop.set()
                pool.shutdown(wait=True, cancel_futures=True)
                raise
            pool.shutdown()
            _write_requested(root_path, plan, parts)
            if failures:
                for other in failures[1:]:
                    log.error("%s", other)
                raise failures[0]
    summary.seconds = time.monotonic() - started
    return summary


def _write_requested(root: Path, plan: Plan, parts: set[int] | None) -> None:
    """Tell the inventory which folders a partial download asked for (``requested.json``)."""
    path = root / STATE_DIR / REQUESTED_FILE
    if parts is None:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        return
    folders: set[str] = set()
    previous = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    folders.update(previous.get("folders") or [])
    for archive in plan.archives:
        record = extraction_record(root, archive.name)
        names = list(record["members"]) if record else []
        if not record and (root / archive.name).exists():
            with zipfile.ZipFile(root / archive.name) as z:
                names = z.namelist()
        folders.update(n.split("/")[1] for n in names if n.count("/") >= 2)
    data = {
        "folders": sorted(folders),
        "key_slices_only": False,
        "parts": sorted(set(previous.get("parts", [])) | parts),
    }
    with replacing(path) as tmp:
        tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")


# --- verification -------------------------------------------------------------------------------------


def verify_release(
    root: str | os.PathLike[str],
    *,
    checksum: Checksum = "md5",
    progress: Callable[[int, int], None] | None = None,
) -> list[Finding]:
    """Archives against the file list, and extracted files against their recorded CRC-32.

    The file list is ``ROOT/MD5_checksums.txt`` when present (a mirror or synthetic release), else the
    official list. Returns findings with the archive codes of ``docs/findings.md``.
    """
    root_path = Path(root)
    listed = root_path / CHECKSUMS_NAME
    if listed.is_file():
        md5s = parse_checksums(listed.read_text(encoding="utf-8"))
        official = {f.name: f for f in official_files()}
        # an official archive keeps its size and SHA-256; anything else (a mirror's own files) has its MD5
        files = [
            official[n] if n in official and official[n].md5 == md5 else RemoteFile(n, "", None, md5, None)
            for n, md5 in md5s.items()
        ]
    else:
        files = official_files()
    findings: list[Finding] = []
    records = sorted((root_path / STATE_DIR / EXTRACTED_DIR).glob("*.json"))
    work = len(files) + len(records)
    done = 0
    for file in files:
        path = root_path / file.name
        done += 1
        if not path.exists():
            if file.archive_number is not None and extraction_record(root_path, file.name) is None:
                findings.append(
                    make_finding(
                        "archive-missing", f"{file.name}: not on disk and not extracted", file=file.name
                    )
                )
        else:
            findings.extend(_verify_file(path, file, checksum))
        if progress:
            progress(done, work)
    for record_path in records:
        record = json.loads(record_path.read_text(encoding="utf-8"))
        for member, crc in record.get("members", {}).items():
            target = root_path / member
            if not target.is_file():
                message = f"{member}: extracted from {record['archive']}, no longer on disk"
                findings.append(make_finding("member-missing", message, file=member))
                continue
            found = 0
            with target.open("rb") as handle:
                for block in iter(lambda h=handle: h.read(1 << 20), b""):  # type: ignore[misc]
                    found = zlib.crc32(block, found)
            if found != crc:
                message = f"{member}: CRC-32 {found:08x}, the archive recorded {crc:08x}"
                findings.append(
                    make_finding("member-crc-mismatch", message, file=member, value=f"{found:08x}")
                )
        done += 1
        if progress:
            progress(done, work)
    return findings


def _verify_file(path: Path, file: RemoteFile, checksum: Checksum) -> list[Finding]:
    size = path.stat().st_size
    if file.size is not None and size != file.size:
        return [
            make_finding(
                "archive-size-mismatch",
                f"{file.name}: {size} bytes, the list says {file.size}",
                file=file.name,
                value=str(size),
            )
        ]
    algorithm = _hash_algorithm(file, checksum)
    if algorithm is None:
        if checksum == "size" or file.name == CHECKSUMS_NAME:
            return []
        return [
            make_finding(
                "archive-unverified", f"{file.name}: no hash in the file list; size only", file=file.name
            )
        ]
    found = file_digest(path, algorithm)
    expected = getattr(file, algorithm)
    if found != expected:
        message = f"{file.name}: {algorithm.upper()} {found}, the list says {expected}"
        return [make_finding("archive-hash-mismatch", message, file=file.name, value=found)]
    return []


def human_bytes(n: float) -> str:
    """``1234567`` -> ``1.2 MB``."""
    units = ["B", "KB", "MB", "GB", "TB"]
    power = min(int(math.log(max(n, 1), 1000)), len(units) - 1)
    return f"{n / 1000**power:.1f} {units[power]}" if power else f"{int(n)} B"
