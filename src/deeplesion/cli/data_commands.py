"""``deeplesion download``, ``verify`` and ``serve-mirror``: getting the data and checking it."""

from __future__ import annotations

import enum
import sys
import threading
from pathlib import Path
from typing import Annotated, Any

import typer

from deeplesion.cli.common import EXIT_DATA_ERRORS, JsonOption, ProgressOption, handle_errors, print_json
from deeplesion.errors import UsageError


class ChecksumChoice(enum.StrEnum):
    MD5 = "md5"
    SHA256 = "sha256"
    SIZE = "size"


class OnlyChoice(enum.StrEnum):
    KEY_SLICES = "key-slices"


class RichReporter:
    """Overall and per-file bars (bytes, rate, ETA) on stderr."""

    def __init__(self, progress: Any, total: int) -> None:
        self.progress = progress
        self.overall = progress.add_task("all files", total=total or None)
        self.tasks: dict[str, Any] = {}
        self.lock = threading.Lock()

    def start(self, name: str, total: int | None, done: int) -> None:
        with self.lock:
            if name in self.tasks:
                self.progress.reset(self.tasks[name], total=total, completed=done)
            else:
                self.tasks[name] = self.progress.add_task(name, total=total, completed=done)

    def advance(self, name: str, nbytes: int) -> None:
        self.progress.advance(self.tasks[name], nbytes)
        self.progress.advance(self.overall, nbytes)

    def finish(self, name: str, status: str) -> None:
        with self.lock:
            task = self.tasks.pop(name, None)
        if task is not None:
            self.progress.remove_task(task)
        self.progress.console.print(f"{name}: {status}")


