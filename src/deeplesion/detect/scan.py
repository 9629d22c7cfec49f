"""``deeplesion detect``: the detector on a user's own CT (a NIfTI volume, a DICOM series, a PNG folder).

Every input becomes one volume in the release's axial layout: (Z, H, W) int16 HU, columns toward the
patient's left, rows toward the back, slice 0 the most superior (head first); with its spacing (x, y, z)
in mm. Each slice is then detected with 2.5D context at the scan's own spacing (the stack's channels
``slice_interval_mm`` apart, blended between slices as the release's stacks are, the volume's ends
replicated) and the reference preprocessing; boxes come back in the slice's own pixels.
"""

from __future__ import annotations

import csv
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from deeplesion.errors import DeepLesionError, UsageError
from deeplesion.transforms import Pipeline

log = logging.getLogger(__name__)

MIN_SIZE_PX = 64
"""Slices smaller than this (in either direction) are refused: the detector needs anatomy around a lesion."""
MIN_SLICES = 2
DETECTION_COLUMNS = ("slice_index", "x1", "y1", "x2", "y2", "score", "long_mm", "short_mm")


class ScanError(DeepLesionError, ValueError):
    """A scan the detector cannot read or use (not CT, 2D only, too small, no spacing, unreadable)."""


@dataclass
class Scan:
    """A CT volume in the release's axial layout.

    Attributes
    ----------
    hu
        (Z, H, W) int16 Hounsfield units; slice 0 is the most superior.
    spacing
        (x, y, z) mm: column width, row height, slice interval.
    source
        Where it came from, for messages.
    kind
        ``nifti``, ``dicom`` or ``png``.
    """

    hu: npt.NDArray[np.int16]
    spacing: tuple[float, float, float]
    source: str
    kind: str


def _check(scan: Scan) -> Scan:
    z, h, w = scan.hu.shape
    if z < MIN_SLICES:
        raise ScanError(
            f"{scan.source}: {z} slice(s): 2D only; the detector needs a series (a volume, or a folder of "
            "slices) for its 3D context"
        )
    if min(h, w) < MIN_SIZE_PX:
        raise ScanError(f"{scan.source}: slices of {w}x{h} px are too small (at least {MIN_SIZE_PX} px)")
    if not all(np.isfinite(v) and v > 0 for v in scan.spacing):
        raise ScanError(f"{scan.source}: no usable voxel spacing ({scan.spacing}); the detector works in mm")
    return scan


def read_nifti(path: Path) -> Scan:
    """A NIfTI volume in HU (any orientation nibabel reads), reoriented to the release's layout."""
    import nibabel as nib
    from nibabel.orientations import apply_orientation, axcodes2ornt, io_orientation, ornt_transform

    try:
        image: Any = nib.load(str(path))
        data = np.asarray(image.dataobj)
    except Exception as exc:  # nibabel raises many kinds for a broken file
        raise ScanError(f"{path}: not a readable NIfTI file ({type(exc).__name__}: {exc})") from None
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise ScanError(f"{path}: {data.ndim}-D data ({data.shape}); 2D only or not a single CT volume")
    current = io_orientation(image.affine)
    # array axes (column, row, slice) -> toward the patient's Left, Posterior and Inferior (head first)
    change = ornt_transform(current, axcodes2ornt(("L", "P", "I")))
    oriented = apply_orientation(data, change)
    zooms = np.abs(np.array(image.header.get_zooms()[:3], dtype=np.float64))
    spacing = tuple(float(zooms[int(change[i, 0])]) for i in range(3))
    hu = np.round(np.transpose(oriented, (2, 1, 0))).astype(np.int16)
    return _check(Scan(np.ascontiguousarray(hu), (spacing[0], spacing[1], spacing[2]), str(path), "nifti"))


