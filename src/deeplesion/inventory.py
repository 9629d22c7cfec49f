"""The inventory: what is on disk under ``Images_png/`` against what ``DL_info.csv`` says should be there.

The work is a pure function of one series folder (:func:`inspect_folder`), mapped over folders by a local
process pool or a Dask cluster. It reports :class:`~deeplesion.findings.Finding` objects with the shared
codes (``docs/findings.md``):

- ``key-slice-missing`` / ``slice-missing``: a key slice, or context slices inside a ``Slice_range``, are
  not on disk (consecutive missing slices make one finding; its value is the range);
- ``run-differs``: the slices on disk around a run extend beyond or stop short of its ``Slice_range``
  (the run keeps its on-disk extent);
- ``png-unreadable``, ``png-bit-depth``, ``image-size-mismatch``: from the PNG header and trailer
  (``quick``, reads 33 + 12 bytes per file), or from decoding every slice (``full``);
- ``slice-numbers-invalid``: names that are not ``<digits>.png``, or two names for one number;
- ``series-mixed-intervals``, ``slice-number-wide``, ``folder-unannotated``: notes;
- ``not-requested``: absent, but a partial download did not ask for it
  (``ROOT/.deeplesion/requested.json``: ``{"folders": [...] or null, "key_slices_only": bool}``, and
  from a slice fetch ``"slices": {folder: [[first, last], ...]}``: the folders asked for in part and
  their slice ranges; see ``docs/partial-releases.md``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deeplesion.catalog import Catalog
from deeplesion.download.state import Requested
from deeplesion.findings import Finding, make_finding
from deeplesion.names import IMAGES_DIR, folder_of, slice_number_of, slice_path
from deeplesion.slices import PNG_SIGNATURE, PNG_TRAILER, contiguous_runs, png_problem

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunExpectation:
    """One annotated run of a folder: slice numbers ``first``-``last``, interval, size, key slices."""

    first: int
    last: int
    interval_mm: float
    image_size: tuple[int, int]
    keys: tuple[tuple[int, str, int], ...]  # (key slice number, file_name, CSV line)


@dataclass(frozen=True)
class FolderExpectation:
    """What the annotations say about one series folder (small and picklable)."""

    folder: str
    runs: tuple[RunExpectation, ...]
    requested: bool = True
    key_slices_only: bool = False
    requested_slices: tuple[tuple[int, int], ...] | None = None  # None: the whole folder was requested

    def asked(self, number: int) -> bool:
        """Whether slice ``number`` was requested (by the download or slice fetch that made the folder)."""
        if self.requested_slices is None:
            return True
        return any(first <= number <= last for first, last in self.requested_slices)


@dataclass
class FolderReport:
    """Findings and counts of one folder."""

    folder: str
    findings: list[Finding] = field(default_factory=list)
    slices: int = 0
    bytes: int = 0
    decoded: int = 0


def expectations(catalog: Catalog, requested: Requested = Requested()) -> dict[str, FolderExpectation]:
    """Per folder, its annotated runs (from ``Slice_range``, interval and size of their rows)."""
    runs: dict[str, dict[tuple[int, int], dict[str, Any]]] = {}
    names = catalog.file_name.tolist()
    for i, name in enumerate(names):
        folder = folder_of(name)
        first, last = (int(v) for v in catalog.slice_range[i])
        run = runs.setdefault(folder, {}).setdefault(
            (first, last),
            {
                "interval": float(catalog.spacing[i, 2]),
                "size": tuple(int(v) for v in catalog.image_size[i]),
                "keys": [],
            },
        )
        run["keys"].append((int(catalog.key_slice[i]), name, int(catalog.row[i]) + 2))
    out = {}
    for folder, by_range in runs.items():
        out[folder] = FolderExpectation(
            folder,
            tuple(
                RunExpectation(first, last, r["interval"], r["size"], tuple(r["keys"]))
                for (first, last), r in sorted(by_range.items())
            ),
            requested=requested.folders is None or folder in requested.folders,
            key_slices_only=requested.key_slices_only,
            requested_slices=requested.slice_ranges(folder),
        )
    return out


def png_header(path: str) -> tuple[str, tuple[int, int, int, int] | None, int]:
    """Cheap PNG check: ``(problem, (width, height, bit_depth, colour_type), size_bytes)``.

    ``problem`` is ``""`` when the signature, the IHDR chunk and the IEND trailer are all in place.
    """
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as handle:
            head = handle.read(33)
            if size >= 45:
                handle.seek(size - 12)
                tail = handle.read(12)
            else:
                tail = b""
    except OSError as exc:
        return f"cannot be read ({exc.strerror})", None, 0
    if head[:8] != PNG_SIGNATURE or head[12:16] != b"IHDR" or len(head) < 33:
        return "not a PNG file (bad signature or header)", None, size
    info = (int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big"), head[24], head[25])
    if tail != PNG_TRAILER:
        return "truncated (no IEND trailer): an interrupted download or copy", info, size
    return "", info, size


def inspect_folder(
    root: str, expectation: FolderExpectation | None, folder: str, full: bool = False
) -> FolderReport:
    """Check one series folder against its annotated runs (a pure function of the folder's files).

    Parameters
    ----------
    root
        Release root (holding ``Images_png/``).
    expectation
        The folder's annotated runs, or None for a folder with no annotation.
    folder
        ``PPPPPP_SS_RR``.
    full
        Decode every slice (about 5 ms each) instead of reading PNG headers only.
    """
    report = FolderReport(folder)
    add = report.findings.append
    directory = os.path.join(root, IMAGES_DIR, folder)
    where = f"{IMAGES_DIR}/{folder}"
    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError:
        names = []
        present_folder = False
    else:
        present_folder = True
    if expectation is None:
        add(
            make_finding(
                "folder-unannotated", f"{where}: {len(names)} file(s), no row in the annotations", file=where
            )
        )
    numbers: dict[int, str] = {}
    for name in names:
        number = slice_number_of(name)
        if number is None:
            stem = name.partition(".")[0]
            if stem.isdigit() and name.endswith(".png"):
                # 9.png or 0009.png: a %03d path never finds it, and sorted names stop being in slice order
                message = (
                    f"{where}/{name}: slice {int(stem)} is not named {int(stem):03d}.png as in the release"
                )
            else:
                message = f"{where}/{name}: not a <number>.png slice name"
            add(make_finding("slice-numbers-invalid", message, file=f"{where}/{name}", value=name))
            continue
        numbers[number] = name
    on_disk = sorted(numbers)
    if on_disk and on_disk[-1] >= 1000:
        add(
            make_finding(
                "slice-number-wide",
                f"{where}: slice numbers reach {on_disk[-1]} (4-digit names)",
                file=where,
                value=str(on_disk[-1]),
            )
        )
    runs = expectation.runs if expectation is not None else ()
    if len({r.interval_mm for r in runs}) > 1:
        shown = ", ".join(f"{r.first}-{r.last}: {r.interval_mm:g} mm" for r in runs)
        add(
            make_finding(
                "series-mixed-intervals",
                f"{where}: runs with different slice intervals ({shown})",
                file=where,
            )
        )
    if expectation is not None:
        _check_runs(report, expectation, set(on_disk), where, present_folder)
    size_of: dict[int, tuple[int, int]] = {}
    for run in runs:
        for n in range(run.first, run.last + 1):
            size_of[n] = run.image_size
    default_size = runs[0].image_size if runs else None
    for number in on_disk:
        path = os.path.join(directory, numbers[number])
        rel = f"{where}/{numbers[number]}"
        expected = size_of.get(number, default_size)
        report.slices += 1
        problem, info, nbytes = png_header(path)
        report.bytes += nbytes
        if problem or info is None:
            add(make_finding("png-unreadable", f"{rel}: {problem}", file=rel))
            continue
        width, height, depth, colour = info
        if depth != 16 or colour != 0:
            kinds = {0: "grey", 2: "RGB", 3: "palette", 4: "grey+alpha", 6: "RGBA"}
            kind = f"{depth}-bit {kinds.get(colour, colour)}"
            message = f"{rel}: {kind}; DeepLesion slices are 16-bit grey"
            add(make_finding("png-bit-depth", message, file=rel, value=f"{depth}-bit"))
            continue
        if expected is not None and (width, height) != expected:
            message = f"{rel}: {width}x{height} px, Image_size says {expected[0]}x{expected[1]}"
            add(make_finding("image-size-mismatch", message, file=rel, value=f"{width}x{height}"))
            continue
        if full:
            report.decoded += 1
            _decode_check(rel, path, add)
    return report


def _decode_check(rel: str, path: str, add: Callable[[Finding], None]) -> None:
    import cv2
    import numpy as np

    with open(path, "rb") as handle:
        data = handle.read()
    problem = png_problem(data)  # before libpng, which would print its own complaint to stderr
    image = None if problem else cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None:
        add(make_finding("png-unreadable", f"{rel}: {problem or 'the PNG data does not decode'}", file=rel))
    elif image.ndim != 2 or image.dtype.itemsize != 2:
        add(
            make_finding(
                "png-bit-depth", f"{rel}: decodes to {image.dtype} with shape {image.shape}", file=rel
            )
        )


def _check_runs(
    report: FolderReport, expectation: FolderExpectation, on_disk: set[int], where: str, present_folder: bool
) -> None:
    add = report.findings.append
    if not expectation.requested and not on_disk:
        add(
            make_finding(
                "not-requested", f"{where}: not on disk and not requested by the partial download", file=where
            )
        )
        return
    claimed = {n for r in expectation.runs for n in range(r.first, r.last + 1)}
    for run in expectation.runs:
        for key, file_name, line in run.keys:
            if key not in on_disk:
                path = slice_path(expectation.folder, key)
                message = f"{path}: key slice of {file_name} (DL_info line {line}) is not on disk"
                if expectation.asked(key):
                    add(make_finding("key-slice-missing", message, file=path, value=file_name))
                else:
                    message += " and was not requested by the partial download"
                    add(make_finding("not-requested", message, file=path, value=file_name))
        if not present_folder:
            continue
        missing = [
            n
            for n in range(run.first, run.last + 1)
            if n not in on_disk and n not in {k for k, _, _ in run.keys}
        ]
        not_asked = {n for n in missing if not expectation.asked(n)}
        for start, end in contiguous_runs(not_asked):
            path = slice_path(expectation.folder, start)
            span = f"{start:03d}" if start == end else f"{start:03d}-{end:03d}"
            message = f"{where}: context slice(s) {span} of run {run.first}-{run.last} not requested"
            add(make_finding("not-requested", message + " by the slice fetch", file=path, value=span))
        for start, end in contiguous_runs([n for n in missing if n not in not_asked]):
            path = slice_path(expectation.folder, start)
            span = f"{start:03d}" if start == end else f"{start:03d}-{end:03d}"
            count = end - start + 1
            if expectation.key_slices_only:
                message = f"{where}: context slice(s) {span} of run {run.first}-{run.last} not downloaded"
                add(make_finding("not-requested", message + " (key slices only)", file=path, value=span))
            else:
                add(
                    make_finding(
                        "slice-missing",
                        f"{where}: {count} context slice(s) {span} of run {run.first}-{run.last} missing",
                        file=path,
                        value=span,
                    )
                )
        # the run's extent on disk: its slices plus any neighbours that no other run claims
        others = claimed - set(range(run.first, run.last + 1))
        block = {n for n in on_disk if run.first <= n <= run.last}
        low = min(block) if block else None
        while low is not None and low - 1 in on_disk and low - 1 not in others:
            low -= 1
        high = max(block) if block else None
        while high is not None and high + 1 in on_disk and high + 1 not in others:
            high += 1
        if low is not None and high is not None and (low, high) != (run.first, run.last):
            partial = expectation.key_slices_only or expectation.requested_slices is not None
            if partial and low >= run.first and high <= run.last:
                continue
            add(
                make_finding(
                    "run-differs",
                    f"{where}: slices {low}-{high} on disk, Slice_range says {run.first}-{run.last}",
                    file=where,
                    value=f"{low}-{high}",
                )
            )


@dataclass
class InventoryReport:
    """The result of :func:`run_inventory`."""

    findings: list[Finding]
    folders: int
    slices: int
    bytes: int
    decoded: int


def run_inventory(
    root: str | os.PathLike[str],
    catalog: Catalog,
    *,
    full: bool = False,
    jobs: int = 1,
    scheduler: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> InventoryReport:
    """Compare ``ROOT/Images_png`` with ``catalog``; annotation findings are not included (see
    :func:`deeplesion.checks.check_catalog`).

    Parameters
    ----------
    root
        The release folder.
    catalog
        Its annotations.
    full
        Decode every slice instead of reading PNG headers and trailers.
    jobs
        Local worker processes.
    scheduler
        Address of a Dask scheduler (``tcp://host:8786``) to map the folders on instead.
    progress
        ``progress(done, total)`` after each folder.

    Returns
    -------
    InventoryReport
        Findings sorted by file, and counts.
    """
    root_path = Path(root)
    requested = Requested.load(root_path)
    expected = expectations(catalog, requested)
    images = root_path / IMAGES_DIR
    on_disk = sorted(e.name for e in os.scandir(images) if e.is_dir()) if images.is_dir() else []
    folders = sorted(set(on_disk) | set(expected))
    from deeplesion.parallel import map_calls

    calls = [(str(root_path), expected.get(f), f, full) for f in folders]
    reports = map_calls(inspect_folder, calls, jobs=jobs, scheduler=scheduler, progress=progress)
    findings: list[Finding] = []
    slices = nbytes = decoded = 0
    for report in reports:
        findings.extend(report.findings)
        slices += report.slices
        nbytes += report.bytes
        decoded += report.decoded
    findings.sort(key=lambda f: (f.file or "", f.code))
    return InventoryReport(findings, len(folders), slices, nbytes, decoded)
