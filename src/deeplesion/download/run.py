"""The whole download: plan (bytes, peak disk), lock, parallel transfers, extraction, records."""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from deeplesion.download.errors import DownloadError
from deeplesion.download.extract import extract_archive
from deeplesion.download.files import Checksum, RemoteFile
from deeplesion.download.http import LogReporter, Policy, Reporter, fetch, resolve_files
from deeplesion.download.state import (
    extraction_record,
    folder_lock,
    save_verified,
    verified_state,
    write_requested,
)
from deeplesion.errors import UsageError

log = logging.getLogger(__name__)


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
            state = verified_state(root_path)
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
                    save_verified(root_path, state, state_lock)
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
                        save_verified(root_path, state, state_lock)

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
            write_requested(root_path, plan.archives, parts)
            if failures:
                for other in failures[1:]:
                    log.error("%s", other)
                raise failures[0]
    summary.seconds = time.monotonic() - started
    return summary
