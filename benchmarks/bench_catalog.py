"""Benchmark: load, check, summarize and write DL_info.csv files (the 29,280-row union by default).

Run: ``.venv/bin/python benchmarks/bench_catalog.py [FILE ...]`` (needs ../shared/data or given files).
Prints a table of the median of 7 runs per step.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from deeplesion.catalog import dl_info_text, load_catalog
from deeplesion.checks import check_catalog
from deeplesion.summary import summarize
from machine import machine_header

DEFAULT = Path(__file__).resolve().parents[1].parent / "shared/data/deeplesion/DL_info/DL_info_union.csv"


def median_seconds(func: Callable[[], object], repeats: int = 7) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    files = [Path(p) for p in sys.argv[1:]] or [DEFAULT]
    print(machine_header())
    print("| file | rows | load s | validate s | summarize s | write s | rows/s (load) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for path in files:
        if not path.exists():
            sys.exit(f"{path} not found; pass DL_info files as arguments")
        catalog = load_catalog(path)
        load = median_seconds(lambda p=path: load_catalog(p))  # type: ignore[misc]
        check = median_seconds(lambda c=catalog: check_catalog(c))  # type: ignore[misc]
        summary = median_seconds(lambda c=catalog: summarize(c))  # type: ignore[misc]
        write = median_seconds(lambda c=catalog: dl_info_text(c))  # type: ignore[misc]
        print(
            f"| {path.name} | {len(catalog)} | {load:.3f} | {check:.3f} | {summary:.3f} | {write:.3f} "
            f"| {len(catalog) / load:,.0f} |"
        )


if __name__ == "__main__":
    main()
