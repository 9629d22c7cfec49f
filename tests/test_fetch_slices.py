"""``download --only key-slices`` / ``fetch_slices``: members read out of remote zips with Range requests.

Against the loopback mirror (127.0.0.1 only; every server stops with its test): the synthetic release's
archives, ZIP64 archives in both forms (more than 65,535 members; members beyond 4 GiB in a virtual
archive served from memory), a server without Range, redirects, corrupt members, a changed archive, an
interrupted run.
"""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys
import time
import zipfile
from collections import defaultdict
from pathlib import Path
from typing import ClassVar

import pytest

from deeplesion.cache import build_cache
from deeplesion.catalog import load_catalog
from deeplesion.download import ChecksumError, DownloadError, Policy, verify_release
from deeplesion.download.partial import (
    SliceFetchSummary,
    SlicePlan,
    context_numbers,
    fetch_slices,
    plan_requests,
    select_slices,
)
from deeplesion.download.remote_zip import (
    ArchiveChangedError,
    ArchiveIndex,
    MemberSpan,
    RangeNotSupportedError,
)
from deeplesion.download.state import Requested, request_slices, write_requested
from deeplesion.errors import ImageError, UsageError
from deeplesion.inventory import run_inventory
from deeplesion.mirror import MirrorHandler, MirrorServer, parse_range
from deeplesion.nifti import export_nifti
from tests.faulty_mirror import FAST, FaultyHandler

GiB = 1 << 30


def fetch(root: Path, server: MirrorServer, names: list[str] | None, **kwargs: object) -> SliceFetchSummary:
    result = fetch_slices(root, names, mirror=server.url, policy=FAST, jobs=2, **kwargs)  # type: ignore[arg-type]
    assert isinstance(result, SliceFetchSummary)
    return result


def test_context_numbers_cover_the_stack_inside_the_run() -> None:
    assert context_numbers(50, 1, 100, 5.0, 0) == range(50, 51)
    assert context_numbers(50, 1, 100, 5.0, 30) == range(44, 57)
    assert context_numbers(50, 1, 100, 2.5, 2) == range(49, 52)  # a 2 mm channel blends slices 0 and 1
    assert context_numbers(50, 1, 100, 1.0, 30) == range(20, 81)
    assert context_numbers(50, 48, 53, 5.0, 30) == range(48, 54)  # clipped to the Slice_range
    assert context_numbers(50, 1, 100, float("nan"), 30) == range(50, 51)  # unknown interval: key only
    with pytest.raises(UsageError):
        context_numbers(50, 1, 100, 5.0, -1)


def test_adjacent_members_make_one_request() -> None:
    spans = [MemberSpan("a.zip", f"m{i}", 100 * i, 100 * i + 100, 90, 90, 0) for i in range(6)]
    requests = plan_requests([spans[0], spans[1], spans[2], spans[4], spans[5]])
    assert [(r.start, r.end, len(r.members)) for r in requests] == [(0, 300, 3), (400, 600, 2)]
    assert [(r.start, r.end) for r in plan_requests(spans, max_bytes=250)] == [
        (0, 200),
        (200, 400),
        (400, 600),
    ]


