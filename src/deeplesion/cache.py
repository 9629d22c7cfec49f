"""The decoded cache: the slices that 2.5D samples read, decoded once and stored as int16 arrays.

For each run (a series folder's ``Slice_range``) holding selected key slices, the cache stores the
slices a stack can reach (``context_mm`` on each side of each key slice, inside the run, those on disk)
cropped to the union of the run's key-slice body crop boxes, as one uncompressed ``.npy`` file that is
memory-mapped when read: no decoding, and only the pixels a sample needs are touched. Beside each array a
JSON record keeps what it was made from (each source PNG's size and mtime, the spacing, the crop offsets,
each key slice's body crop box, the array's CRC-32 and the package version).

Why ``.npy``: a memory-mapped uncompressed array reads a crop at memory speed with numpy alone; a
compressed store (Zarr with Blosc) would halve the disk but decode on every read, which is what the cache
is there to avoid. The price is disk: int16 crops take about 3x the PNGs' bytes per slice (stated by
``deeplesion cache info``).

A cache is used only where it is valid: the first time a series is read, its PNGs' sizes and mtimes are
compared with the records (one ``scandir``); a stale or partial record is reported and the PNGs are read
instead. ``deeplesion cache info --verify`` also checks every array's CRC-32.
"""

from __future__ import annotations

import json
import logging
import math
import os
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from deeplesion.catalog import Catalog
from deeplesion.errors import ImageError, UsageError
from deeplesion.findings import Finding, make_finding
from deeplesion.geometry import body_crop_box
from deeplesion.io import atomic_write_bytes, replacing
from deeplesion.names import IMAGES_DIR, slice_file_name

log = logging.getLogger(__name__)

CACHE_VERSION = 1
DEFAULT_CACHE_DIR = ".deeplesion/cache"
"""Where the cache goes under the data root unless another folder is named."""

Box = tuple[int, int, int, int]


def default_cache_dir(root: str | os.PathLike[str]) -> Path:
    """``ROOT/.deeplesion/cache``."""
    return Path(root) / DEFAULT_CACHE_DIR


@dataclass(frozen=True)
class RunTask:
    """One run to cache (picklable, for a process pool or Dask)."""

    root: str
    cache_dir: str
    folder: str
    first: int
    last: int
    keys: tuple[int, ...]
    interval_mm: float
    spacing: tuple[float, float, float]
    context_mm: float
    force: bool = False


@dataclass
class RunResult:
    """What building one run did."""

    name: str
    status: str  # written | present | empty | failed
    slices: int = 0
    bytes: int = 0
    png_bytes: int = 0
    keys: int = 0
    problem: str = ""


def _record_name(folder: str, first: int, last: int) -> str:
    return f"{folder}/{first:03d}-{last:03d}"


def _sources(directory: Path, numbers: Sequence[int]) -> dict[str, list[int]]:
    out = {}
    for n in numbers:
        stat = (directory / slice_file_name(n)).stat()
        out[str(n)] = [stat.st_size, stat.st_mtime_ns]
    return out


def build_run(task: RunTask) -> RunResult:
    """Cache one run (a pure function of its folder; skips a run whose record is present and current)."""
    from deeplesion import __version__
    from deeplesion.names import slice_number_of
    from deeplesion.slices import read_slice_hu

    name = _record_name(task.folder, task.first, task.last)
    directory = Path(task.root) / IMAGES_DIR / task.folder
    target = Path(task.cache_dir) / f"{name}.npy"
    record_path = target.with_suffix(".json")
    on_disk = sorted(
        n
        for n in (slice_number_of(e.name) for e in os.scandir(directory))
        if n is not None and task.first <= n <= task.last
    )
    reach = math.ceil(task.context_mm / task.interval_mm) if task.interval_mm > 0 else 0
    keys = [k for k in task.keys if k in set(on_disk)]
    needed = sorted({n for n in on_disk for k in keys if abs(n - k) <= reach})
    if not needed:
        return RunResult(name, "empty")
    if not task.force and record_path.is_file():
        record = json.loads(record_path.read_text(encoding="utf-8"))
        if record.get("slices") == needed and record.get("sources") == _sources(directory, needed):
            return RunResult(name, "present", len(needed), target.stat().st_size, keys=len(keys))
    try:
        planes = {n: read_slice_hu(directory / slice_file_name(n)) for n in needed}
    except ImageError as exc:  # one broken slice spoils its run only: the samples read the PNGs there
        return RunResult(name, "failed", problem=str(exc))
    key_boxes = {k: body_crop_box(planes[k]) for k in keys}
    x0 = min(b[0] for b in key_boxes.values())
    y0 = min(b[1] for b in key_boxes.values())
    x1 = max(b[2] for b in key_boxes.values())
    y1 = max(b[3] for b in key_boxes.values())
    array = np.stack([planes[n][y0:y1, x0:x1] for n in needed]).astype(np.int16, copy=False)
    with replacing(target, suffix=".npy") as tmp:
        np.save(tmp, array, allow_pickle=False)
    record = {
        "version": CACHE_VERSION,
        "package": __version__,
        "folder": task.folder,
        "run": [task.first, task.last],
        "slices": needed,
        "box": [x0, y0, x1, y1],
        "key_boxes": {str(k): list(b) for k, b in key_boxes.items()},
        "spacing": list(task.spacing),
        "image_size": [int(planes[needed[0]].shape[1]), int(planes[needed[0]].shape[0])],
        "sources": _sources(directory, needed),
        "crc32": zlib.crc32(array.tobytes()),
        "file": target.name,
    }
    with replacing(record_path) as tmp:  # written last: a record means its array is complete
        tmp.write_text(json.dumps(record), encoding="utf-8")
    png_bytes = sum(size for size, _ in record["sources"].values())
    return RunResult(name, "written", len(needed), target.stat().st_size, png_bytes, len(keys))


