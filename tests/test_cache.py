"""The decoded cache: bit-identical samples, resumable builds, stale and corrupt caches reported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import deeplesion
from deeplesion.cache import build_cache, cache_info
from deeplesion.catalog import load_catalog
from deeplesion.errors import ImageError
from deeplesion.slices import encode_slice

from .release_builder import build, lesion_row


def planted_bad_slices_reach(release: Path, catalog: deeplesion.Catalog) -> float:
    """The context (mm round the key slices) that takes in the planted 8-bit and truncated slices: the
    release plants them away from the key slices (`synth --quirks`), at least 8 mm."""
    manifest = json.loads((release / "synth-manifest.json").read_text())
    reach = 8.0
    for quirk in manifest["quirks"]:
        if quirk["quirk"] in ("png-8bit", "unreadable-png"):
            path = Path(quirk["path"])
            rows = np.flatnonzero(catalog.folder == path.parent.name)
            interval = float(catalog.slice_interval_mm[rows[0]])
            nearest = int(np.abs(catalog.key_slice[rows] - int(path.stem)).min())
            reach = max(reach, nearest * interval + 1.0)
    return reach


def test_samples_from_the_cache_are_bit_identical(shared_release: Path, tmp_path: Path) -> None:
    # the shared release is read-only to tests: the cache goes elsewhere, as for a read-only root
    catalog = load_catalog(shared_release / "DL_info.csv")
    reach = planted_bad_slices_reach(shared_release, catalog)
    summary = build_cache(shared_release, catalog, cache_dir=tmp_path / "cache", context_mm=reach, jobs=2)
    assert summary.written > 0 and len(summary.failed) == 2  # the planted 8-bit and truncated slices
    plain = deeplesion.open(shared_release)
    cached = deeplesion.open(shared_release, cache=tmp_path / "cache")
    compared = 0
    for lesion in catalog:
        try:
            expected = plain.sample(lesion)
        except ImageError:
            continue
        for mode in ("correct", "reference"):
            a = plain.sample(lesion, mode=mode)  # type: ignore[arg-type]
            b = cached.sample(lesion, mode=mode)  # type: ignore[arg-type]
            assert np.array_equal(a.image, b.image) and a.transform == b.transform, lesion.file_name
        assert np.array_equal(expected.boxes, cached.sample(lesion).boxes)
        compared += 1
    assert compared >= 20
    again = build_cache(shared_release, catalog, cache_dir=tmp_path / "cache", context_mm=reach)
    assert again.written == 0 and again.present == summary.written  # resumable: nothing redone
    info = cache_info(tmp_path / "cache", shared_release, verify=True)
    assert info.findings == [] and info.runs == summary.written and info.bytes > 0


@pytest.fixture
def toy(tmp_path: Path) -> Path:
    rows = [lesion_row((1, 1, 1), 12, 10, 14, 5.0), lesion_row((2, 1, 1), 6, 5, 8, 2.5)]
    return build(tmp_path / "toy", rows, {"000001_01_01": [10, 11, 12, 13, 14], "000002_01_01": [5, 6, 8]})


def test_stale_corrupt_and_partial_caches_are_reported(toy: Path, caplog: pytest.LogCaptureFixture) -> None:
    catalog = load_catalog(toy / "DL_info.csv")
    summary = build_cache(toy, catalog, context_mm=5.0)  # default folder under the root
    assert summary.written == 2 and (toy / ".deeplesion" / "cache").is_dir()
    record = json.loads((toy / ".deeplesion/cache/000002_01_01/005-008.json").read_text())
    assert record["slices"] == [5, 6, 8]  # a partial series caches what exists
    # a slice changes after the build: the cache is stale for that run, the PNGs are read
    changed = toy / "Images_png/000001_01_01/013.png"
    changed.write_bytes(encode_slice(np.full((64, 64), 999, dtype=np.int16)))
    os.utime(changed, ns=(1, 1))
    release = deeplesion.open(toy, cache="auto")
    with caplog.at_level("WARNING", logger="deeplesion.cache"):
        stack = release.context(0, slices=3, interval_mm=5.0, crop_box=(0, 0, 64, 64))
    assert stack.hu[2, 0, 0] == 999 and any("stale" in r.getMessage() for r in caplog.records)
    info = cache_info(toy / ".deeplesion/cache", toy)
    assert [f.code for f in info.findings] == ["cache-stale"]
    # a flipped byte in an array: found by --verify only
    array = toy / ".deeplesion/cache/000002_01_01/005-008.npy"
    data = bytearray(array.read_bytes())
    data[-3] ^= 0xFF
    array.write_bytes(bytes(data))
    assert "cache-corrupt" not in {f.code for f in cache_info(toy / ".deeplesion/cache", toy).findings}
    verified = cache_info(toy / ".deeplesion/cache", toy, verify=True)
    assert {f.code for f in verified.findings} == {"cache-stale", "cache-corrupt"}


def test_cli_build_and_info(toy: Path, tmp_path: Path) -> None:
    base = [sys.executable, "-m", "deeplesion.cli.main", "cache"]
    target = tmp_path / "elsewhere"
    built = subprocess.run(
        [*base, "build", "--root", str(toy), "--cache-dir", str(target), "--context-mm", "5", "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    document = json.loads(built.stdout)
    assert document["written"] == 2 and document["key_slices"] == 2
    info = subprocess.run(
        [*base, "info", "--root", str(toy), "--cache-dir", str(target), "--verify"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert info.returncode == 0 and "2 valid runs" in info.stdout and "MB per key slice" in info.stdout
    missing = subprocess.run(
        [*base, "info", "--root", str(toy), "--cache-dir", str(tmp_path / "none")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert missing.returncode == 2 and "cache build" in missing.stderr and "Traceback" not in missing.stderr