def read_dicom_series(folder: Path) -> Scan:
    """A DICOM series folder: CT images only, HU from the rescale slope and intercept, slices ordered by
    their position along the slice normal (head first)."""
    try:
        import pydicom
    except ImportError:
        raise UsageError("reading DICOM needs pydicom: pip install 'deeplesion[dicom]'") from None
    files = sorted(p for p in folder.iterdir() if p.is_file())
    slices = []
    for file in files:
        try:
            ds = pydicom.dcmread(file, stop_before_pixels=False)
        except Exception:  # not DICOM: other files in the folder are skipped
            log.debug("%s: not DICOM, skipped", file)
            continue
        if "PixelData" not in ds:
            continue
        modality = str(getattr(ds, "Modality", ""))
        if modality != "CT":
            raise ScanError(f"{file}: modality {modality or 'unknown'}, not CT; the detector reads CT only")
        slices.append((file, ds))
    if not slices:
        raise ScanError(f"{folder}: no DICOM image with pixel data in it")
    first = slices[0][1]
    if len(slices) < MIN_SLICES:
        raise ScanError(
            f"{folder}: 1 CT slice: 2D only; the detector needs a series (a volume, or a folder of slices) "
            "for its 3D context"
        )
    try:
        row_dir = np.array(first.ImageOrientationPatient[:3], dtype=np.float64)
        col_dir = np.array(first.ImageOrientationPatient[3:], dtype=np.float64)
        spacing_rc = [float(v) for v in first.PixelSpacing]
    except AttributeError as exc:
        raise ScanError(
            f"{slices[0][0]}: no {exc.name or 'orientation or pixel spacing'}; cannot place it"
        ) from None
    normal = np.cross(row_dir, col_dir)
    # LPS: +z toward the head; head first = the largest projection on the normal first (axial normal +z)
    positions = [
        float(np.dot(np.array(ds.ImagePositionPatient, dtype=np.float64), normal)) for _, ds in slices
    ]
    order = np.argsort(positions)[::-1] if normal[2] >= 0 else np.argsort(positions)
    images = []
    for i in order:
        file, ds = slices[int(i)]
        try:
            pixels = ds.pixel_array.astype(np.float64)
        except Exception as exc:
            raise ScanError(f"{file}: the pixel data cannot be decoded ({exc})") from None
        slope = float(getattr(ds, "RescaleSlope", 1.0))
        intercept = float(getattr(ds, "RescaleIntercept", 0.0))
        images.append(pixels * slope + intercept)
    shapes = {im.shape for im in images}
    if len(shapes) > 1:
        raise ScanError(f"{folder}: slices of different sizes {sorted(shapes)}: more than one series?")
    steps = np.abs(np.diff(np.sort(positions)))
    z = float(np.median(steps)) if len(steps) else float("nan")
    hu = np.clip(np.round(np.stack(images)), -32768, 32767).astype(np.int16)
    return _check(Scan(hu, (spacing_rc[1], spacing_rc[0], z), str(folder), "dicom"))


def read_png_folder(folder: Path, annotations: Path | None = None) -> Scan:
    """A DeepLesion series folder (``NNN.png``, 16-bit); the spacing comes from ``DL_info.csv`` (given, or
    in the release folder two levels up)."""
    from deeplesion.catalog import load_catalog
    from deeplesion.names import slice_number_of
    from deeplesion.slices import contiguous_runs, read_slice_hu

    numbers = sorted(n for n in (slice_number_of(p.name) for p in folder.iterdir()) if n is not None)
    if not numbers:
        raise ScanError(f"{folder}: no DeepLesion slice (NNN.png) in it")
    runs = contiguous_runs(numbers)
    if len(runs) > 1:
        first, last = max(runs, key=lambda r: r[1] - r[0])
        log.warning("%s: %d runs of slices; detecting on the longest, %d-%d", folder, len(runs), first, last)
    else:
        first, last = runs[0]
    csv_path = annotations or folder.parent.parent / "DL_info.csv"
    if not csv_path.is_file():
        raise ScanError(f"{folder}: no DL_info.csv to give the spacing (pass --annotations)")
    rows = [x for x in load_catalog(csv_path) if x.folder == folder.name]
    if not rows:
        raise ScanError(f"{folder}: {csv_path} has no row for {folder.name}, so no spacing")
    spacing = rows[0].spacing
    hu = np.stack([read_slice_hu(folder / f"{n:03d}.png") for n in range(first, last + 1)])
    return _check(Scan(hu, (float(spacing[0]), float(spacing[1]), float(spacing[2])), str(folder), "png"))


def read_scan(path: str | os.PathLike[str], annotations: str | os.PathLike[str] | None = None) -> Scan:
    """A NIfTI file, a DICOM series folder or a DeepLesion PNG folder.

    Raises
    ------
    ScanError
        Unreadable, not CT, 2D only, too small, or without spacing.
    """
    source = Path(path)
    if not source.exists():
        raise UsageError(f"{source}: no such file or folder")
    if source.is_file():
        if source.name.endswith((".nii", ".nii.gz")):
            return read_nifti(source)
        if source.suffix.lower() == ".dcm" or _is_dicom(source):
            raise ScanError(
                f"{source}: a single DICOM file: 2D only; give the folder of the whole series for 3D context"
            )
        raise ScanError(f"{source}: not a NIfTI file (.nii, .nii.gz), a DICOM series folder or a PNG folder")
    if any(p.name.endswith(".png") for p in source.iterdir()):
        return read_png_folder(source, Path(annotations) if annotations else None)
    return read_dicom_series(source)


