"""Benchmark: samples per second of ``KeySliceDataset`` from the PNGs and from the decoded cache, alone
and through a DataLoader, and the cache's bytes per key slice next to the PNGs'.

Run: ``.venv/bin/python benchmarks/bench_data.py`` (needs the torch extra; uses ../shared/data when present
and a synthetic release generated in a temporary folder). 9 slices at 2 mm, the reference pipeline.
"Per core" divides by the processes doing the work (1, or the number of workers).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import torch

import deeplesion
from deeplesion.cache import build_cache, cache_info
from deeplesion.catalog import load_catalog
from deeplesion.data import KeySliceDataset, data_loader
from deeplesion.synth import make_synthetic_release
from machine import machine_header

PNG16 = Path(__file__).resolve().parents[1].parent / "shared/data/deeplesion/png16"
UNION = Path(__file__).resolve().parents[1].parent / "shared/data/deeplesion/DL_info/DL_info_union.csv"


def reference_rate(dataset: KeySliceDataset, passes: int) -> float:
    """Samples per second of the straightforward reference-style loader of bench_context (float64 blends
    of whole slices, then window, crop, resize), for comparison."""
    from bench_context import reference_style

    lesions = [dataset.lesions(i)[0] for i in range(len(dataset))]
    start = time.perf_counter()
    for _ in range(passes):
        for lesion in lesions:
            reference_style(dataset.release, lesion)
    return passes * len(lesions) / (time.perf_counter() - start)


def rate(dataset: Any, workers: int | None, passes: int) -> float:
    """Samples per second over ``passes`` passes (``workers`` None: indexing the dataset directly). The
    loader is made once and its workers kept between passes (their start is not what is measured)."""
    count = 0
    if workers is None:
        start = time.perf_counter()
        for _ in range(passes):
            for i in range(len(dataset)):
                dataset[i]
                count += 1
        return count / (time.perf_counter() - start)
    loader = data_loader(dataset, batch_size=2, num_workers=workers, persistent_workers=workers > 0)
    for _ in loader:  # the first pass starts the workers
        pass
    start = time.perf_counter()
    for _ in range(passes):
        for images, _ in loader:
            count += len(images)
    return count / (time.perf_counter() - start)


def measure(name: str, dataset: Any, passes: int, workers_list: tuple[int | None, ...]) -> None:
    rate(dataset, None, 1)  # warm the page cache
    for workers in workers_list:
        per_second = rate(dataset, workers, passes)
        cores = workers if workers else 1
        label = "dataset[i]" if workers is None else f"DataLoader, {workers} workers"
        print(f"| {name} | {len(dataset)} | {label} | {per_second:.1f} | {per_second / cores:.1f} |")


def with_cache(
    name: str, dataset: KeySliceDataset, cache_dir: Path, passes: int, workers: tuple[int | None, ...]
) -> None:
    release = dataset.release
    build_cache(release.root, dataset.rows, cache_dir=cache_dir, context_mm=8.0)
    cached = KeySliceDataset(
        release, split=None, exclude_noisy=False, on_missing="skip", cache=cache_dir
    )  # the same items as the PNG rows above: every row, noisy ones included
    measure(f"{name}, cache", cached, passes, workers)
    info = cache_info(cache_dir, release.root)
    sizes.append((name, info.keys, info.bytes / max(info.keys, 1), info.png_bytes / max(info.keys, 1)))


sizes: list[tuple[str, int, float, float]] = []


def main() -> None:
    cv2.setNumThreads(1)
    print(machine_header(f"OpenCV {cv2.__version__}"))
    print("9 slices at 2 mm, reference pipeline (crop, model window, 0.8 mm); cache built with 8 mm context")
    print("| series | items | how | samples/s | samples/s per core |")
    print("|---|---:|---|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        if PNG16.exists() and UNION.exists():
            catalog = load_catalog(UNION).filter(file_names=["000001_03_01_088.png"])
            release = deeplesion.open(PNG16, catalog=catalog)
            dataset = KeySliceDataset(release, split=None, exclude_noisy=False)
            reference = reference_rate(dataset, 20)
            print(f"| real 000001_03_01 (1 mm) | 1 | reference-style loader | {reference:.1f} | - |")
            measure("real 000001_03_01 (1 mm)", dataset, 20, (None, 0))
            # one item: repeated 8 times so that 2 workers have work to share
            measure("real 000001_03_01 (1 mm) x8", torch.utils.data.ConcatDataset([dataset] * 8), 3, (2,))
            with_cache("real 000001_03_01 (1 mm)", dataset, Path(tmp) / "real-cache", 20, (None, 0))
            cached_real = KeySliceDataset(
                release, split=None, exclude_noisy=False, cache=Path(tmp) / "real-cache"
            )
            measure(
                "real 000001_03_01 (1 mm) x8, cache",
                torch.utils.data.ConcatDataset([cached_real] * 8),
                3,
                (2,),
            )
        else:
            print("(real series skipped: ../shared/data absent)")
        make_synthetic_release(Path(tmp) / "r", patients=4, seed=1)
        release = deeplesion.open(Path(tmp) / "r")
        dataset = KeySliceDataset(release, split=None, exclude_noisy=False, on_missing="skip")
        reference = reference_rate(dataset, 3)
        print(f"| synthetic release | {len(dataset)} | reference-style loader | {reference:.1f} | - |")
        measure("synthetic release", dataset, 3, (None, 0, 2))
        with_cache("synthetic release", dataset, Path(tmp) / "synth-cache", 3, (None, 0, 2))
    print()
    print("| cache of | key slices | cache MB per key slice | PNG MB per key slice (the cached slices) |")
    print("|---|---:|---:|---:|")
    for name, keys, cache_bytes, png_bytes in sizes:
        print(f"| {name} | {keys} | {cache_bytes / 1e6:.2f} | {png_bytes / 1e6:.2f} |")


if __name__ == "__main__":
    main()
