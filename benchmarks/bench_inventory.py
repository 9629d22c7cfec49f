"""Benchmark: the image inventory (``deeplesion validate --root``), quick and full, 1 and 2 processes.

Run: ``.venv/bin/python benchmarks/bench_inventory.py [PATIENTS]`` (default 20): generates a synthetic
release in a temporary folder (files in the page cache, as after a download) and times the inventory.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from deeplesion.catalog import load_catalog
from deeplesion.inventory import run_inventory
from deeplesion.synth import make_synthetic_release
from machine import machine_header

RELEASE_SLICES = 928_000


def main() -> None:
    patients = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    print(machine_header())
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "release"
        make_synthetic_release(root, patients=patients, seed=0)
        catalog = load_catalog(root / "DL_info.csv")
        print("| mode | processes | slices | seconds | slices/s | whole release (928k slices) |")
        print("|---|---:|---:|---:|---:|---:|")
        for full in (False, True):
            for jobs in (1, 2):
                start = time.perf_counter()
                report = run_inventory(root, catalog, full=full, jobs=jobs)
                seconds = time.perf_counter() - start
                rate = report.slices / seconds
                whole = RELEASE_SLICES / rate
                shown = f"{whole:.0f} s" if whole < 120 else f"{whole / 60:.0f} min"
                mode = "full" if full else "quick"
                print(f"| {mode} | {jobs} | {report.slices} | {seconds:.2f} | {rate:,.0f} | {shown} |")


if __name__ == "__main__":
    main()
