"""Downloads against a local mirror on 127.0.0.1 with injected faults; extraction, locking, verification.

No test touches any address other than loopback; every server stops when its test ends.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import pytest

from deeplesion.catalog import load_catalog
from deeplesion.download import (
    ChecksumError,
    DownloadError,
    LockedError,
    Policy,
    Summary,
    UnsafeArchiveError,
    download,
    parse_parts,
    verify_release,
)
from deeplesion.errors import UsageError
from deeplesion.inventory import run_inventory
from deeplesion.mirror import MirrorServer, parse_range
from tests.faulty_mirror import FAST, FaultyHandler


@pytest.fixture(scope="module")
def release(shared_release: Path) -> Path:
    return shared_release


def get(root: Path, server: MirrorServer, **kwargs: object) -> Summary:
    result = download(root, mirror=server.url, policy=FAST, jobs=2, **kwargs)  # type: ignore[arg-type]
    assert isinstance(result, Summary)
    return result


def tree(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.md5(p.read_bytes()).hexdigest()
        for p in sorted((root / "Images_png").rglob("*.png"))
    }


def test_clean_download_extracts_and_verifies(tmp_path: Path, mirror: MirrorServer, release: Path) -> None:
    summary = get(tmp_path / "dl", mirror)
    assert sorted(summary.downloaded) == [
        "DL_info.csv",
        "Images_png_01.zip",
        "Images_png_02.zip",
        "MD5_checksums.txt",
    ]
    assert sorted(summary.extracted) == ["Images_png_01.zip", "Images_png_02.zip"]
    assert tree(tmp_path / "dl") == tree(release)
    assert not list((tmp_path / "dl").glob("*.zip")) and not list((tmp_path / "dl").rglob("*.part"))
    assert verify_release(tmp_path / "dl") == []
    again = get(tmp_path / "dl", mirror)  # a rerun skips everything
    assert again.transferred == 0 and sorted(again.already_extracted) == [
        "Images_png_01.zip",
        "Images_png_02.zip",
    ]

    # the downloaded tree has exactly the source's (planted) image findings: nothing lost or added
    def findings(root: Path) -> set[tuple[str, str | None]]:
        return {(f.code, f.file) for f in run_inventory(root, load_catalog(root / "DL_info.csv")).findings}

    assert findings(tmp_path / "dl") == findings(release)


@pytest.mark.parametrize("fault", ["drop", "500", "429", "redirect", "norange-after-drop"])
def test_transient_faults_end_in_a_verified_file(
    tmp_path: Path, mirror: MirrorServer, release: Path, fault: str
) -> None:
    faults = ["drop", "norange"] if fault == "norange-after-drop" else [fault]
    FaultyHandler.faults["Images_png_01.zip"] = faults
    summary = get(tmp_path / "dl", mirror, keep_zips=True)
    zip_path = tmp_path / "dl" / "Images_png_01.zip"
    assert zip_path.read_bytes() == (release / "Images_png_01.zip").read_bytes()
    requests = [r for name, r in FaultyHandler.log if name == "Images_png_01.zip"]
    assert len(requests) >= 2
    if fault == "drop":
        assert "Images_png_01.zip" in summary.resumed and requests[-1] and requests[-1].startswith("bytes=")
        assert summary.transferred < 1.01 * sum(
            (release / n).stat().st_size
            for n in ("Images_png_01.zip", "Images_png_02.zip", "DL_info.csv", "MD5_checksums.txt")
        )


def test_corruption_is_retried_once_then_reported(
    tmp_path: Path, mirror: MirrorServer, release: Path
) -> None:
    FaultyHandler.faults["Images_png_02.zip"] = ["corrupt"]
    get(tmp_path / "once", mirror)
    assert tree(tmp_path / "once") == tree(release)
    FaultyHandler.faults["Images_png_02.zip"] = ["corrupt", "corrupt"]
    with pytest.raises(ChecksumError) as caught:
        get(tmp_path / "twice", mirror)
    message = str(caught.value)
    expected = hashlib.md5((release / "Images_png_02.zip").read_bytes()).hexdigest()
    assert "Images_png_02.zip" in message and f"expected {expected}" in message and "found" in message
    assert not (tmp_path / "twice" / "Images_png_02.zip.part").exists()


@pytest.mark.parametrize(("fault", "message"), [("404", "HTTP 404"), ("html", "HTML page")])
def test_permanent_errors_are_clear(tmp_path: Path, mirror: MirrorServer, fault: str, message: str) -> None:
    FaultyHandler.faults["Images_png_01.zip"] = [fault] * 3
    with pytest.raises(DownloadError, match=message):
        get(tmp_path / "dl", mirror)


def test_file_list_and_size_probes_are_retried(tmp_path: Path, mirror: MirrorServer, release: Path) -> None:
    # the checksum list's connection drops half-way, a HEAD fails with 503 and another is cut: retried
    FaultyHandler.faults["MD5_checksums.txt"] = ["drop", "500"]
    FaultyHandler.head_faults["Images_png_01.zip"] = ["503", "drop"]
    get(tmp_path / "dl", mirror)
    assert tree(tmp_path / "dl") == tree(release)
    assert [name for name, _ in FaultyHandler.log].count("MD5_checksums.txt") >= 3


def test_a_failed_size_probe_is_an_error_not_a_skipped_check(tmp_path: Path, mirror: MirrorServer) -> None:
    FaultyHandler.head_faults["Images_png_02.zip"] = ["404"]
    with pytest.raises(DownloadError, match=r"Images_png_02\.zip: HTTP 404"):
        get(tmp_path / "dl", mirror)
    FaultyHandler.head_faults["Images_png_02.zip"] = ["500"] * FAST.attempts
    with pytest.raises(DownloadError, match=r"Images_png_02\.zip: no answer after 8 attempts \(HTTP 500\)"):
        get(tmp_path / "dl", mirror)


def test_unreachable_mirror_is_retried_then_one_line(tmp_path: Path) -> None:
    import socket

    with socket.socket() as probe:  # a loopback port with nothing listening
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}"
    with pytest.raises(DownloadError, match="no answer after 3 attempts") as caught:
        download(tmp_path / "dl", mirror=url, policy=Policy(attempts=3, backoff=0.01), jobs=1)
    assert str(caught.value).startswith(f"{url}/MD5_checksums.txt:")
    command = [sys.executable, "-m", "deeplesion.cli.main", "download", "--root", str(tmp_path / "d2")]
    result = subprocess.run(
        [*command, "--mirror", url, "--attempts", "2"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 1, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and url in errors[0] and "Traceback" not in result.stderr


def test_failed_transfers_exit_1_not_2(tmp_path: Path, mirror: MirrorServer) -> None:
    FaultyHandler.faults["Images_png_01.zip"] = ["404"] * 3
    command = [sys.executable, "-m", "deeplesion.cli.main", "download", "--root", str(tmp_path / "dl")]
    result = subprocess.run([*command, "--mirror", mirror.url], capture_output=True, text=True, check=False)
    assert result.returncode == 1 and "HTTP 404" in result.stderr and "Traceback" not in result.stderr


def test_interrupted_run_is_resumed_by_the_next(tmp_path: Path, mirror: MirrorServer, release: Path) -> None:
    FaultyHandler.faults["Images_png_01.zip"] = ["drop"]
    with pytest.raises(DownloadError, match="rerun to resume"):
        download(tmp_path / "dl", mirror=mirror.url, policy=Policy(attempts=1, timeout=10), jobs=1)
    part = tmp_path / "dl" / "Images_png_01.zip.part"
    size = (release / "Images_png_01.zip").stat().st_size
    assert 0 < part.stat().st_size < size
    summary = get(tmp_path / "dl", mirror)
    assert "Images_png_01.zip" in summary.resumed
    assert tree(tmp_path / "dl") == tree(release)


def test_concurrent_run_is_refused(tmp_path: Path, mirror: MirrorServer) -> None:
    FaultyHandler.slow = 0.02
    first = threading.Thread(target=lambda: get(tmp_path / "dl", mirror))
    first.start()
    lock = tmp_path / "dl" / ".deeplesion" / "download.lock"
    for _ in range(200):
        if lock.exists():
            break
        time.sleep(0.01)
    with pytest.raises(LockedError, match="another download"):
        get(tmp_path / "dl", mirror)
    FaultyHandler.slow = 0.0
    first.join()
    assert not lock.exists()


def test_archive_members_cannot_escape(tmp_path: Path) -> None:
    source = tmp_path / "evil-mirror"
    source.mkdir()
    with zipfile.ZipFile(source / "Images_png_01.zip", "w") as archive:
        archive.writestr("Images_png/000001_01_01/001.png", b"fine")
        archive.writestr("Images_png/../../escaped.txt", b"evil")
    (source / "DL_info.csv").write_text("File_name\n")
    lines = [
        f"{hashlib.md5((source / n).read_bytes()).hexdigest()}  {n}"
        for n in ("Images_png_01.zip", "DL_info.csv")
    ]
    (source / "MD5_checksums.txt").write_text("\n".join(lines))
    with MirrorServer(source) as server, pytest.raises(UnsafeArchiveError, match="outside"):
        download(tmp_path / "dl", mirror=server.url, policy=FAST)
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path / "dl" / "Images_png").exists()


def test_parts_make_a_partial_release(tmp_path: Path, mirror: MirrorServer, release: Path) -> None:
    summary = get(tmp_path / "dl", mirror, parts={2})
    assert summary.extracted == ["Images_png_02.zip"]
    requested = json.loads((tmp_path / "dl" / ".deeplesion" / "requested.json").read_text())
    assert requested["parts"] == [2] and requested["folders"]
    report = run_inventory(tmp_path / "dl", load_catalog(tmp_path / "dl" / "DL_info.csv"))
    assert "not-requested" in {f.code for f in report.findings}
    # the only errors left are the source's own planted ones inside the requested folders
    source = {
        (f.code, f.file)
        for f in run_inventory(release, load_catalog(release / "DL_info.csv")).findings
        if f.severity == "error"
    }
    errors = {(f.code, f.file) for f in report.findings if f.severity == "error"}
    assert errors <= source
    assert all(str(f).split("/")[1] in requested["folders"] for _, f in errors)
    assert parse_parts("1-3,7") == {1, 2, 3, 7}
    with pytest.raises(UsageError):
        parse_parts("3-1")


def test_kept_zips_are_extracted_by_a_later_run(tmp_path: Path, mirror: MirrorServer, release: Path) -> None:
    first = get(tmp_path / "dl", mirror, extract=False)
    assert first.extracted == [] and (tmp_path / "dl" / "Images_png_01.zip").is_file()
    assert not (tmp_path / "dl" / "Images_png").exists()
    second = get(tmp_path / "dl", mirror)
    assert second.transferred == 0 and sorted(second.extracted) == ["Images_png_01.zip", "Images_png_02.zip"]
    assert tree(tmp_path / "dl") == tree(release) and not list((tmp_path / "dl").glob("*.zip"))


def test_verify_finds_damage(tmp_path: Path, mirror: MirrorServer) -> None:
    root = tmp_path / "dl"
    get(root, mirror, keep_zips=True)
    assert verify_release(root) == []
    pngs = sorted((root / "Images_png").rglob("*.png"))
    data = bytearray(pngs[0].read_bytes())
    data[-20] ^= 0xFF
    pngs[0].write_bytes(bytes(data))
    pngs[1].unlink()
    with (root / "Images_png_02.zip").open("r+b") as handle:
        handle.seek(50)
        handle.write(b"\x00\x01\x02")
    codes = {(f.code, f.file) for f in verify_release(root)}
    assert ("member-crc-mismatch", str(pngs[0].relative_to(root))) in codes
    assert ("member-missing", str(pngs[1].relative_to(root))) in codes
    assert ("archive-hash-mismatch", "Images_png_02.zip") in codes


def test_disk_space_is_checked_up_front(
    tmp_path: Path, mirror: MirrorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda p: real(p)._replace(free=1000))
    with pytest.raises(DownloadError, match="GB free"):
        get(tmp_path / "dl", mirror)


def test_cli_dry_run_and_usage_errors(tmp_path: Path, mirror: MirrorServer) -> None:
    base = [sys.executable, "-m", "deeplesion.cli.main", "download", "--root", str(tmp_path / "dl")]
    command = [*base, "--mirror", mirror.url, "--dry-run", "--json"]
    out = subprocess.run(command, capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    plan = json.loads(out.stdout)
    assert plan["bytes_to_transfer"] > 0 and plan["peak_disk_bytes"] >= plan["bytes_to_transfer"]
    assert not (tmp_path / "dl").exists()  # a dry run changes nothing
    command = [*base, "--mirror", mirror.url, "--checksum", "sha256"]
    bad = subprocess.run(command, capture_output=True, text=True, check=False)
    assert bad.returncode == 2 and "sha256" in bad.stderr
    parts = subprocess.run([*base, "--parts", "x"], capture_output=True, text=True, check=False)
    assert parts.returncode == 2 and "--parts" in parts.stderr


def test_range_parsing() -> None:
    assert parse_range("bytes=10-", 100) == (10, 99)
    assert parse_range("bytes=10-19", 100) == (10, 19)
    assert parse_range("bytes=-5", 100) == (95, 99)
    assert parse_range("bytes=100-", 100) == "invalid"
    assert parse_range("bytes=1-2,4-5", 100) is None
    assert parse_range(None, 100) is None


def test_full_disk_keeps_the_part_for_a_later_resume(
    tmp_path: Path, mirror: MirrorServer, release: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno
    import io

    real_open = Path.open

    class FullDisk(io.BufferedWriter):
        written = 0

        def write(self, data: bytes) -> int:  # type: ignore[override]
            if FullDisk.written > 1_000_000:
                raise OSError(errno.ENOSPC, "No space left on device")
            FullDisk.written += len(data)
            return super().write(data)

    def fake_open(self: Path, mode: str = "r", *args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        if self.name == "Images_png_01.zip.part" and mode in ("wb", "ab"):
            return FullDisk(real_open(self, mode.replace("b", "") + "b", buffering=0))  # type: ignore[arg-type]
        return real_open(self, mode, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "open", fake_open)
    with pytest.raises(DownloadError, match=r"disk is full.*rerun to resume"):
        download(tmp_path / "dl", mirror=mirror.url, policy=FAST, jobs=1)
    part = tmp_path / "dl" / "Images_png_01.zip.part"
    assert part.stat().st_size > 0
    monkeypatch.setattr(Path, "open", real_open)
    summary = get(tmp_path / "dl", mirror)
    assert "Images_png_01.zip" in summary.resumed
    assert tree(tmp_path / "dl") == tree(release)


def test_ctrl_c_stops_promptly_and_keeps_the_parts(
    tmp_path: Path, mirror: MirrorServer, release: Path
) -> None:
    import signal

    FaultyHandler.slow = 0.02  # about 3 MB/s: the run is still going when it is interrupted
    root = tmp_path / "dl"
    command = [sys.executable, "-m", "deeplesion.cli.main", "download", "--root", str(root)]
    command += ["--mirror", mirror.url, "--no-progress", "--jobs", "2"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    parts = [root / "Images_png_01.zip.part", root / "Images_png_02.zip.part"]
    for _ in range(600):
        if any(p.exists() and p.stat().st_size > 1_000_000 for p in parts):
            break
        time.sleep(0.05)
    started = time.monotonic()
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert time.monotonic() - started < 10  # it does not wait for the archives to finish
    assert process.returncode == 130 and "interrupted" in stderr and "Traceback" not in stderr
    assert any(p.exists() and p.stat().st_size > 0 for p in parts)
    assert not (root / ".deeplesion" / "download.lock").exists()
    FaultyHandler.slow = 0.0
    summary = get(root, mirror)
    assert summary.resumed and tree(root) == tree(release)