def test_test_split_key_slices_with_context(
    tmp_path: Path, mirror: MirrorServer, shared_release: Path
) -> None:
    catalog = load_catalog(shared_release / "DL_info.csv")
    names = catalog.filter(split="test").file_name.tolist()
    assert names
    root = tmp_path / "partial"
    plan = fetch_slices(root, names, context_mm=30, mirror=mirror.url, policy=FAST, dry_run=True)
    assert isinstance(plan, SlicePlan)
    assert not (root / "Images_png").exists()  # the dry run fetched DL_info.csv and the index, no slice
    wanted = select_slices(catalog, names, 30)
    assert plan.wanted == sum(len(v) for v in wanted.values()) and plan.present == 0
    # a slice the release lacks (its planted missing-slice quirk) is reported, not fetched
    expected = {f"Images_png/{folder}/{n:03d}.png" for folder, numbers in wanted.items() for n in numbers}
    absent = sorted(name for name in expected if not (shared_release / name).exists())
    assert plan.not_in_archives == absent
    expected -= set(absent)
    assert plan.member_bytes <= plan.request_bytes <= 1.05 * plan.member_bytes
    assert plan.request_bytes < plan.archive_bytes
    summary = fetch(root, mirror, names, context_mm=30)
    assert summary.fetched == plan.wanted - len(absent) and summary.refetched == []
    assert summary.plan.indexes_read == [] and summary.plan.index_bytes == 2  # reused: one probe each
    assert summary.transferred == plan.request_bytes
    # every slice asked for, byte for byte as in the release, and nothing else
    on_disk = {str(p.relative_to(root)) for p in (root / "Images_png").rglob("*.png")}
    assert on_disk == expected
    for relative in on_disk:
        assert (root / relative).read_bytes() == (shared_release / relative).read_bytes()
    # requested.json, the inventory, verify, the NIfTI export and the dataset all see a partial release
    requested = Requested.load(root)
    assert set(requested.slices) == set(wanted)
    report = run_inventory(root, load_catalog(root / "DL_info.csv"))
    errors = [f for f in report.findings if f.severity == "error"]
    source_errors = {
        (f.code, f.file) for f in run_inventory(shared_release, catalog).findings if f.severity == "error"
    }
    assert {(f.code, f.file) for f in errors} <= source_errors  # only the release's own planted damage
    assert "not-requested" in {f.code for f in report.findings}
    assert verify_release(root) == []
    export = export_nifti(root, catalog, out=tmp_path / "nifti")
    assert export.written + len(export.not_requested) >= 1
    assert all("not requested" in m for m in export.not_requested)
    # a rerun fetches nothing
    again = fetch(root, mirror, names, context_mm=30)
    assert again.fetched == 0 and again.transferred == 0 and again.plan.present == len(expected)


def test_dataset_reads_the_fetched_slices(tmp_path: Path, mirror: MirrorServer) -> None:
    pytest.importorskip("torch")
    from deeplesion import open_release
    from deeplesion.data import KeySliceDataset

    root = tmp_path / "partial"
    fetch(root, mirror, None, context_mm=10, split="test")
    dataset = KeySliceDataset(open_release(root), split="test")
    image, target = dataset[0]
    assert image.shape[0] == 9 and len(target["boxes"]) >= 1
    with pytest.raises(Exception, match="not on disk"):
        KeySliceDataset(open_release(root), split="train")
    unrequested = load_catalog(root / "DL_info.csv").filter(split="train")[0]
    with pytest.raises(ImageError, match=r"not requested by the partial download.*--only key-slices"):
        open_release(root).key_slice(unrequested)
    catalog = load_catalog(root / "DL_info.csv")
    # the cache holds the test split's stacks (+-8 mm of the 10 mm fetched), the export only whole runs
    built = build_cache(root, catalog, split="test", context_mm=8)
    assert built.failed == [] and built.keys == catalog.filter(split="test").num_key_slices
    cached = KeySliceDataset(open_release(root), split="test", cache=built.cache_dir)[0][0]
    assert (cached == image).all()
    export = export_nifti(root, catalog, out=tmp_path / "nifti")
    assert export.not_requested and export.failed == []
    show = [sys.executable, "-m", "deeplesion.cli.main", "show", catalog.filter(split="test").file_name[0]]
    shown = subprocess.run(
        [*show, "--root", str(root), "--out", str(tmp_path / "k.png"), "--context"],
        capture_output=True,
        text=True,
    )
    assert shown.returncode == 0, shown.stderr


def _mirror_folder(target: Path, archive: Path, annotations: Path) -> None:
    """A mirror folder with one archive, DL_info.csv and their MD5 list."""
    (target / "DL_info.csv").write_bytes(annotations.read_bytes())
    digest = hashlib.md5(archive.read_bytes()).hexdigest()
    lines = [f"{digest}  {archive.name}", f"{hashlib.md5(annotations.read_bytes()).hexdigest()}  DL_info.csv"]
    (target / "MD5_checksums.txt").write_text("\n".join(lines) + "\n")


