"""Benchmark: how fast the viewer serves a 512x512 slice, as the page scrolls through a series.

Run: ``.venv/bin/python benchmarks/bench_view.py`` (needs the view extra; uses the real slices in
../shared/data when present, else a 3-patient synthetic release it generates). Starts
``deeplesion view`` as its own process on 127.0.0.1, then requests every slice of the largest series
on a fresh connection each (no keep-alive, no If-None-Match, so no ETag hit), three passes with three
windows (the server decodes each slice again for a new window unless its small decoded cache holds it).
The time is from opening the connection to the last byte of the PNG.
"""

from __future__ import annotations

import http.client
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from machine import machine_header

SHARED = Path(__file__).resolve().parents[1].parent / "shared/data/deeplesion"
WINDOWS = ("-175,275", "-1500,500", "-500,1300")


def release() -> tuple[Path, Path | None]:
    if (SHARED / "png16/Images_png").is_dir():
        return SHARED / "png16", SHARED / "DL_info/DL_info_union.csv"
    from deeplesion.synth import make_synthetic_release

    out = Path(tempfile.mkdtemp()) / "release"
    make_synthetic_release(out, patients=3, seed=1)
    return out, None


def main() -> int:
    root, annotations = release()
    folders = [p for p in (root / "Images_png").iterdir() if p.is_dir()]
    folder = max(folders, key=lambda p: len(list(p.glob("*.png"))))
    numbers = sorted(int(p.stem) for p in folder.glob("*.png"))
    command = [str(Path(sys.executable).with_name("deeplesion")), "view", "--root", str(root), "--port", "0"]
    if annotations is not None:
        command += ["--annotations", str(annotations)]
    server = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    try:
        lines: list[str] = []
        match = None
        while match is None and len(lines) < 20 and server.stderr:  # a warning may come first
            lines.append(server.stderr.readline())
            match = re.search(r"http://127\.0\.0\.1:(\d+)/", lines[-1])
        if not match:
            print(f"the server did not start: {''.join(lines)}", file=sys.stderr)
            return 1
        port = int(match.group(1))
        time.sleep(1.0)
        print(machine_header(f"series {folder.name}: {len(numbers)} slices, {root}"))
        print()
        print("| pass | window | requests | p50 ms | p95 ms | max ms | mean kB |")
        print("|---|---|---:|---:|---:|---:|---:|")
        everything = []
        for k, window in enumerate(WINDOWS, start=1):
            times, sizes = [], []
            for n in numbers:
                start = time.perf_counter()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                connection.request("GET", f"/api/slice/{folder.name}/{n:03d}.png?window={window}")
                response = connection.getresponse()
                body = response.read()
                connection.close()
                times.append((time.perf_counter() - start) * 1e3)
                if response.status != 200:
                    print(f"slice {n}: status {response.status}: {body[:200]!r}", file=sys.stderr)
                    return 1
                sizes.append(len(body))
            everything += times
            p50, p95 = np.percentile(times, [50, 95])
            print(
                f"| {k} | {window} | {len(times)} | {p50:.1f} | {p95:.1f} | {max(times):.1f} | "
                f"{np.mean(sizes) / 1e3:.0f} |"
            )
        p50, p95 = np.percentile(everything, [50, 95])
        print(f"| all | | {len(everything)} | {p50:.1f} | {p95:.1f} | {max(everything):.1f} | |")
    finally:
        server.terminate()
        server.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
