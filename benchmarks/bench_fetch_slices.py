"""Benchmark: one split's key slices fetched out of the archives (HTTP range requests) against
downloading the whole archives, over the loopback mirror.

Run: ``.venv/bin/python benchmarks/bench_fetch_slices.py [PATIENTS] [SPLIT]`` (default 40 patients,
test). A synthetic release with zips is generated in a temporary folder (removed afterwards), served on
127.0.0.1, and fetched with 0 and 30 mm of context into fresh folders. The index (central directories)
is read once, by the first fetch, and reported on its own; the later fetches reuse it (one 1-byte probe
per archive). Loopback has no latency, so the times show the client's own cost; over a real network the
bytes decide.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, ClassVar

from deeplesion.catalog import load_catalog
from deeplesion.download import Summary, download, human_bytes
from deeplesion.download.partial import SliceFetchSummary, SlicePlan, fetch_slices
from deeplesion.mirror import MirrorHandler, MirrorServer
from deeplesion.synth import make_synthetic_release
from machine import machine_header


class _Counted:
    """A socket file that counts the bytes through it."""

    def __init__(self, inner: Any, counter: list[int]) -> None:
        self.inner = inner
        self.counter = counter

    def write(self, data: bytes) -> int:
        self.counter[0] += len(data)
        written: int = self.inner.write(data)
        return written

    def readline(self, *args: Any) -> bytes:
        line: bytes = self.inner.readline(*args)
        self.counter[0] += len(line)
        return line

    def read(self, *args: Any) -> bytes:
        data: bytes = self.inner.read(*args)
        self.counter[0] += len(data)
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class CountingHandler(MirrorHandler):
    """Counts every byte of every request and response (request lines, headers, bodies): what the
    network carries above TCP."""

    wire: ClassVar[list[int]] = [0]

    def setup(self) -> None:
        super().setup()
        self.rfile = _Counted(self.rfile, self.wire)  # type: ignore[assignment]
        self.wfile = _Counted(self.wfile, self.wire)  # type: ignore[assignment]


def main() -> None:
    patients = int(sys.argv[1]) if len(sys.argv) > 1 else 40
    split = sys.argv[2] if len(sys.argv) > 2 else "test"
    print(machine_header())
    with tempfile.TemporaryDirectory() as tmp:
        release = Path(tmp) / "release"
        started = time.perf_counter()
        make_synthetic_release(release, patients=patients, seed=0, zips=True, force=True)
        shutil.rmtree(release / "Images_png")  # the mirror serves the archives only
        archives = sorted(release.glob("Images_png_*.zip"))
        print(
            f"synthetic release: {patients} patients, {len(archives)} archives, "
            f"{human_bytes(sum(a.stat().st_size for a in archives))}, "
            f"generated in {time.perf_counter() - started:.0f} s"
        )
        names = load_catalog(release / "DL_info.csv").filter(split=split).file_name.tolist()
        print(f"{split} split: {len(names)} key slices\n")
        print(
            "| what | slices | requests | member bytes | body bytes | bytes on the wire | wire overhead vs "
            "members | share of archives | seconds |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        with MirrorServer(release, handler=CountingHandler) as server:
            index_root = Path(tmp) / "index-run"
            CountingHandler.wire[0] = 0
            started = time.perf_counter()
            plan = fetch_slices(index_root, names, mirror=server.url, jobs=4, dry_run=True)
            assert isinstance(plan, SlicePlan)
            print(
                f"| index: central directories (+ DL_info.csv, MD5 list), once | | | | "
                f"{human_bytes(plan.index_bytes)} | {human_bytes(CountingHandler.wire[0])} | | "
                f"{plan.index_bytes / plan.archive_bytes:.3%} | {time.perf_counter() - started:.2f} |"
            )
            for context_mm in (0.0, 30.0):
                root = Path(tmp) / f"fetch-{context_mm:g}"
                # the index read once above, as a user's later runs reuse it
                shutil.copytree(index_root / ".deeplesion" / "index", root / ".deeplesion" / "index")
                started = time.perf_counter()
                CountingHandler.wire[0] = 0
                summary = fetch_slices(root, names, context_mm=context_mm, mirror=server.url, jobs=4)
                seconds = time.perf_counter() - started
                wire = CountingHandler.wire[0]
                assert isinstance(summary, SliceFetchSummary)
                plan = summary.plan
                print(
                    f"| key slices +-{context_mm:g} mm | {summary.fetched} | {len(plan.requests)} | "
                    f"{human_bytes(plan.member_bytes)} | {human_bytes(summary.transferred)} | "
                    f"{human_bytes(wire)} | {wire / plan.member_bytes - 1:+.2%} | "
                    f"{summary.transferred / plan.archive_bytes:.2%} | {seconds:.2f} |"
                )
            started = time.perf_counter()
            CountingHandler.wire[0] = 0
            whole = download(Path(tmp) / "whole", mirror=server.url, jobs=4, extract=False)
            seconds = time.perf_counter() - started
            assert isinstance(whole, Summary)
            print(
                f"| whole archives (download --no-extract) | | {len(archives)} | | "
                f"{human_bytes(whole.transferred)} | {human_bytes(CountingHandler.wire[0])} | | 100% | "
                f"{seconds:.2f} |"
            )


if __name__ == "__main__":
    main()