def _real_members(release: Path, folders: list[str]) -> list[Path]:
    return sorted(p for folder in folders for p in (release / "Images_png" / folder).glob("*.png"))


def test_zip64_with_more_than_65535_members(tmp_path: Path, shared_release: Path) -> None:
    catalog = load_catalog(shared_release / "DL_info.csv")
    names = catalog.file_name.tolist()[:3]
    folders = sorted({n.rsplit("_", 1)[0] for n in names})
    source = tmp_path / "mirror"
    source.mkdir()
    archive = source / "Images_png_01.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_STORED) as z:
        for i in range(66_000):  # filler members first: the wanted ones sit behind all of them
            z.writestr(f"Images_png/999999_01_{i // 1000:02d}/{i % 1000:03d}.png", b"x")
        for path in _real_members(shared_release, folders):
            z.write(path, f"Images_png/{path.parent.name}/{path.name}")
    tail = archive.read_bytes()[-200:]
    assert b"PK\x06\x06" in tail  # the ZIP64 end record: the member count does not fit 16 bits
    _mirror_folder(source, archive, shared_release / "DL_info.csv")
    with MirrorServer(source) as server:
        summary = fetch(tmp_path / "partial", server, names)
    assert summary.fetched == len(names)
    for name in names:
        relative = f"Images_png/{name.rsplit('_', 1)[0]}/{name.rsplit('_', 1)[1]}"
        assert (tmp_path / "partial" / relative).read_bytes() == (shared_release / relative).read_bytes()
    index = ArchiveIndex.load(tmp_path / "partial", "Images_png_01.zip")
    assert index is not None and len(index.spans) > 66_000


class VirtualArchive:
    """An append-only sink for :mod:`zipfile` that stores runs of zeros as lengths: a zip of several
    GiB held in a few MB. Not seekable, so zipfile writes data descriptors (as streaming zippers do)."""

    ZEROS = bytes(16 << 20)

    def __init__(self) -> None:
        self.parts: list[bytes | int] = []
        self.size = 0

    def write(self, data: bytes) -> int:
        if data is self.ZEROS:
            self.parts.append(len(data))
        else:
            self.parts.append(bytes(data))
        self.size += len(data)
        return len(data)

    def tell(self) -> int:
        return self.size

    def seek(self, *args: object) -> int:
        raise OSError("not seekable")

    def flush(self) -> None:
        pass

    def read(self, start: int, end: int) -> bytes:
        """Bytes ``start`` to ``end`` (exclusive)."""
        out = bytearray()
        offset = 0
        for part in self.parts:
            length = part if isinstance(part, int) else len(part)
            low, high = max(start, offset), min(end, offset + length)
            if low < high:
                out += bytes(high - low) if isinstance(part, int) else part[low - offset : high - offset]
            offset += length
        return bytes(out)


class VirtualHandler(MirrorHandler):
    """Serves ``Images_png_01.zip`` from a :class:`VirtualArchive`; other files from the folder."""

    archive: ClassVar[VirtualArchive]

    def respond(self, *, send_body: bool) -> None:
        if not self.path.endswith("/Images_png_01.zip"):
            super().respond(send_body=send_body)
            return
        size = self.archive.size
        wanted = parse_range(self.headers.get("Range"), size)
        start, end = wanted if isinstance(wanted, tuple) else (0, size - 1)
        self.send_response(206 if isinstance(wanted, tuple) else 200)
        if isinstance(wanted, tuple):
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Content-Length", str(end - start + 1))
        self.send_header("ETag", '"virtual-1"')
        self.end_headers()
        if send_body:
            assert end - start < 64 << 20, "a slice fetch never asks for the big member"
            self.wfile.write(self.archive.read(start, end + 1))