def _is_dicom(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(132)[128:132] == b"DICM"


def volume_sample(
    scan: Scan, index: int, *, slices: int, interval_mm: float, preprocessing: Pipeline
) -> tuple[npt.NDArray[np.float32], Any]:
    """The model input for slice ``index`` (0-based): the 2.5D stack at the scan's spacing, through
    ``preprocessing`` (the model's: ``TrainConfig.pipeline()``). Returns the (S, H', W') image and the
    transform from the slice's pixels to the image's."""
    from deeplesion.context import build_stack, plan_context
    from deeplesion.release import preprocess_stack

    key_hu = scan.hu[index]
    plan = plan_context(slices, interval_mm, scan.spacing[2], "correct")
    # slice numbers are 1-based in build_stack's world: number = index + 1
    record = preprocess_stack(
        preprocessing,
        key_hu,
        lambda box, gain, offset: build_stack(
            index + 1,
            plan,
            range(1, scan.hu.shape[0] + 1),
            lambda n: scan.hu[n - 1],
            crop_box=box,
            preloaded={index + 1: key_hu},
            gain=gain,
            offset=offset,
        ),
        spacing_mm=scan.spacing[0],
        rng=np.random.default_rng(0),
    )
    return record.image, record.transform


@dataclass
class ScanSummary:
    """What :func:`detect_scan` wrote."""

    out: Path
    slices: int
    detections: int
    overlays: list[Path]
    seconds: float


def detect_scan(
    scan_path: str | os.PathLike[str],
    checkpoint: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    threshold: float = 0.5,
    score_floor: float = 0.05,
    annotations: str | os.PathLike[str] | None = None,
    batch: int = 4,
    device: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ScanSummary:
    """Detect lesions on every slice of a scan; write ``OUT/detections.csv`` and an overlay PNG per
    detection above ``threshold``.

    ``detections.csv``: ``slice_index`` (0-based, head first), ``x1,y1,x2,y2`` (0-based pixels of that
    axial slice), ``score``, ``long_mm``, ``short_mm`` (approximate: the box's longer and shorter side).
    """
    import torch

    from deeplesion.detect.predict import load_detector, pick_device
    from deeplesion.detect.train import detect_stacks
    from deeplesion.io import replacing

    started = time.monotonic()
    scan = read_scan(scan_path, annotations)
    chosen = pick_device(device)
    model, config = load_detector(checkpoint, device=chosen, score_floor=score_floor)
    target = Path(out)
    target.mkdir(parents=True, exist_ok=True)
    depth = scan.hu.shape[0]
    preprocessing = config.pipeline()

    def items() -> Iterator[tuple[Any, Any, str]]:
        for index in range(depth):
            image, transform = volume_sample(
                scan,
                index,
                slices=config.slices,
                interval_mm=config.slice_interval_mm,
                preprocessing=preprocessing,
            )
            yield torch.from_numpy(np.ascontiguousarray(image)), transform.inverse(), str(index)

    done = 0

    def advance(n: int) -> None:
        nonlocal done
        done += n
        if progress:
            progress(done, depth)

    names, boxes, scores = detect_stacks(model, items(), device=chosen, batch=batch, on_batch=advance)
    indices = np.array([int(n) for n in names], dtype=np.int64)
    widths = (boxes[:, 2] - boxes[:, 0]) * scan.spacing[0] if len(boxes) else np.zeros(0)
    heights = (boxes[:, 3] - boxes[:, 1]) * scan.spacing[1] if len(boxes) else np.zeros(0)
    order = np.lexsort((-scores, indices))
    with replacing(target / "detections.csv") as tmp, tmp.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(DETECTION_COLUMNS)
        for i in order:
            writer.writerow(
                [
                    int(indices[i]),
                    *(f"{v:.2f}" for v in boxes[i]),
                    f"{scores[i]:.5f}",
                    f"{max(widths[i], heights[i]):.1f}",
                    f"{min(widths[i], heights[i]):.1f}",
                ]
            )
    overlays = [
        _overlay(scan, int(indices[i]), boxes[i], float(scores[i]), target, rank)
        for rank, i in enumerate(j for j in order if scores[j] >= threshold)
    ]
    return ScanSummary(target, depth, len(scores), overlays, time.monotonic() - started)


def _overlay(
    scan: Scan, index: int, box: npt.NDArray[np.float64], score: float, out: Path, rank: int
) -> Path:
    """The slice in the soft-tissue window with the box and its score (one PNG per finding)."""
    import cv2

    from deeplesion.viz import write_png
    from deeplesion.windowing import apply_window

    grey = apply_window(scan.hu[index], "soft-tissue", scale="uint8")
    rgb: npt.NDArray[np.uint8] = np.ascontiguousarray(np.repeat(grey[..., None], 3, axis=2), dtype=np.uint8)
    x1, y1, x2, y2 = (round(float(v)) for v in box)
    cv2.rectangle(rgb, (x1, y1), (x2, y2), (255, 160, 0), 1)
    cv2.putText(rgb, f"{score:.2f}", (x1, max(y1 - 4, 10)), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 160, 0), 1)
    return write_png(out / f"finding-{rank + 1:03d}-slice-{index:03d}.png", rgb)
