"""Benchmark: which store the decoded cache uses. Uncompressed memory-mapped ``.npy`` against Zarr
(Blosc-compressed, one chunk per slice) on the real 61-slice 1 mm series: disk bytes, and the time to
read the 9 cropped slices of one 2 mm sample.

Run: ``.venv/bin/python benchmarks/bench_cache_format.py`` (needs ../shared/data; Zarr rows need
``pip install zarr``, which the project does not install: it is only measured here).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from deeplesion.slices import read_slice_hu
from machine import machine_header

SERIES = Path(__file__).resolve().parents[1].parent / "shared/data/deeplesion/png16/Images_png/000001_03_01"


def best_ms(func, repeats: int = 30) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return min(times) * 1e3


def main() -> None:
    print(machine_header())
    if not SERIES.is_dir():
        print("(skipped: ../shared/data absent)")
        return
    pngs = sorted(SERIES.glob("*.png"))
    volume = np.stack([read_slice_hu(p) for p in pngs])[:, 60:460, 40:470]  # a body-sized crop
    png_bytes = sum(p.stat().st_size for p in pngs)
    picks = list(range(20, 38, 2))  # 9 slices 2 mm apart
    crop = (slice(50, 350), slice(60, 380))
    print(f"{len(pngs)} slices; crop {volume.shape[1:]}; PNGs {png_bytes / 1e6:.1f} MB")
    print("| store | MB on disk | x PNGs | read 9 cropped slices, ms (best of 30) |")
    print("|---|---:|---:|---:|")
    decode = best_ms(lambda: [read_slice_hu(pngs[i]) for i in picks], 10)
    print(f"| PNGs (decode, for reference) | {png_bytes / 1e6:.1f} | 1.0 | {decode:.2f} |")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "run.npy"
        np.save(path, volume)
        mapped = np.load(path, mmap_mode="r")
        ms = best_ms(lambda: [np.asarray(mapped[i][crop]) for i in picks])
        size = path.stat().st_size
        print(f"| .npy, memory-mapped | {size / 1e6:.1f} | {size / png_bytes:.1f} | {ms:.3f} |")
        try:
            import zarr
        except ImportError:
            print("| zarr | (not installed: pip install zarr to measure it) | | |")
            return
        for name, codec in (("lz4", "lz4"), ("zstd", "zstd")):
            store = Path(tmp) / f"run-{name}.zarr"
            compressors = zarr.codecs.BloscCodec(cname=codec, clevel=5, shuffle="bitshuffle")
            array = zarr.create_array(
                store=str(store),
                shape=volume.shape,
                chunks=(1, *volume.shape[1:]),
                dtype="int16",
                compressors=compressors,
            )
            array[:] = volume
            opened = zarr.open_array(str(store), mode="r")
            ms = best_ms(lambda: [opened[i, crop[0], crop[1]] for i in picks])  # noqa: B023
            size = sum(f.stat().st_size for f in store.rglob("*") if f.is_file())
            label = f"zarr, Blosc {name}, a chunk per slice"
            print(f"| {label} | {size / 1e6:.1f} | {size / png_bytes:.1f} | {ms:.3f} |")


if __name__ == "__main__":
    main()
