"""Benchmark: 9-slice 2 mm context samples (crop, window, 0.8 mm resize) against pure PNG decoding.

Run: ``.venv/bin/python benchmarks/bench_context.py`` (uses ../shared/data when present, and a synthetic
release generated in a temporary folder). One process, one OpenCV thread (as in a worker process).

For each series the table gives the time to decode the PNGs a sample needs, the time of the whole
sample with ``Release.sample``, and with a straightforward reference-style loader (float64 blending of
full slices, window, then crop, then resize) for comparison. "overhead" = (sample - decode) / decode.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

import deeplesion
from deeplesion.catalog import load_catalog
from deeplesion.context import plan_context, resolve_offset
from deeplesion.geometry import body_crop_box, spacing_scale
from deeplesion.synth import make_synthetic_release
from machine import machine_header

PNG16 = Path(__file__).resolve().parents[1].parent / "shared/data/deeplesion/png16"
UNION = Path(__file__).resolve().parents[1].parent / "shared/data/deeplesion/DL_info/DL_info_union.csv"
SLICES, INTERVAL_MM = 9, 2.0


def median_ms(func: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def needed_paths(release: deeplesion.Release, lesion: deeplesion.Lesion) -> list[Path]:
    plan = plan_context(SLICES, INTERVAL_MM, lesion.slice_interval_mm)
    first, last = lesion.slice_range
    available = {n for n in release.slice_numbers(lesion.folder) if first <= n <= last}
    numbers = {resolve_offset(lesion.key_slice, o, available) for channel in plan for o, _ in channel}
    return [release.path(lesion.folder, n) for n in sorted(numbers)]


def decode_only(paths: list[Path]) -> None:
    for path in paths:
        cv2.imread(str(path), cv2.IMREAD_UNCHANGED)


def reference_style(release: deeplesion.Release, lesion: deeplesion.Lesion) -> np.ndarray:
    """How the reference loaders do it: float64 blends of whole slices, window, crop, resize."""
    plan = plan_context(SLICES, INTERVAL_MM, lesion.slice_interval_mm, "reference")
    cache: dict[int, np.ndarray] = {}
    on_disk = release.slice_numbers(lesion.folder)

    def load(n: int) -> np.ndarray:
        if n not in cache:
            cache[n] = cv2.imread(str(release.path(lesion.folder, n)), cv2.IMREAD_UNCHANGED)
        return cache[n]

    channels = []
    for channel in plan:
        image = sum(w * load(resolve_offset(lesion.key_slice, o, on_disk)).astype(float) for o, w in channel)
        channels.append(image)
    im = cv2.merge(channels).astype(np.float32) - 32768
    im = np.clip((im + 1024) / 4095 * 255, 0, 255)
    x0, y0, x1, y1 = body_crop_box(im[:, :, SLICES // 2] / 255 * 4095 - 1024)
    im = im[y0:y1, x0:x1]
    scale = spacing_scale(lesion.spacing[0], im.shape[:2])
    return cv2.resize(im, None, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)


def measure(name: str, release: deeplesion.Release, lesions: list[deeplesion.Lesion], repeats: int) -> None:
    decode = sum(median_ms(lambda p=needed_paths(release, x): decode_only(p), repeats) for x in lesions)
    ours = sum(
        median_ms(lambda x=x: release.sample(x, slices=SLICES, interval_mm=INTERVAL_MM), repeats)
        for x in lesions
    )
    ref = sum(median_ms(lambda x=x: reference_style(release, x), repeats) for x in lesions)
    n = len(lesions)
    files = sum(len(needed_paths(release, x)) for x in lesions) / n
    print(
        f"| {name} | {n} | {files:.1f} | {decode / n:.1f} | {ours / n:.1f} | {1000 * n / ours:.0f} "
        f"| {(ours - decode) / decode:.0%} | {ref / n:.1f} | {(ref - decode) / decode:.0%} |"
    )


def main() -> None:
    cv2.setNumThreads(1)
    print(machine_header(f"OpenCV {cv2.__version__}"))
    print(f"{SLICES} slices at {INTERVAL_MM:g} mm, crop + model window + 0.8 mm resize, 1 thread")
    print(
        "| series | samples | PNGs/sample | decode ms | sample ms | samples/s | overhead "
        "| reference-style ms | its overhead |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    if PNG16.exists() and UNION.exists():
        catalog = load_catalog(UNION).filter(file_names=["000001_03_01_088.png"])
        release = deeplesion.open(PNG16, catalog=catalog)
        measure("real 000001_03_01 (1 mm)", release, list(catalog), repeats=15)
    else:
        print("(real series skipped: ../shared/data absent)")
    with tempfile.TemporaryDirectory() as tmp:
        make_synthetic_release(Path(tmp) / "r", patients=4, seed=1)
        release = deeplesion.open(Path(tmp) / "r")
        five = [x for x in release.catalog if x.slice_interval_mm == 5.0][:10]
        measure("synthetic 5 mm", release, five, repeats=7)


if __name__ == "__main__":
    main()
