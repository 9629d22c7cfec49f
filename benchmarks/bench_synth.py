"""Benchmark: generate a synthetic release (one process) and report time, slices/s and disk use.

Run: ``.venv/bin/python benchmarks/bench_synth.py [PATIENTS ...]`` (default 20). Output goes to a
temporary folder that is removed afterwards.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from deeplesion.slices import encode_slice
from deeplesion.synth import make_synthetic_release
from deeplesion.synth.phantom import NoiseBank, SliceGeometry, random_body, render_slice
from machine import machine_header


def per_slice_costs(repeats: int = 50) -> tuple[float, float]:
    """Milliseconds to render and to PNG-encode one 512x512 slice."""
    import numpy as np

    rng = np.random.default_rng(0)
    body = random_body(rng)
    geometry = SliceGeometry(512, 0.74, -1024.0)
    noise = NoiseBank(512, 14.0, rng)
    start = time.perf_counter()
    images = [render_slice(body, geometry, 0.45 * body.length_mm, [], noise, rng) for _ in range(repeats)]
    render = (time.perf_counter() - start) / repeats
    start = time.perf_counter()
    for image in images:
        encode_slice(image)
    encode = (time.perf_counter() - start) / repeats
    return render * 1e3, encode * 1e3


def main() -> None:
    counts = [int(a) for a in sys.argv[1:]] or [20]
    print(machine_header())
    render_ms, encode_ms = per_slice_costs()
    print(f"per 512x512 slice: render {render_ms:.1f} ms, PNG encode {encode_ms:.1f} ms")
    print("| patients | zips | seconds | slices | slices/s | lesions | images MB | total MB |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|")
    for patients in counts:
        for zips in (False, True):
            with tempfile.TemporaryDirectory() as tmp:
                out = Path(tmp) / "release"
                start = time.perf_counter()
                result = make_synthetic_release(out, patients=patients, seed=0, zips=zips)
                seconds = time.perf_counter() - start
                images = sum(p.stat().st_size for p in (out / "Images_png").rglob("*.png"))
                print(
                    f"| {patients} | {'yes' if zips else 'no'} | {seconds:.1f} | {result.slices} "
                    f"| {result.slices / seconds:.0f} | {result.lesions} | {images / 1e6:.0f} "
                    f"| {result.bytes_written / 1e6:.0f} |"
                )


if __name__ == "__main__":
    main()
