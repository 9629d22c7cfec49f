"""Benchmark: NIfTI export against a straightforward re-implementation of the official converter.

Run: ``.venv/bin/python benchmarks/bench_nifti.py [PATIENTS]`` (default 10). Generates a synthetic
release (plus one 320-slice series, copied slices, so that the official converter's float64 path for runs
of 300+ slices is exercised) in a temporary folder, then exports it with both, one process each, and
with ``--jobs 2``.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import cv2
import nibabel as nib
import numpy as np

from deeplesion.catalog import dl_info_text, from_lesions, load_catalog
from deeplesion.nifti import export_nifti
from deeplesion.slices import contiguous_runs
from deeplesion.synth import make_synthetic_release
from machine import machine_header


def official_style(root: Path, out: Path) -> tuple[int, int]:
    """The official algorithm: per folder, contiguous runs, int32 -> int16 slices, dstack, spacing from the
    folder's first row, float64 for 300+ slices, origin 0."""
    out.mkdir(parents=True, exist_ok=True)
    catalog = load_catalog(root / "DL_info.csv")
    spacing_of = {}
    for lesion in catalog:
        spacing_of.setdefault(lesion.folder, lesion.spacing)
    slices = written = 0
    for folder in sorted(os.listdir(root / "Images_png")):
        numbers = sorted(int(n[:-4]) for n in os.listdir(root / "Images_png" / folder))
        for first, last in contiguous_runs(numbers):
            ims = []
            for n in range(first, last + 1):
                im = cv2.imread(str(root / "Images_png" / folder / f"{n:03d}.png"), -1)
                ims.append((im.astype(np.int32) - 32768).astype(np.int16))
            vol = np.dstack(ims)
            if vol.shape[2] >= 300:
                vol = vol.astype(np.float64)  # the official converter's behaviour for long runs
            sx, sy, sz = spacing_of[folder]
            affine = np.array([[0, -sx, 0, 0], [-sy, 0, 0, 0], [0, 0, -sz, 0], [0, 0, 0, 1]])
            path = out / f"{folder}_{first:03d}-{last:03d}.nii.gz"
            nib.save(nib.Nifti1Image(vol, affine), str(path))
            slices += last - first + 1
            written += path.stat().st_size
    return slices, written


def add_long_series(root: Path, length: int = 320) -> None:
    catalog = load_catalog(root / "DL_info.csv")
    source = catalog[0]
    pngs = sorted((root / "Images_png" / source.folder).glob("*.png"))
    folder = root / "Images_png" / "009999_01_01"
    folder.mkdir()
    for n in range(1, length + 1):
        shutil.copyfile(pngs[n % len(pngs)], folder / f"{n:03d}.png")
    row = dataclasses.replace(
        source,
        file_name="009999_01_01_160.png",
        patient=9999,
        study=1,
        series=1,
        key_slice=160,
        slice_range=(1, length),
        spacing=(*source.spacing[:2], 1.0),
    )
    rows = [*catalog, row]
    (root / "DL_info.csv").write_text(dl_info_text(from_lesions(rows)))


def main() -> None:
    patients = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    print(machine_header())
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "release"
        make_synthetic_release(root, patients=patients, seed=0)
        add_long_series(root)
        catalog = load_catalog(root / "DL_info.csv")
        print("| converter | processes | slices | seconds | slices/s | MB written |")
        print("|---|---:|---:|---:|---:|---:|")
        start = time.perf_counter()
        slices, written = official_style(root, Path(tmp) / "official")
        seconds = time.perf_counter() - start
        print(
            f"| official algorithm (re-implemented) | 1 | {slices} | {seconds:.1f} | {slices / seconds:.0f} "
            f"| {written / 1e6:.0f} |"
        )
        for jobs in (1, 2):
            out = Path(tmp) / f"ours{jobs}"
            start = time.perf_counter()
            summary = export_nifti(root, catalog, out=out, jobs=jobs)
            seconds = time.perf_counter() - start
            print(
                f"| deeplesion export nifti | {jobs} | {summary.slices} | {seconds:.1f} "
                f"| {summary.slices / seconds:.0f} | {summary.bytes / 1e6:.0f} |"
            )


if __name__ == "__main__":
    main()
