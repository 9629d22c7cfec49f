"""Fetch only the slices you need: key slices (and their context) read out of the remote archives.

The steps of :func:`fetch_slices`:

1. the file list (official, or the mirror's ``MD5_checksums.txt``), then ``DL_info.csv`` fetched and
   verified like any download;
2. the slices wanted: each requested row's key slice and, with ``context_mm``, its neighbours within
   that distance inside the row's ``Slice_range`` (enough slices each side that a stack interpolated at
   +-``context_mm`` has both slices it blends);
3. every archive's central directory (:class:`~deeplesion.download.remote_zip.ArchiveIndex`), kept
   under ``ROOT/.deeplesion/index/`` and read again only when the archive's size or ETag changes;
4. the members not yet on disk, merged into one range request per run of adjacent members (at most
   :data:`MAX_REQUEST_BYTES`), fetched in parallel threads; :mod:`zipfile` decompresses each member and
   checks its CRC-32 (a mismatch is fetched once more, then is an error naming the member), and each
   is written atomically, so Ctrl-C keeps every finished slice;
5. ``requested.json`` records the slice ranges asked for, so the inventory reports the others as not
   requested, and ``ROOT/.deeplesion/fetched/<archive>.json`` the CRC-32 of each member fetched, which
   ``deeplesion verify`` checks.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
import zipfile
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deeplesion.catalog import Catalog, load_catalog
from deeplesion.download.errors import ChecksumError, DownloadError
from deeplesion.download.extract import safe_member_path
from deeplesion.download.files import ANNOTATIONS_NAME, RemoteFile
from deeplesion.download.http import LogReporter, Policy, Reporter, fetch, resolve_files
from deeplesion.download.remote_zip import ArchiveIndex, MemberSpan, probe, ranged_get
from deeplesion.download.state import STATE_DIR, folder_lock, request_slices
from deeplesion.errors import UsageError
from deeplesion.io import replacing
from deeplesion.names import folder_of, parse_file_name, slice_path
from deeplesion.slices import contiguous_runs

log = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 8 << 20
"""Largest merged request: big enough that per-request overhead vanishes, small enough that the jobs
share the work and an interrupted request loses little."""
FETCHED_DIR = "fetched"


@dataclass(frozen=True)
class RangeRequest:
    """One HTTP range request: adjacent members of one archive, bytes ``start`` to ``end`` (exclusive)."""

    archive: str
    start: int
    end: int
    members: tuple[MemberSpan, ...]


@dataclass
class SlicePlan:
    """What a slice fetch will do (all sizes in bytes).

    Attributes
    ----------
    slices
        Per series folder, the slice-number ranges asked for (inclusive).
    wanted, present
        Members asked for, and those already on disk.
    not_in_archives
        Slices asked for that no archive holds (absent from the release itself).
    requests
        The range requests still to make.
    member_bytes
        Compressed size of the members to fetch.
    request_bytes
        Bytes those requests will move (members plus their local headers).
    archive_bytes
        Size of all the release's archives: what a whole download would move.
    index_bytes
        Bytes transferred by this run to read central directories (0 when every index was reused).
    """

    slices: dict[str, list[tuple[int, int]]]
    wanted: int
    present: int
    not_in_archives: list[str]
    requests: list[RangeRequest]
    member_bytes: int
    request_bytes: int
    archive_bytes: int
    index_bytes: int
    indexes_read: list[str] = field(default_factory=list)


@dataclass
class SliceFetchSummary:
    """What :func:`fetch_slices` did."""

    plan: SlicePlan
    fetched: int = 0
    transferred: int = 0
    refetched: list[str] = field(default_factory=list)
    seconds: float = 0.0


def context_numbers(key: int, first: int, last: int, interval_mm: float, context_mm: float) -> range:
    """Slice numbers of a key slice and its neighbours within ``context_mm`` (inside ``first``-``last``).

    ``ceil(context_mm / interval_mm)`` slices each side: a channel at exactly ``context_mm`` is
    interpolated between two slices, and the outer one must be there. An interval that is not positive
    (unknown) gives the key slice only.
    """
    if context_mm < 0:
        raise UsageError(f"`context_mm` must be 0 or more, got {context_mm}")
    side = math.ceil(context_mm / interval_mm - 1e-9) if context_mm > 0 and interval_mm > 0 else 0
    return range(max(first, key - side), min(last, key + side) + 1)


def select_slices(catalog: Catalog, file_names: Iterable[str], context_mm: float) -> dict[str, set[int]]:
    """Per series folder, the slice numbers that ``file_names`` (key slices) need with ``context_mm``.

    Raises
    ------
    UsageError
        A name is not a ``File_name`` of ``DL_info.csv``.
    """
    rows: dict[str, list[int]] = {}
    for i, name in enumerate(catalog.file_name.tolist()):
        rows.setdefault(name, []).append(i)
    wanted: dict[str, set[int]] = {}
    unknown = []
    for name in file_names:
        positions = rows.get(name)
        if not positions:
            unknown.append(name)
            continue
        for i in positions:
            first, last = (int(v) for v in catalog.slice_range[i])
            numbers = context_numbers(
                int(catalog.key_slice[i]), first, last, float(catalog.spacing[i, 2]), context_mm
            )
            wanted.setdefault(folder_of(name), set()).update(numbers)
    if unknown:
        shown = ", ".join(unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
        raise UsageError(f"{len(unknown)} requested key slice(s) not in {ANNOTATIONS_NAME}: {shown}")
    return wanted


def read_lesion_list(path: str | os.PathLike[str]) -> list[str]:
    """``File_name`` values from a file: one per line, or a DL_info-format CSV (its ``File_name`` column).

    Raises
    ------
    UsageError
        The file is missing, empty, or a line is not a key-slice file name (``PPPPPP_SS_RR_NNN.png``).
    """
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise UsageError(f"{file}: cannot read the lesion list ({exc.strerror})") from None
    if text.lstrip().startswith("File_name"):
        listed: list[str] = load_catalog(file).file_name.tolist()
        return listed
    names = []
    for number, line in enumerate(text.splitlines(), 1):
        name = line.strip()
        if not name or name.startswith("#"):
            continue
        try:
            parse_file_name(name)
        except UsageError:
            raise UsageError(
                f"{file} line {number}: {name!r} is not a File_name like 000001_01_01_109.png "
                "(give one per line, or a DL_info-format CSV)"
            ) from None
        names.append(name)
    if not names:
        raise UsageError(f"{file}: no File_name values in it")
    return names


def fetch_small_files(
    client: Any, root: Path, files: list[RemoteFile], *, policy: Policy, reporter: Reporter
) -> Path:
    """The files that are not archives (``DL_info.csv``, a mirror's ``MD5_checksums.txt``), fetched
    and verified (a file already there is checked, not fetched again); returns ``ROOT/DL_info.csv``."""
    if not any(f.name == ANNOTATIONS_NAME for f in files):
        raise DownloadError(f"the file list has no {ANNOTATIONS_NAME}, which is needed to find the slices")
    for file in files:
        if file.archive_number is not None:
            continue
        target = root / file.name
        if target.exists():  # resumes as a complete part: only its checksum is computed
            os.replace(target, root / f"{file.name}.part")
        fetch(client, file, root, policy=policy, reporter=reporter)
    return root / ANNOTATIONS_NAME


def load_indexes(
    client: Any, root: Path, archives: list[RemoteFile], *, jobs: int, policy: Policy
) -> tuple[dict[str, ArchiveIndex], int, list[str]]:
    """Each archive's index: reused when the server's size and ETag match, else read again and saved.

    Returns
    -------
    dict, int, list
        Index per archive name; bytes transferred (the probes and directories); archives read now.
    """
    lock = threading.Lock()
    transferred = 0
    read_now: list[str] = []

    def one(archive: RemoteFile) -> tuple[str, ArchiveIndex]:
        nonlocal transferred
        identity = probe(client, archive.name, archive.url, policy=policy)
        index = ArchiveIndex.load(root, archive.name)
        moved = 1
        if (
            index is None
            or index.identity.size != identity.size
            or (index.identity.etag and identity.etag and index.identity.etag != identity.etag)
        ):
            if index is not None:
                log.info(
                    "%s changed on the server since it was indexed; reading its directory again", archive.name
                )
            index, directory_bytes = ArchiveIndex.read_remote(
                client, archive.name, archive.url, identity=identity, policy=policy
            )
            moved += directory_bytes
            index.save(root)
            with lock:
                read_now.append(archive.name)
        index.url = archive.url  # signed links expire: the current one serves the members
        with lock:
            transferred += moved
        return archive.name, index

    with ThreadPoolExecutor(max_workers=max(jobs, 1)) as pool:
        indexes = dict(pool.map(one, archives))
    return indexes, transferred, sorted(read_now)


def plan_requests(spans: list[MemberSpan], max_bytes: int = MAX_REQUEST_BYTES) -> list[RangeRequest]:
    """Merge members that lie back to back in one archive into one request (up to ``max_bytes``)."""
    out: list[RangeRequest] = []
    by_archive: dict[str, list[MemberSpan]] = {}
    for span in spans:
        by_archive.setdefault(span.archive, []).append(span)
    for archive, members in sorted(by_archive.items()):
        members.sort(key=lambda s: s.start)
        run = [members[0]]
        for span in members[1:]:
            if span.start == run[-1].end and span.end - run[0].start <= max_bytes:
                run.append(span)
            else:
                out.append(RangeRequest(archive, run[0].start, run[-1].end, tuple(run)))
                run = [span]
        out.append(RangeRequest(archive, run[0].start, run[-1].end, tuple(run)))
    return out


def fetch_slices(
    root: str | os.PathLike[str],
    file_names: Iterable[str] | None,
    *,
    context_mm: float = 0,
    mirror: str | None = None,
    jobs: int = 4,
    split: str | list[str] | None = None,
    dry_run: bool = False,
    reporter: Reporter | None = None,
    policy: Policy | None = None,
) -> SliceFetchSummary | SlicePlan:
    """Fetch key slices (and their context) into ``root`` without downloading the archives.

    Parameters
    ----------
    root
        The release folder (created); slices land in ``ROOT/Images_png/<folder>/<NNN>.png``.
    file_names
        Key-slice ``File_name`` values (``000001_01_01_109.png``) of ``DL_info.csv``; None: every row.
    context_mm
        Also fetch the neighbours within this distance, mm, inside each row's ``Slice_range``.
    mirror
        Base URL of a mirror (its ``MD5_checksums.txt`` lists the files); default: the official release.
    jobs
        Range requests in flight at once.
    split
        Only rows of this split or these splits (``train``, ``val``, ``test``), among ``file_names``.
    dry_run
        Fetch ``DL_info.csv`` and the archives' directories (kept for the real run), fetch no slice, and
        return the :class:`SlicePlan`.

    Returns
    -------
    SliceFetchSummary or SlicePlan
        What was done (bytes transferred and the time; the plan holds the whole archives' bytes), or
        with ``dry_run`` what would be.

    Raises
    ------
    DownloadError
        After the retries; :class:`~deeplesion.download.remote_zip.RangeNotSupportedError` (a server
        that ignores Range), :class:`~deeplesion.download.remote_zip.ArchiveChangedError` (an archive
        replaced while being read), :class:`ChecksumError` (a member corrupt twice). On Ctrl-C
        (``KeyboardInterrupt``) the slices written are kept and a rerun fetches the rest.
    UsageError
        Names not in ``DL_info.csv``, a negative ``context_mm``.
    """
    import httpx

    root_path = Path(root)
    policy = policy or Policy()
    reporter = reporter or LogReporter()
    started = time.monotonic()
    root_path.mkdir(parents=True, exist_ok=True)
    with httpx.Client(follow_redirects=True, timeout=policy.timeout) as client, folder_lock(root_path):
        files, warnings = resolve_files(client, mirror, "md5", policy=policy)
        for message in warnings:
            log.warning("%s", message)
        annotations = fetch_small_files(client, root_path, files, policy=policy, reporter=reporter)
        catalog = load_catalog(annotations)
        names = catalog.file_name.tolist() if file_names is None else list(file_names)
        if split is not None:
            in_split = set(catalog.filter(split=split).file_name.tolist())
            names = [n for n in names if n in in_split]
        wanted = select_slices(catalog, names, context_mm)
        archives = [f for f in files if f.archive_number is not None]
        if not archives:
            raise DownloadError("the file list names no Images_png_NN.zip archive")
        indexes, index_bytes, read_now = load_indexes(client, root_path, archives, jobs=jobs, policy=policy)
        plan = _plan(root_path, wanted, indexes, index_bytes, read_now)
        if dry_run:
            return plan
        request_slices(root_path, plan.slices)
        summary = SliceFetchSummary(plan)
        _run(client, root_path, plan, indexes, jobs, policy, reporter, summary)
    summary.seconds = time.monotonic() - started
    return summary


def _plan(
    root: Path,
    wanted: dict[str, set[int]],
    indexes: dict[str, ArchiveIndex],
    index_bytes: int,
    read_now: list[str],
) -> SlicePlan:
    where: dict[str, MemberSpan] = {}
    for index in indexes.values():
        where.update(index.spans)
    todo: list[MemberSpan] = []
    absent: list[str] = []
    present = 0
    count = 0
    for folder, numbers in sorted(wanted.items()):
        for number in sorted(numbers):
            count += 1
            name = slice_path(folder, number)
            span = where.get(name)
            if span is None:
                absent.append(name)
                continue
            target = safe_member_path(root, name)
            if target.is_file() and target.stat().st_size == span.size:
                present += 1
            else:
                todo.append(span)
    requests = plan_requests(todo) if todo else []
    return SlicePlan(
        slices={folder: contiguous_runs(numbers) for folder, numbers in sorted(wanted.items())},
        wanted=count,
        present=present,
        not_in_archives=absent,
        requests=requests,
        member_bytes=sum(s.compressed for s in todo),
        request_bytes=sum(r.end - r.start for r in requests),
        archive_bytes=sum(i.identity.size for i in indexes.values()),
        index_bytes=index_bytes,
        indexes_read=read_now,
    )


def _run(
    client: Any,
    root: Path,
    plan: SlicePlan,
    indexes: dict[str, ArchiveIndex],
    jobs: int,
    policy: Policy,
    reporter: Reporter,
    summary: SliceFetchSummary,
) -> None:
    stop = threading.Event()
    lock = threading.Lock()
    records = {name: _load_record(root, name) for name in {r.archive for r in plan.requests}}
    label = "slices"
    reporter.start(label, plan.request_bytes, 0)

    def get(index: ArchiveIndex, start: int, end: int) -> bytes:
        data = ranged_get(
            client, index.url, start, end, name=index.archive, identity=index.identity, policy=policy
        )[0]
        with lock:
            summary.transferred += len(data)
        return data

    def one(request: RangeRequest) -> None:
        if stop.is_set():
            return
        index = indexes[request.archive]
        data = get(index, request.start, request.end)
        contents = index.read_members(list(request.members), data, request.start)
        for span in request.members:
            content = contents[span.name]
            if isinstance(content, zipfile.BadZipFile):
                log.warning("%s in %s: %s; fetching it again", span.name, span.archive, content)
                again = index.read_members([span], get(index, span.start, span.end), span.start)[span.name]
                if isinstance(again, zipfile.BadZipFile):
                    raise ChecksumError(
                        f"{span.name} in {span.archive}: {again} twice (the server or the network "
                        "corrupts it); nothing was written for it"
                    )
                content = again
                with lock:
                    summary.refetched.append(span.name)
            with replacing(safe_member_path(root, span.name)) as tmp:
                tmp.write_bytes(content)
            with lock:
                records[span.archive][span.name] = span.crc
                summary.fetched += 1
        reporter.advance(label, request.end - request.start)

    failures: list[BaseException] = []

    def guarded(request: RangeRequest) -> None:
        try:
            one(request)
        except Exception as exc:  # the other requests go on; the first failure is raised at the end
            with lock:
                failures.append(exc)

    pool = ThreadPoolExecutor(max_workers=max(jobs, 1))
    try:
        for future in [pool.submit(guarded, r) for r in plan.requests]:
            future.result()
        pool.shutdown()
    except BaseException:  # Ctrl-C: the requests in flight finish their slices, the rest are dropped
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
        log.warning("interrupted: %d slice(s) fetched and kept; rerun to fetch the rest", summary.fetched)
        raise
    finally:
        for archive, members in records.items():
            _save_record(root, archive, members)
    if failures:
        for other in failures[1:]:
            log.error("%s", other)
        raise failures[0]
    reporter.finish(label, f"{summary.fetched} slice(s) fetched and verified (CRC-32)")


def _record_path(root: Path, archive: str) -> Path:
    return root / STATE_DIR / FETCHED_DIR / f"{archive}.json"


def _load_record(root: Path, archive: str) -> dict[str, int]:
    path = _record_path(root, archive)
    if not path.is_file():
        return {}
    members: dict[str, int] = json.loads(path.read_text(encoding="utf-8")).get("members", {})
    return members


def _save_record(root: Path, archive: str, members: dict[str, int]) -> None:
    """``ROOT/.deeplesion/fetched/<archive>.json``: the CRC-32 of each member fetched from ``archive``."""
    with replacing(_record_path(root, archive)) as tmp:
        tmp.write_text(json.dumps({"archive": archive, "members": dict(sorted(members.items()))}))


def fetched_records(root: Path) -> dict[str, dict[str, int]]:
    """Per archive, the members fetched from it by :func:`fetch_slices` and their CRC-32."""
    folder = root / STATE_DIR / FETCHED_DIR
    return (
        {
            p.name.removesuffix(".json"): _load_record(root, p.name.removesuffix(".json"))
            for p in sorted(folder.glob("*.json"))
        }
        if folder.is_dir()
        else {}
    )