@handle_errors
def download(
    root: Annotated[Path, typer.Option(help="Folder to download into (created).")],
    parts: Annotated[str | None, typer.Option(help="Archives to get, like 1-3,7 (default: all 56).")] = None,
    jobs: Annotated[int, typer.Option(min=1, help="Files downloaded at the same time.")] = 4,
    mirror: Annotated[
        str | None, typer.Option(help="Base URL of a mirror (its MD5_checksums.txt lists the files).")
    ] = None,
    no_extract: Annotated[
        bool, typer.Option("--no-extract", help="Keep the archives, do not unpack them.")
    ] = False,
    keep_zips: Annotated[
        bool, typer.Option("--keep-zips", help="Keep each archive after unpacking it.")
    ] = False,
    checksum: Annotated[ChecksumChoice, typer.Option(help="How files are verified.")] = ChecksumChoice.MD5,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would be transferred and the disk use.")
    ] = False,
    no_progress: Annotated[
        bool, typer.Option("--no-progress", help="No progress bars (log lines instead).")
    ] = False,
    attempts: Annotated[
        int, typer.Option(min=1, help="Tries for each request before giving up (with back-off).")
    ] = 8,
    only: Annotated[
        OnlyChoice | None,
        typer.Option(
            help="key-slices: fetch only the key slices (and --context-mm) out of the remote archives."
        ),
    ] = None,
    context_mm: Annotated[
        float, typer.Option(min=0, help="With --only: also the slices within this distance, mm.")
    ] = 0.0,
    split: Annotated[
        list[str] | None, typer.Option(help="With --only: rows of this split (train, val, test); repeatable.")
    ] = None,
    lesions: Annotated[
        Path | None,
        typer.Option(help="With --only: File_name values, one per line, or a DL_info-format CSV."),
    ] = None,
    json: JsonOption = False,
) -> None:
    """Download the release (or --parts of it), resumably and verified, and unpack it into ROOT/Images_png.

    With --only key-slices: read the archives remotely (HTTP range requests) and fetch only the key slices
    of the rows asked for (--split, --lesions; default all) and their neighbours within --context-mm.
    """
    import logging

    from deeplesion import download as dl

    if only is not None:
        if parts or no_extract or keep_zips or checksum != ChecksumChoice.MD5:
            raise UsageError(
                "--only key-slices fetches single slices: drop --parts, --no-extract, "
                "--keep-zips and --checksum"
            )
        _fetch_key_slices(
            root, context_mm, split, lesions, jobs, mirror, dry_run, no_progress, attempts, json
        )
        return
    if context_mm or split or lesions:
        raise UsageError("--context-mm, --split and --lesions go with --only key-slices")
    wanted = dl.parse_parts(parts)
    common: dict[str, Any] = dict(
        parts=wanted,
        jobs=jobs,
        mirror=mirror,
        extract=not no_extract,
        keep_zips=keep_zips,
        checksum=checksum.value,
        policy=dl.Policy(attempts=attempts),
    )
    if dry_run:
        plan = dl.download(root, dry_run=True, **common)
        assert isinstance(plan, dl.Plan)
        document = {
            "root": str(root),
            "files": [f.name for f in plan.files],
            "present": plan.present,
            "bytes_to_transfer": plan.to_transfer,
            "unknown_sizes": plan.unknown_sizes,
            "peak_disk_bytes": plan.peak_bytes,
        }
        if json:
            print_json(document)
        else:
            todo = [f for f in plan.files if f.name not in plan.present]
            for f in todo:
                print(f"would get {f.name:<22} {'?' if f.size is None else dl.human_bytes(f.size):>10}")
            print(
                f"{len(todo)} file(s) to get, {dl.human_bytes(plan.to_transfer)} to transfer"
                + (f" (+{len(plan.unknown_sizes)} of unknown size)" if plan.unknown_sizes else "")
                + f"; peak disk use about {dl.human_bytes(plan.peak_bytes)}; {len(plan.present)} already here"
            )
        return
    if no_progress or not sys.stderr.isatty():
        logging.getLogger("deeplesion").setLevel(min(logging.getLogger().level, logging.INFO))
        summary = dl.download(root, **common)
    else:
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        from deeplesion.cli.common import stderr_console

        plan = dl.download(root, dry_run=True, **common)
        assert isinstance(plan, dl.Plan)
        columns = (
            TextColumn("{task.description:<22}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=stderr_console()) as progress:
            summary = dl.download(root, reporter=RichReporter(progress, plan.to_transfer), **common)
    assert isinstance(summary, dl.Summary)
    document = {
        "root": str(root),
        "downloaded": summary.downloaded,
        "resumed": summary.resumed,
        "already_present": summary.present,
        "extracted": summary.extracted,
        "already_extracted": summary.already_extracted,
        "zips_removed": summary.zips_removed,
        "bytes_transferred": summary.transferred,
        "seconds": round(summary.seconds, 2),
        "warnings": summary.warnings,
    }
    if json:
        print_json(document)
    else:
        counts = (
            f"downloaded {len(summary.downloaded)}, resumed {len(summary.resumed)}, already present "
            f"{len(summary.present)}; extracted {len(summary.extracted)} "
            f"(already {len(summary.already_extracted)})"
        )
        print(f"{counts}; {dl.human_bytes(summary.transferred)} in {summary.seconds:.1f} s")


def _fetch_key_slices(
    root: Path,
    context_mm: float,
    split: list[str] | None,
    lesions: Path | None,
    jobs: int,
    mirror: str | None,
    dry_run: bool,
    no_progress: bool,
    attempts: int,
    json: bool,
) -> None:
    import logging

    from deeplesion import download as dl
    from deeplesion.download.partial import SliceFetchSummary, SlicePlan, fetch_slices, read_lesion_list

    names = read_lesion_list(lesions) if lesions is not None else None
    common: dict[str, Any] = dict(
        context_mm=context_mm, mirror=mirror, jobs=jobs, split=split, policy=dl.Policy(attempts=attempts)
    )
    plan = fetch_slices(root, names, dry_run=True, **common)
    assert isinstance(plan, SlicePlan)
    share = plan.request_bytes / plan.archive_bytes if plan.archive_bytes else 0.0
    document: dict[str, Any] = {
        "root": str(root),
        "context_mm": context_mm,
        "slices_wanted": plan.wanted,
        "slices_present": plan.present,
        "not_in_archives": plan.not_in_archives,
        "requests": len(plan.requests),
        "member_bytes": plan.member_bytes,
        "request_bytes": plan.request_bytes,
        "archive_bytes": plan.archive_bytes,
        "index_bytes": plan.index_bytes,
        "indexes_read": plan.indexes_read,
    }
    for name in plan.not_in_archives[:5]:
        logging.getLogger("deeplesion").warning("%s: in DL_info.csv, but in no archive", name)
    if dry_run:
        if json:
            print_json(document)
        else:
            todo = plan.wanted - plan.present - len(plan.not_in_archives)
            print(
                f"would fetch {todo} slice(s) in {len(plan.requests)} request(s): "
                f"{dl.human_bytes(plan.request_bytes)} of {dl.human_bytes(plan.archive_bytes)} of archives "
                f"({share:.2%}); {plan.present} already here; index {dl.human_bytes(plan.index_bytes)} "
                f"read now ({len(plan.indexes_read)} archive(s) indexed, kept for the next runs)"
            )
        return
    if no_progress or not sys.stderr.isatty():
        logging.getLogger("deeplesion").setLevel(min(logging.getLogger().level, logging.INFO))
        summary = fetch_slices(root, names, **common)
    else:
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

        from deeplesion.cli.common import stderr_console

        columns = (TextColumn("{task.description:<22}"), BarColumn(), DownloadColumn(), TransferSpeedColumn())
        with Progress(*columns, console=stderr_console()) as progress:
            summary = fetch_slices(root, names, reporter=RichReporter(progress, plan.request_bytes), **common)
    assert isinstance(summary, SliceFetchSummary)
    share = summary.transferred / summary.plan.archive_bytes if summary.plan.archive_bytes else 0.0
    document.update(
        slices_fetched=summary.fetched,
        refetched=summary.refetched,
        bytes_transferred=summary.transferred,
        seconds=round(summary.seconds, 2),
    )
    if json:
        print_json(document)
    else:
        print(
            f"fetched {summary.fetched} slice(s) ({summary.plan.present} already here): "
            f"{dl.human_bytes(summary.transferred)} transferred against "
            f"{dl.human_bytes(summary.plan.archive_bytes)} of whole archives ({share:.2%}) in "
            f"{summary.seconds:.1f} s; index {dl.human_bytes(plan.index_bytes)} (once, kept in "
            f"{root / '.deeplesion' / 'index'})"
        )


@handle_errors
def verify(
    root: Annotated[Path, typer.Option(help="The release folder.")],
    checksum: Annotated[ChecksumChoice, typer.Option(help="How archives are checked.")] = ChecksumChoice.MD5,
    progress: ProgressOption = None,
    json: JsonOption = False,
) -> None:
    """Integrity: archives against the file list (size, MD5 or SHA-256), extracted files against CRC-32."""
    from deeplesion.cli.progress import progress_bar
    from deeplesion.download import verify_release
    from deeplesion.errors import DataRootError
    from deeplesion.findings import count_by_severity, has_errors

    if not root.is_dir():
        raise DataRootError(f"{root} is not a folder")
    with progress_bar("verifying", progress) as update:
        findings = verify_release(root, checksum=checksum.value, progress=update)
    counts = count_by_severity(findings)
    if json:
        print_json({"root": str(root), "counts": counts, "findings": [f.to_dict() for f in findings]})
    else:
        for f in findings:
            print(f.line_text())
        print(f"{counts['error']} errors, {counts['warning']} warnings, {counts['note']} notes")
    if has_errors(findings):
        raise typer.Exit(EXIT_DATA_ERRORS)


@handle_errors
def serve_mirror(
    directory: Annotated[Path, typer.Argument(help="Folder of release files to serve.")],
    host: Annotated[str, typer.Option(help="Address to listen on (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port (0: pick a free one).")] = 8765,
    max_seconds: Annotated[float | None, typer.Option(help="Stop after this many seconds.")] = None,
) -> None:
    """Serve a folder of release files over HTTP with Range support (for download --mirror)."""
    from deeplesion.errors import DataRootError
    from deeplesion.mirror import MirrorServer

    if not directory.is_dir():
        raise DataRootError(f"{directory} is not a folder")
    server = MirrorServer(directory, host=host, port=port)
    print(f"serving {directory} at {server.url} (Ctrl-C to stop)", file=sys.stderr, flush=True)
    try:
        server.serve_for(max_seconds)
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)


def register(app: typer.Typer) -> None:
    """Add the data commands to ``app``."""
    app.command()(download)
    app.command()(verify)
    app.command("serve-mirror")(serve_mirror)