@dataclass
class BuildSummary:
    """What :func:`build_cache` did."""

    cache_dir: Path
    runs: int = 0
    written: int = 0
    present: int = 0
    slices: int = 0
    keys: int = 0
    bytes: int = 0
    png_bytes: int = 0
    failed: list[str] = field(default_factory=list)


def build_cache(
    root: str | os.PathLike[str],
    catalog: Catalog,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    split: str | Sequence[str] | None = None,
    context_mm: float = 30.0,
    jobs: int = 1,
    scheduler: str | None = None,
    force: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> BuildSummary:
    """Build (or complete) the decoded cache of the key slices of ``catalog`` (or of ``split``).

    Parameters
    ----------
    cache_dir
        Where to write; default ``ROOT/.deeplesion/cache`` (name another folder when the root is
        read-only).
    context_mm
        How far from each key slice, in mm on each side, stacks may reach (9 slices at 2 mm: 8 mm;
        27 slices: 26 mm).
    jobs, scheduler
        A local process pool, or a Dask scheduler address.
    force
        Rebuild runs whose record is present.
    """
    from deeplesion.parallel import map_calls

    if context_mm < 0:
        raise UsageError(f"`context_mm` must not be negative, got {context_mm:g}")
    if not (Path(root) / IMAGES_DIR).is_dir():
        raise UsageError(f"{Path(root) / IMAGES_DIR} does not exist: `root` must be the release folder")
    rows = catalog.filter(split=split) if split else catalog
    target = Path(cache_dir) if cache_dir is not None else default_cache_dir(root)
    target.mkdir(parents=True, exist_ok=True)
    runs: dict[tuple[str, int, int], RunTask] = {}
    for lesion in rows:
        key = (lesion.folder, *lesion.slice_range)
        task = runs.get(key)
        keys = (*task.keys, lesion.key_slice) if task else (lesion.key_slice,)
        runs[key] = RunTask(
            str(root),
            str(target),
            lesion.folder,
            lesion.slice_range[0],
            lesion.slice_range[1],
            tuple(sorted(set(keys))),
            lesion.slice_interval_mm,
            lesion.spacing,
            context_mm,
            force,
        )
    existing = [t for t in runs.values() if (Path(root) / IMAGES_DIR / t.folder).is_dir()]
    about = {"version": CACHE_VERSION, "context_mm": context_mm}
    atomic_write_bytes(target / "cache.json", json.dumps(about).encode("utf-8"), force=True)
    summary = BuildSummary(target, runs=len(existing))
    calls = [(t,) for t in existing]
    for result in map_calls(build_run, calls, jobs=jobs, scheduler=scheduler, progress=progress):
        summary.written += result.status == "written"
        summary.present += result.status == "present"
        summary.slices += result.slices
        summary.keys += result.keys
        summary.bytes += result.bytes
        summary.png_bytes += result.png_bytes
        if result.problem:
            summary.failed.append(f"{result.name}: {result.problem}")
    return summary


@dataclass(frozen=True)
class CachedRun:
    """One run's record, and its array memory-mapped on first use."""

    path: Path
    folder: str
    slices: tuple[int, ...]
    box: Box
    key_boxes: dict[int, Box]
    sources: dict[str, list[int]]
    crc32: int

    def array(self) -> npt.NDArray[np.int16]:
        """(Z, h, w) int16 HU, memory-mapped (read only)."""
        return np.load(self.path, mmap_mode="r")  # type: ignore[no-any-return]


def _load_record(path: Path) -> CachedRun | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return CachedRun(
            path.with_suffix(".npy"),
            data["folder"],
            tuple(data["slices"]),
            tuple(data["box"]),
            {int(k): tuple(v) for k, v in data["key_boxes"].items()},
            data["sources"],
            int(data["crc32"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


class SliceCache:
    """Reads a cache folder for :class:`deeplesion.release.Release` (``deeplesion.open(root, cache=...)``).

    Per series folder, the first read loads its records and checks them against the PNGs (size and
    mtime); a stale record is reported once and not used.
    """

    def __init__(self, cache_dir: str | os.PathLike[str], root: str | os.PathLike[str]) -> None:
        self.cache_dir = Path(cache_dir)
        self.root = Path(root)
        self._runs: dict[str, list[CachedRun]] = {}
        self._arrays: dict[Path, npt.NDArray[np.int16]] = {}
        if not self.cache_dir.is_dir():
            raise UsageError(f"{self.cache_dir}: no cache there; build one with `deeplesion cache build`")

    def __getstate__(self) -> dict[str, Any]:
        return {"cache_dir": self.cache_dir, "root": self.root}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["cache_dir"], state["root"])  # type: ignore[misc]

    def runs(self, folder: str) -> list[CachedRun]:
        """The valid cached runs of a series folder (checked once per process)."""
        if folder not in self._runs:
            self._runs[folder] = self._check(folder)
        return self._runs[folder]

    def _check(self, folder: str) -> list[CachedRun]:
        directory = self.cache_dir / folder
        if not directory.is_dir():
            return []
        images = self.root / IMAGES_DIR / folder
        stats = {}
        if images.is_dir():
            for entry in os.scandir(images):
                stat = entry.stat()
                stats[entry.name] = [stat.st_size, stat.st_mtime_ns]
        valid = []
        for path in sorted(directory.glob("*.json")):
            run = _load_record(path)
            if run is None or not run.path.is_file():
                log.warning("%s: an unreadable or partial cache record; the PNGs are read instead", path)
                continue
            stale = [n for n, s in run.sources.items() if stats.get(slice_file_name(int(n))) != s]
            if stale:
                log.warning(
                    "%s: stale for %d slice(s) (changed since the cache was built, first %s); the PNGs are "
                    "read instead: rebuild with `deeplesion cache build`",
                    path,
                    len(stale),
                    slice_file_name(int(stale[0])),
                )
                continue
            valid.append(run)
        return valid

    def key_box(self, folder: str, key_slice: int) -> Box | None:
        """The body crop box of a cached key slice."""
        for run in self.runs(folder):
            if key_slice in run.key_boxes:
                return run.key_boxes[key_slice]
        return None

    def region(self, folder: str, slice_number: int, box: Box) -> npt.NDArray[np.int16] | None:
        """Slice ``slice_number`` cropped to ``box`` = (x0, y0, x1, y1), or None when not cached."""
        x0, y0, x1, y1 = box
        for run in self.runs(folder):
            cx0, cy0, cx1, cy1 = run.box
            if slice_number in run.slices and cx0 <= x0 and cy0 <= y0 and x1 <= cx1 and y1 <= cy1:
                array = self._arrays.get(run.path)
                if array is None:
                    array = self._arrays[run.path] = run.array()
                plane = array[run.slices.index(slice_number)]
                return np.asarray(plane[y0 - cy0 : y1 - cy0, x0 - cx0 : x1 - cx0])
        return None


@dataclass
class CacheInfo:
    """What :func:`cache_info` found."""

    cache_dir: Path
    runs: int = 0
    slices: int = 0
    keys: int = 0
    bytes: int = 0
    png_bytes: int = 0
    findings: list[Finding] = field(default_factory=list)


def cache_info(
    cache_dir: str | os.PathLike[str], root: str | os.PathLike[str], *, verify: bool = False
) -> CacheInfo:
    """Size and state of a cache: every record checked against its PNGs (size, mtime), and with
    ``verify`` every array's CRC-32."""
    cache = SliceCache(cache_dir, root)
    info = CacheInfo(cache.cache_dir)
    for path in sorted(cache.cache_dir.glob("*/*.json")):
        run = _load_record(path)
        rel = str(path.relative_to(cache.cache_dir))
        if run is None or not run.path.is_file():
            info.findings.append(
                make_finding("cache-partial", f"{rel}: unreadable record or no array", file=rel)
            )
            continue
        if run not in cache.runs(run.folder):
            info.findings.append(
                make_finding("cache-stale", f"{rel}: its PNGs changed since it was built", file=rel)
            )
            continue
        info.runs += 1
        info.slices += len(run.slices)
        info.keys += len(run.key_boxes)
        info.bytes += run.path.stat().st_size
        info.png_bytes += sum(size for size, _ in run.sources.values())
        if verify and zlib.crc32(np.ascontiguousarray(run.array()).tobytes()) != run.crc32:
            info.findings.append(
                make_finding("cache-corrupt", f"{rel}: the array's CRC-32 differs from its record", file=rel)
            )
    return info
