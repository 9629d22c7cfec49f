"""Benchmark: download throughput and resume overhead on loopback (127.0.0.1).

Run: ``.venv/bin/python benchmarks/bench_download.py [MEGABYTES]`` (default 400). Serves one random file
with the toolkit's mirror server and compares ``deeplesion.download.fetch`` (resumable, MD5-verified,
atomic rename) with a plain single-stream copy that computes the same MD5. Then interrupts a transfer at
half way and measures how many bytes the resume transfers beyond the file's size.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path

import httpx

from deeplesion.download import Policy, RemoteFile, fetch
from deeplesion.mirror import MirrorHandler, MirrorServer
from machine import machine_header


class DropOnce(MirrorHandler):
    """Drops the first GET at half of the file."""

    dropped = False

    def send_bytes(self, path: Path, start: int, end: int) -> None:
        if not type(self).dropped:
            type(self).dropped = True
            half = (end - start + 1) // 2
            with path.open("rb") as handle:
                handle.seek(start)
                remaining = half
                while remaining:
                    block = handle.read(min(1 << 20, remaining))
                    self.wfile.write(block)
                    remaining -= len(block)
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)
            return
        super().send_bytes(path, start, end)


def plain_copy(url: str, target: Path) -> str:
    digest = hashlib.md5()
    with httpx.Client() as client, client.stream("GET", url) as response, target.open("wb") as handle:
        for block in response.iter_bytes(1 << 20):
            handle.write(block)
            digest.update(block)
    return digest.hexdigest()


def main() -> None:
    megabytes = int(sys.argv[1]) if len(sys.argv) > 1 else 400
    print(machine_header())
    with tempfile.TemporaryDirectory() as tmp:
        served = Path(tmp) / "served"
        served.mkdir()
        data_path = served / "Images_png_01.zip"
        with data_path.open("wb") as handle:
            for _ in range(megabytes):
                handle.write(os.urandom(1 << 20))
        size = data_path.stat().st_size
        md5 = hashlib.md5(data_path.read_bytes()).hexdigest()
        remote = RemoteFile(data_path.name, "", size, md5, None)
        rows = []
        with MirrorServer(served) as server:
            file = RemoteFile(remote.name, f"{server.url}/{remote.name}", size, md5, None)
            for _ in range(3):  # alternate, best of 3 each
                out = Path(tmp) / "plain"
                start = time.perf_counter()
                assert plain_copy(file.url, out) == md5
                rows.append(("plain", time.perf_counter() - start))
                out.unlink()
                target_dir = Path(tmp) / "fetch"
                target_dir.mkdir(exist_ok=True)
                start = time.perf_counter()
                with httpx.Client(follow_redirects=True) as client:
                    fetch(client, file, target_dir, checksum="md5", policy=Policy())
                rows.append(("fetch", time.perf_counter() - start))
                (target_dir / remote.name).unlink()
        plain = min(t for k, t in rows if k == "plain")
        ours = min(t for k, t in rows if k == "fetch")
        with MirrorServer(served, handler=DropOnce) as server:
            file = RemoteFile(remote.name, f"{server.url}/{remote.name}", size, md5, None)
            target_dir = Path(tmp) / "resume"
            target_dir.mkdir()
            with httpx.Client(follow_redirects=True) as client:
                result = fetch(client, file, target_dir, checksum="md5", policy=Policy(backoff=0.01))
        print(f"file of {size / 1e6:.0f} MB on loopback, MD5 computed in both cases")
        print("| transfer | seconds (best of 3) | MB/s | relative |")
        print("|---|---:|---:|---:|")
        print(f"| plain single-stream copy + MD5 | {plain:.2f} | {size / 1e6 / plain:.0f} | 100% |")
        print(
            f"| deeplesion fetch (part file, verify, rename) | {ours:.2f} | {size / 1e6 / ours:.0f} "
            f"| {plain / ours:.0%} |"
        )
        extra = result.transferred - size
        moved = f"{result.transferred / 1e6:.1f} MB transferred for a {size / 1e6:.1f} MB file"
        print(f"resume after a drop at half way: {result.status}, {moved}: {extra / size:+.2%} extra")


if __name__ == "__main__":
    main()