def test_zip64_members_beyond_4_gib(tmp_path: Path, shared_release: Path) -> None:
    catalog = load_catalog(shared_release / "DL_info.csv")
    names = catalog.file_name.tolist()[:2]
    folders = sorted({n.rsplit("_", 1)[0] for n in names})
    virtual = VirtualArchive()
    with zipfile.ZipFile(virtual, "w", compression=zipfile.ZIP_STORED) as z:  # type: ignore[arg-type]
        big = zipfile.ZipInfo("Images_png/999999_01_01/001.png", date_time=(2018, 7, 27, 0, 0, 0))
        big.file_size = 4 * GiB + (512 << 20)
        with z.open(big, "w", force_zip64=True) as member:
            for _ in range(big.file_size // len(VirtualArchive.ZEROS)):
                member.write(VirtualArchive.ZEROS)
        for path in _real_members(shared_release, folders):
            z.writestr(f"Images_png/{path.parent.name}/{path.name}", path.read_bytes())
    assert virtual.size > 4.5 * GiB
    source = tmp_path / "mirror"
    source.mkdir()
    annotations = (shared_release / "DL_info.csv").read_bytes()
    (source / "DL_info.csv").write_bytes(annotations)
    # a slice fetch never reads a whole archive, so the archive's MD5 is not needed (nor computed here)
    lines = [f"{'0' * 32}  Images_png_01.zip", f"{hashlib.md5(annotations).hexdigest()}  DL_info.csv"]
    (source / "MD5_checksums.txt").write_text("\n".join(lines) + "\n")
    VirtualHandler.archive = virtual
    with MirrorServer(source, handler=VirtualHandler) as server:
        summary = fetch(tmp_path / "partial", server, names)
    assert summary.fetched == len(names)
    index = ArchiveIndex.load(tmp_path / "partial", "Images_png_01.zip")
    assert index is not None
    assert min(s.start for s in index.spans.values() if not s.name.startswith("Images_png/999999")) > 4 * GiB
    for name in names:
        relative = f"Images_png/{name.rsplit('_', 1)[0]}/{name.rsplit('_', 1)[1]}"
        assert (tmp_path / "partial" / relative).read_bytes() == (shared_release / relative).read_bytes()
    assert summary.transferred < 4 << 20  # the big member never travels


def test_a_server_without_range_is_a_clear_error(tmp_path: Path, mirror: MirrorServer) -> None:
    FaultyHandler.faults["Images_png_01.zip"] = ["norange"]
    with pytest.raises(RangeNotSupportedError, match=r"ignores HTTP Range.*--parts"):
        fetch(tmp_path / "partial", mirror, None, split="test")
    served = [r for name, r in FaultyHandler.log if name == "Images_png_01.zip"]
    assert len(served) == 1  # refused at the headers: the whole archive was not read


class RedirectingHandler(MirrorHandler):
    """Every archive request is redirected to ``/moved/<name>`` (as NIH's links go to signed URLs)."""

    redirects: ClassVar[int] = 0

    def respond(self, *, send_body: bool) -> None:
        if self.path.startswith("/moved/"):
            self.path = self.path.removeprefix("/moved")
        elif self.path.endswith(".zip"):
            type(self).redirects += 1
            self.send_response(302)
            self.send_header("Location", f"/moved{self.path}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        super().respond(send_body=send_body)


def test_redirects_are_followed_per_request(tmp_path: Path, shared_release: Path) -> None:
    RedirectingHandler.redirects = 0
    with MirrorServer(shared_release, handler=RedirectingHandler) as server:
        summary = fetch(tmp_path / "partial", server, None, split="test")
    assert summary.fetched > 0
    # each range request (probes, directories, members) went through its own redirect
    assert RedirectingHandler.redirects >= 2 + len(summary.plan.requests) + 2


def _first_test_name(release: Path) -> list[str]:
    return load_catalog(release / "DL_info.csv").filter(split="test").file_name.tolist()[:1]


def test_a_corrupt_member_is_fetched_again_then_reported(
    tmp_path: Path, mirror: MirrorServer, shared_release: Path
) -> None:
    names = _first_test_name(shared_release)
    root = tmp_path / "partial"
    fetch_slices(root, names, mirror=mirror.url, policy=FAST, dry_run=True)  # the index, before the faults
    folder, number = names[0].rsplit("_", 1)
    member = f"Images_png/{folder}/{number}"
    indexes = [ArchiveIndex.load(root, n) for n in ("Images_png_01.zip", "Images_png_02.zip")]
    archive = next(i.archive for i in indexes if i is not None and member in i.spans)
    FaultyHandler.faults[archive] = ["ok", "corrupt"]  # the probe; the member request once
    summary = fetch(root, mirror, names)
    assert summary.fetched == 1 and len(summary.refetched) == 1
    for path in (root / "Images_png").rglob("*.png"):
        path.unlink()
    FaultyHandler.faults[archive] = ["ok", "corrupt", "corrupt"]
    with pytest.raises(
        ChecksumError, match=r"Images_png/\d{6}_\d\d_\d\d/\d+\.png in Images_png_0\d\.zip.*twice"
    ):
        fetch(root, mirror, names)
    assert not list((root / "Images_png").rglob("*.png"))  # nothing written for it


class ChangingHandler(FaultyHandler):
    """A fault ``etag``: the archive's ETag is another one (it was replaced on the server)."""

    def send_header(self, keyword: str, value: str) -> None:
        if keyword == "ETag" and getattr(self, "fault", None) == "etag":
            value = '"replaced"'
        super().send_header(keyword, value)


def test_an_archive_changed_on_the_server(tmp_path: Path, shared_release: Path) -> None:
    names = load_catalog(shared_release / "DL_info.csv").file_name.tolist()
    root = tmp_path / "partial"
    ChangingHandler.faults = defaultdict(list)
    ChangingHandler.log = []
    with MirrorServer(shared_release, handler=ChangingHandler) as server:
        fetch_slices(root, names, mirror=server.url, policy=FAST, dry_run=True)
        for archive in ("Images_png_01.zip", "Images_png_02.zip"):
            ChangingHandler.faults[archive] = ["ok", "etag", "etag", "etag"]
        with pytest.raises(ArchiveChangedError, match="changed on the server"):
            fetch_slices(root, names, mirror=server.url, policy=FAST, jobs=1)
        # a new ETag at the probe: the index is read again
        for archive in ("Images_png_01.zip", "Images_png_02.zip"):
            ChangingHandler.faults[archive] = ["etag"] * 100
        plan = fetch_slices(root, names, mirror=server.url, policy=FAST, dry_run=True)
    assert isinstance(plan, SlicePlan) and plan.indexes_read == ["Images_png_01.zip", "Images_png_02.zip"]


def test_an_interrupted_run_is_resumed(tmp_path: Path, mirror: MirrorServer, shared_release: Path) -> None:
    root = tmp_path / "partial"
    names = load_catalog(shared_release / "DL_info.csv").file_name.tolist()
    fetch_slices(root, names, context_mm=10, mirror=mirror.url, policy=FAST, dry_run=True)
    FaultyHandler.faults["Images_png_01.zip"] = ["ok", "drop"]
    with pytest.raises(DownloadError, match="no answer after 1 attempts"):
        fetch_slices(
            root, names, context_mm=10, mirror=mirror.url, policy=Policy(attempts=1, timeout=10), jobs=1
        )
    first = sorted((root / "Images_png").rglob("*.png"))
    assert first  # the other requests finished and are kept
    assert not [p for p in root.rglob(".*.part")]  # no half-written slice
    summary = fetch(root, mirror, names, context_mm=10)
    missing = len(summary.plan.not_in_archives)  # the release's planted missing slice, if it is wanted
    assert summary.plan.present == len(first)
    assert summary.fetched == summary.plan.wanted - len(first) - missing
    for path in (root / "Images_png").rglob("*.png"):
        assert path.read_bytes() == (shared_release / path.relative_to(root)).read_bytes()


def test_ctrl_c_keeps_the_slices_done(tmp_path: Path, mirror: MirrorServer, shared_release: Path) -> None:
    root = tmp_path / "partial"
    FaultyHandler.slow = 0.05
    command = [sys.executable, "-m", "deeplesion.cli.main", "download", "--root", str(root), "--only"]
    command += ["key-slices", "--context-mm", "30", "--mirror", mirror.url, "--no-progress", "--jobs", "1"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for _ in range(1200):
        if (root / "Images_png").is_dir() and len(list((root / "Images_png").rglob("*.png"))) >= 3:
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130 and "interrupted" in stderr and "Traceback" not in stderr
    kept = list((root / "Images_png").rglob("*.png"))
    assert kept and not list(root.rglob(".*.part"))
    assert not (root / ".deeplesion" / "download.lock").exists()
    FaultyHandler.slow = 0.0
    summary = fetch(root, mirror, None, context_mm=30)
    assert summary.plan.present >= len(kept)
    for path in (root / "Images_png").rglob("*.png"):
        assert path.read_bytes() == (shared_release / path.relative_to(root)).read_bytes()


def test_requested_json_merges_slice_requests(tmp_path: Path) -> None:
    request_slices(tmp_path, {"000001_01_01": [(10, 12)]})
    request_slices(tmp_path, {"000001_01_01": [(13, 15), (20, 20)], "000002_01_01": [(5, 5)]})
    requested = Requested.load(tmp_path)
    assert requested.slices == {"000001_01_01": ((10, 15), (20, 20)), "000002_01_01": ((5, 5),)}
    assert requested.folders == {"000001_01_01", "000002_01_01"}
    # an older reader sees the folders it always saw
    data = json.loads((tmp_path / ".deeplesion" / "requested.json").read_text())
    assert data["folders"] == ["000001_01_01", "000002_01_01"] and data["key_slices_only"] is False
    # a whole archive download of a folder makes it whole again
    archive = tmp_path / "Images_png_01.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("Images_png/000001_01_01/010.png", b"x")
    write_requested(tmp_path, [_remote(archive)], {1})
    assert Requested.load(tmp_path).slice_ranges("000001_01_01") is None
    assert Requested.load(tmp_path).slice_ranges("000002_01_01") == ((5, 5),)


def _remote(path: Path):  # type: ignore[no-untyped-def]
    from deeplesion.download import RemoteFile

    return RemoteFile(path.name, "", path.stat().st_size, None, None)


def test_cli(tmp_path: Path, mirror: MirrorServer, shared_release: Path) -> None:
    base = [sys.executable, "-m", "deeplesion.cli.main", "download", "--root", str(tmp_path / "p")]
    base += ["--mirror", mirror.url, "--only", "key-slices"]
    dry = subprocess.run([*base, "--split", "test", "--dry-run", "--json"], capture_output=True, text=True)
    assert dry.returncode == 0, dry.stderr
    plan = json.loads(dry.stdout)
    assert plan["slices_wanted"] > 0 and 0 < plan["request_bytes"] < plan["archive_bytes"]
    assert not (tmp_path / "p" / "Images_png").exists()
    names = load_catalog(shared_release / "DL_info.csv").filter(split="val").file_name.tolist()
    listed = tmp_path / "lesions.txt"
    listed.write_text("# val key slices\n" + "\n".join(names) + "\n")
    out = subprocess.run([*base, "--lesions", str(listed), "--json"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    done = json.loads(out.stdout)
    assert done["slices_fetched"] == len(set(names)) and done["bytes_transferred"] == done["request_bytes"]
    text = subprocess.run(
        [*base, "--lesions", str(shared_release / "DL_info.csv")], capture_output=True, text=True
    )
    assert text.returncode == 0 and "transferred against" in text.stdout and "%" in text.stdout
    listed.write_text("000001_01_01_999.png\n")
    unknown = subprocess.run([*base, "--lesions", str(listed)], capture_output=True, text=True)
    assert unknown.returncode == 2 and "not in DL_info.csv: 000001_01_01_999.png" in unknown.stderr
    listed.write_text("hello\n")
    bad = subprocess.run([*base, "--lesions", str(listed)], capture_output=True, text=True)
    assert bad.returncode == 2 and "line 1" in bad.stderr and "Traceback" not in bad.stderr
    plain = [sys.executable, "-m", "deeplesion.cli.main", "download", "--root", str(tmp_path / "q")]
    misuse = subprocess.run([*plain, "--context-mm", "5"], capture_output=True, text=True)
    assert misuse.returncode == 2 and "--only key-slices" in misuse.stderr
    both = subprocess.run([*base, "--parts", "1"], capture_output=True, text=True)
    assert both.returncode == 2 and "--parts" in both.stderr
