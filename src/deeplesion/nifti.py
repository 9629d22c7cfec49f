"""NIfTI sub-volumes: one file per contiguous run of a series, official-compatible or world-aligned.

Layouts (both always int16 HU; the official converter writes float64 for runs of 300+ slices):

``official``
    What ``DL_save_nifti.py`` writes, so existing tools and published box files line up: the data array
    is (row, column, slice) = (H, W, Z), and the affine maps array axis 0 (image row) to -y, axis 1
    (column) to -x and axis 2 (slice number) to -z, scaled by the run's spacing, with origin 0.
``world``
    The same axes plus a translation that places each run at its slice position: the z origin is
    ``-(first - 1) * slice_interval``, so the runs of one series line up in a viewer (when the runs of a
    series have different intervals, each keeps its own origin and a warning says so).

In RAS+ world terms both are anatomically oriented: columns run toward the patient's left (-x), rows
toward the back (-y), slice numbers toward the feet (-z). The layout and the package version are
written in the header's ``descrip`` field (``deeplesion 0.1.0 layout=world``).

Z conventions in use (see :func:`slice_to_index`): the slice number in the series (1-based, the PNG
name; the manual 1K 3D test set uses it), and the 0-based index inside a sub-volume file
(LesionHarvester's boxes).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from deeplesion.catalog import CSV_PIXEL_ORIGIN, Catalog, Lesion, Split
from deeplesion.download.state import Requested
from deeplesion.errors import ImageError, UsageError
from deeplesion.io import replacing
from deeplesion.names import IMAGES_DIR, parse_subvolume_name, subvolume_name
from deeplesion.release import Run, annotated_runs

log = logging.getLogger(__name__)

Layout = Literal["official", "world"]
LAYOUTS: tuple[str, ...] = ("official", "world")
DEFAULT_DIRS = {"official": "Images_nifti", "world": "Images_nifti_world"}


def slice_to_index(slice_number: int, first: int) -> int:
    """Slice number in the series (1-based, manual 1K frame) -> 0-based index in the sub-volume starting
    at slice ``first`` (LesionHarvester's frame)."""
    return slice_number - first


def index_to_slice(index: int, first: int) -> int:
    """0-based index inside a sub-volume -> slice number in the series."""
    return index + first


def lesion_frames(lesion: Lesion, first: int | None = None) -> dict[str, Any]:
    """Where a lesion's key slice and box are, in each convention in use.

    Parameters
    ----------
    lesion
        A catalog record.
    first
        First slice of the sub-volume holding it, when the run on disk starts elsewhere than its
        ``Slice_range`` (default: the ``Slice_range`` start, as the official converter names the file).

    Returns
    -------
    dict
        ``subvolume`` (file name), ``slice_number`` (1-based in the series: the PNG name and the manual 1K
        set's z), ``subvolume_index`` (0-based inside the file: LesionHarvester's z, and the Z index of
        :func:`read_subvolume`), ``box`` (0-based project frame) and ``box_csv`` (the release's frame).
    """
    start = lesion.slice_range[0] if first is None else first
    return {
        "subvolume": subvolume_name(lesion.folder, start, lesion.slice_range[1]),
        "slice_number": lesion.key_slice,
        "subvolume_index": slice_to_index(lesion.key_slice, start),
        "box": [float(v) for v in lesion.box],
        "box_csv": [float(v) + CSV_PIXEL_ORIGIN for v in lesion.box],
    }


def affine(spacing: tuple[float, float, float], first: int, layout: Layout) -> npt.NDArray[np.float64]:
    """The 4x4 affine of a run (see the module docstring); ``spacing`` is (x, y, z) mm."""
    sx, sy, sz = spacing
    out = np.zeros((4, 4))
    out[0, 1] = -sx  # array axis 1 (column) -> -x
    out[1, 0] = -sy  # array axis 0 (row) -> -y
    out[2, 2] = -sz  # array axis 2 (slice) -> -z
    out[3, 3] = 1.0
    if layout == "world":
        out[2, 3] = -(first - 1) * sz
    return out


def _descrip(layout: str) -> bytes:
    from deeplesion import __version__

    return f"deeplesion {__version__} layout={layout}".encode()


def write_subvolume(
    path: Path, volume: npt.NDArray[np.int16], spacing: tuple[float, float, float], first: int, layout: Layout
) -> Path:
    """Write a (Z, H, W) int16 HU volume as a NIfTI file in ``layout``, atomically."""
    import nibabel as nib

    data = np.ascontiguousarray(np.transpose(np.asarray(volume, dtype=np.int16), (1, 2, 0)))  # (H, W, Z)
    image = nib.Nifti1Image(data, affine(spacing, first, layout))
    image.header["descrip"] = _descrip(layout)
    image.header.set_xyzt_units("mm")
    image.set_qform(image.affine, code=1)
    image.set_sform(image.affine, code=1)
    with replacing(path, suffix=".nii.gz") as tmp:  # nibabel picks the format by the extension
        nib.save(image, str(tmp))
    return path


def file_layout(path: Path) -> str | None:
    """The layout recorded in a file's header by this toolkit, or None (another tool, or unreadable)."""
    import nibabel as nib

    try:
        header: Any = nib.load(str(path)).header
        descrip = bytes(header["descrip"]).decode(errors="replace").strip("\x00 ")
    except Exception:  # nibabel raises many kinds for a truncated or foreign file
        return None
    if descrip.startswith("deeplesion ") and "layout=" in descrip:
        return descrip.rsplit("layout=", 1)[1]
    return None


def subvolume_complete(path: Path, layout: Layout, slices: int) -> bool:
    """Whether ``path`` is a complete sub-volume of this toolkit in ``layout`` with ``slices`` planes.

    Complete means readable to the end, not merely present: the layout in the header, the number of
    planes, and the whole gzip stream read back (gzip checks its CRC-32 and length at the end), so a file
    cut short or corrupted by an interrupted or concurrent writer is not taken as done.
    """
    import gzip
    import zlib

    import nibabel as nib

    if file_layout(path) != layout:
        return False
    try:
        header: Any = nib.load(str(path)).header
        if len(header.get_data_shape()) != 3 or int(header.get_data_shape()[2]) != slices:
            return False
        with gzip.open(path, "rb") as stream:
            while stream.read(1 << 22):
                pass
    except (OSError, EOFError, ValueError, zlib.error, nib.filebasedimages.ImageFileError):
        return False
    return True


@dataclass(frozen=True)
class SubVolume:
    """A sub-volume read back: (Z, H, W) int16 HU, Z in increasing slice number."""

    data: npt.NDArray[np.int16]
    slice_numbers: npt.NDArray[np.int64]
    spacing: tuple[float, float, float]
    layout: str | None


def read_subvolume(path: str | os.PathLike[str]) -> SubVolume:
    """Read a sub-volume file named ``<series>_<first>-<last>.nii.gz`` into display orientation."""
    path = Path(path)
    _, first, last = parse_subvolume_name(path.name)
    data, spacing = read_nifti_display(path)
    if data.shape[0] != last - first + 1:
        raise ImageError(f"{path}: {data.shape[0]} slices, the name says {first}-{last}")
    return SubVolume(
        data.astype(np.int16, copy=False),
        np.arange(first, last + 1, dtype=np.int64),
        spacing,
        file_layout(path),
    )


def read_nifti_display(path: str | os.PathLike[str]) -> tuple[npt.NDArray[Any], tuple[float, float, float]]:
    """Any NIfTI CT volume -> (Z, H, W) in this toolkit's display orientation, and spacing (x, y, z) mm.

    The display orientation: rows toward the patient's back, columns toward the patient's left (the
    radiological view), Z toward the feet (increasing slice number). Works from the affine, so any axis
    order or flip is undone, including the z-reversed variant of the dataset author's later files, as long
    as their affine says so.
    """
    import nibabel as nib
    from nibabel.orientations import apply_orientation, axcodes2ornt, io_orientation, ornt_transform

    image: Any = nib.load(str(path))
    data = np.asanyarray(image.dataobj)
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise ImageError(f"{path}: a {data.ndim}-D image; a CT volume has 3 dimensions")
    current = io_orientation(image.affine)
    target = axcodes2ornt(("P", "L", "I"))  # array axes (row, column, slice) of the display
    transform = ornt_transform(current, target)
    display = apply_orientation(data, transform)  # (H, W, Z)
    zooms = image.header.get_zooms()[:3]
    order = [int(i) for i in transform[:, 0]]  # where each input axis went
    spacing_by_axis = [0.0, 0.0, 0.0]
    for source_axis, target_axis in enumerate(order):
        spacing_by_axis[target_axis] = float(zooms[source_axis])
    sy, sx, sz = spacing_by_axis
    return np.transpose(display, (2, 0, 1)), (sx, sy, sz)


# --- export -------------------------------------------------------------------------------------------


@dataclass
class SeriesExport:
    """What exporting one folder did."""

    folder: str
    written: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    not_requested: list[str] = field(default_factory=list)
    slices: int = 0
    bytes: int = 0
    warnings: list[str] = field(default_factory=list)


def export_series(
    root: str,
    folder: str,
    runs: tuple[Run, ...],
    out: str,
    layout: Layout,
    force: bool,
    partial: bool = False,
) -> SeriesExport:
    """Write one file per contiguous run on disk of ``folder`` (a pure function of the folder).

    A run takes the spacing of the annotated run it overlaps (runs of one series can differ); a run
    without rows takes the folder's first annotated spacing, with a warning. In a folder fetched in part
    (``partial``: a slice fetch asked for some of its slices), a run on disk that does not hold a whole
    annotated run is not written: it is listed in ``not_requested``.
    """
    from deeplesion.names import slice_number_of
    from deeplesion.slices import contiguous_runs, read_slice_hu

    result = SeriesExport(folder)
    directory = Path(root) / IMAGES_DIR / folder
    numbers = {n for n in (slice_number_of(p.name) for p in directory.iterdir()) if n is not None}
    intervals = {r.spacing[2] for r in runs}
    if layout == "world" and len(intervals) > 1:
        shown = ", ".join(f"{v:g}" for v in sorted(intervals))
        message = f"{folder}: runs with different slice intervals ({shown} mm): each keeps its own origin"
        result.warnings.append(message + ", so they do not share one z axis")
    for first, last in contiguous_runs(numbers):
        name = subvolume_name(folder, first, last)
        target = Path(out) / name
        match = [r for r in runs if r.first <= last and first <= r.last]
        if partial and match and not any(first <= r.first and r.last <= last for r in match):
            r = match[0]
            result.not_requested.append(
                f"{folder} slices {first}-{last}: part of run {r.first}-{r.last}, whose other slices were "
                "not requested by the slice fetch"
            )
            continue
        if match:
            spacing = match[0].spacing
        elif runs:
            spacing = runs[0].spacing
            result.warnings.append(f"{name}: no annotated run here; spacing taken from {folder}'s first rows")
        else:
            result.warnings.append(f"{name}: the folder has no annotations, so no spacing; skipped")
            continue
        if target.exists() and not force:
            if file_layout(target) != layout:  # the other layout, another tool's or unreadable: not ours
                result.conflicts.append(name)
                continue
            if subvolume_complete(target, layout, last - first + 1):
                result.skipped.append(name)
                continue
            result.warnings.append(f"{name}: the file there is incomplete or corrupt; written again")
        try:
            volume = np.stack([read_slice_hu(directory / f"{n:03d}.png") for n in range(first, last + 1)])
        except ImageError as exc:  # one broken slice spoils its run only; the rest of the export goes on
            result.failed.append(f"{name}: {exc}")
            continue
        write_subvolume(target, volume, spacing, first, layout)
        result.written.append(name)
        result.slices += last - first + 1
        result.bytes += target.stat().st_size
    return result


@dataclass
class ExportSummary:
    """What :func:`export_nifti` did."""

    out: Path
    layout: str
    series: int = 0
    written: int = 0
    skipped: int = 0
    conflicts: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    not_requested: list[str] = field(default_factory=list)
    slices: int = 0
    bytes: int = 0
    warnings: list[str] = field(default_factory=list)


def export_nifti(
    root: str | os.PathLike[str],
    catalog: Catalog,
    *,
    out: str | os.PathLike[str] | None = None,
    layout: Layout = "official",
    split: str | Split | None = None,
    series: list[str] | None = None,
    jobs: int = 1,
    scheduler: str | None = None,
    force: bool = False,
    progress: Any = None,
) -> ExportSummary:
    """Export the series folders of ``root`` (or those of ``split`` / ``series``) as NIfTI sub-volumes.

    Parameters
    ----------
    out
        Flat output folder; default ``ROOT/Images_nifti`` (official) or ``ROOT/Images_nifti_world``.
    layout
        ``official`` or ``world``.
    split, series
        Restrict to the folders of a split, or to named folders.
    jobs, scheduler
        A local process pool, or a Dask scheduler address.
    force
        Rewrite files that exist (by default, files of the same layout are complete and skipped; files
        of another layout or another tool are left alone and listed as conflicts).
    """
    from deeplesion.parallel import map_calls

    if layout not in LAYOUTS:
        raise UsageError(f"`layout={layout!r}`: use official or world")
    root_path = Path(root)
    images = root_path / IMAGES_DIR
    if not images.is_dir():
        raise UsageError(f"{images} does not exist: nothing to export (is `root` the release folder?)")
    rows = catalog.filter(split=split) if split is not None else catalog
    runs = annotated_runs(rows)
    on_disk = {p.name for p in images.iterdir() if p.is_dir()}
    folders = sorted(on_disk & set(runs)) if split is not None else sorted(on_disk)
    if series:
        unknown = sorted(set(series) - on_disk)
        if unknown:
            raise UsageError(f"`series`: {', '.join(unknown)} not under {images}")
        folders = [f for f in folders if f in set(series)]
    partial = set(Requested.load(root_path).slices)  # folders a slice fetch asked for in part
    target = Path(out) if out is not None else root_path / DEFAULT_DIRS[layout]
    target.mkdir(parents=True, exist_ok=True)
    # largest folders first, so that a long series does not finish alone at the end (better balance)
    folders.sort(key=lambda f: -sum(1 for _ in os.scandir(images / f)))
    calls = [
        (
            str(root_path),
            f,
            tuple(runs.get(f, [])),
            str(target),
            layout,
            force,
            f in partial,
        )
        for f in folders
    ]
    summary = ExportSummary(target, layout, series=len(folders))
    for result in map_calls(export_series, calls, jobs=jobs, scheduler=scheduler, progress=progress):
        summary.written += len(result.written)
        summary.skipped += len(result.skipped)
        summary.conflicts.extend(result.conflicts)
        summary.failed.extend(result.failed)
        summary.not_requested.extend(result.not_requested)
        summary.slices += result.slices
        summary.bytes += result.bytes
        summary.warnings.extend(result.warnings)
    for message in summary.warnings:
        log.warning("%s", message)
    return summary
