"""Benchmark: generate a synthetic release (one process) and report time, slices/s and disk use.

Run: ``.venv/bin/python benchmarks/bench_synth.py [PATIENTS ...] [--jobs N]`` (default 20 patients, one
process). Output goes to a temporary folder that is removed afterwards.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from deeplesion.catalog import load_catalog
from deeplesion.slices import encode_slice
from deeplesion.synth import make_synthetic_release
from deeplesion.synth.anatomy import random_body
from deeplesion.synth.phantom import SliceGeometry, StudyLook, make_series, render_slice
from machine import machine_header


def per_slice_costs(repeats: int = 50) -> dict[float, tuple[float, float]]:
    """Slice thickness (mm) -> milliseconds to render and to PNG-encode one 512x512 slice (chest to
    pelvis)."""
    import numpy as np

    rng = np.random.default_rng(0)
    body = random_body(rng)
    geometry = SliceGeometry(512, 0.74, -1024.0, (0.02, 5.0, -5.0))
    heights = np.linspace(0.35, 0.85, repeats) * body.height_mm
    costs = {}
    for thickness in (5.0, 1.0):
        series = make_series(geometry, StudyLook(), thickness, [], rng)
        start = time.perf_counter()
        images = [render_slice(body, series, z, rng) for z in heights]
        render = (time.perf_counter() - start) / repeats
        start = time.perf_counter()
        for image in images:
            encode_slice(image, compression=1)
        encode = (time.perf_counter() - start) / repeats
        costs[thickness] = (render * 1e3, encode * 1e3)
    return costs


def main() -> None:
    arguments = sys.argv[1:]
    jobs = 1
    if "--jobs" in arguments:
        at = arguments.index("--jobs")
        jobs = int(arguments[at + 1])
        del arguments[at : at + 2]
    counts = [int(a) for a in arguments] or [20]
    print(machine_header(f"{jobs} process(es)"))
    for thickness, (render_ms, encode_ms) in per_slice_costs().items():
        print(
            f"per 512x512 slice of {thickness:g} mm: render {render_ms:.1f} ms, PNG encode {encode_ms:.1f} ms"
        )
    print(
        "| patients | zips | seconds | slices | slices/s | slices/patient | rows | rows/patient | test rows "
        "| images MB | total MB |"
    )
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for patients in counts:
        for zips in (False,) if patients > 40 else (False, True):
            with tempfile.TemporaryDirectory() as tmp:
                out = Path(tmp) / "release"
                start = time.perf_counter()
                result = make_synthetic_release(out, patients=patients, seed=0, zips=zips, jobs=jobs)
                seconds = time.perf_counter() - start
                images = sum(p.stat().st_size for p in (out / "Images_png").rglob("*.png"))
                test_rows = len(load_catalog(out / "DL_info.csv").filter(split="test"))
                print(
                    f"| {patients} | {'yes' if zips else 'no'} | {seconds:.1f} | {result.slices} "
                    f"| {result.slices / seconds:.0f} | {result.slices / patients:.0f} | {result.lesions} "
                    f"| {result.lesions / patients:.2f} | {test_rows} | {images / 1e6:.0f} "
                    f"| {result.bytes_written / 1e6:.0f} |"
                )


if __name__ == "__main__":
    main()
