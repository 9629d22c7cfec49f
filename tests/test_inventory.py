"""The image inventory: planted quirks found, real staged slices, partial downloads, pools and Dask."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from deeplesion.catalog import load_catalog, write_dl_info
from deeplesion.findings import Severity
from deeplesion.inventory import inspect_folder, png_header, run_inventory
from deeplesion.slices import encode_slice

from .conftest import DL_INFO_DIR, PNG16_DIR, require
from .release_builder import build, lesion_row


@pytest.fixture(scope="module")
def quirky(shared_release: Path) -> Path:
    return shared_release


def codes_at(findings: list) -> set[tuple[str, str]]:  # type: ignore[type-arg]
    return {(f.code, f.file) for f in findings}


def test_every_planted_quirk_is_found_and_nothing_else_is_an_error(quirky: Path) -> None:
    manifest = json.loads((quirky / "synth-manifest.json").read_text())
    result = subprocess.run(
        [sys.executable, "-m", "deeplesion.cli.main", "validate", "--root", str(quirky), "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1  # the broken PNGs and the missing slice are errors
    report = json.loads(result.stdout)
    findings = report["findings"]
    expected_errors = set()
    for quirk in manifest["quirks"]:
        if "line" in quirk:  # a row-level quirk: found in DL_info.csv at that line
            matches = [
                f
                for f in findings
                if f["code"] == quirk["code"]
                and f["line"] == quirk["line"]
                and Path(f["file"]).name == quirk["file"]
            ]
            if quirk["code"] == "slice-number-wide":
                matches = [f for f in findings if f["code"] == quirk["code"] and f["file"] == quirk["path"]]
        else:
            matches = [f for f in findings if f["code"] == quirk["code"] and f["file"] == quirk["path"]]
        assert matches, quirk
        if matches[0]["severity"] == "error":
            expected_errors.add((quirk["code"], quirk["path"]))
    errors = {(f["code"], f["file"]) for f in findings if f["severity"] == "error"}
    assert errors == expected_errors
    assert errors == {
        (q["code"], q["path"])
        for q in manifest["quirks"]
        if q["quirk"] in ("missing-slice", "unreadable-png", "png-8bit")
    }


def test_process_pool_and_full_mode_agree(quirky: Path) -> None:
    catalog = load_catalog(quirky / "DL_info.csv")
    serial = run_inventory(quirky, catalog)
    pooled = run_inventory(quirky, catalog, jobs=2)
    assert codes_at(serial.findings) == codes_at(pooled.findings)
    full = run_inventory(quirky, catalog, full=True)
    assert codes_at(full.findings) == codes_at(serial.findings)
    assert full.decoded == full.slices - 2  # the unreadable and the 8-bit slice are stopped by their headers


def test_dask_cluster_gives_the_same_findings(quirky: Path) -> None:
    distributed = pytest.importorskip("distributed", reason="Dask is an optional extra")
    catalog = load_catalog(quirky / "DL_info.csv")
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    ) as cluster:
        on_dask = run_inventory(quirky, catalog, scheduler=cluster.scheduler_address)
    assert codes_at(on_dask.findings) == codes_at(run_inventory(quirky, catalog).findings)


def test_real_staged_slices(tmp_path: Path) -> None:
    images = require(PNG16_DIR / "Images_png")
    catalog = load_catalog(require(DL_INFO_DIR / "DL_info_union.csv"))
    names = [f"{d.name}_{p.stem}.png" for d in images.iterdir() for p in d.iterdir()]
    rows = catalog.filter(file_names=names)
    report = run_inventory(PNG16_DIR, rows, full=True)
    complete = ("000001_01_01", "000001_02_01", "000001_03_01")
    assert not [f for f in report.findings if any(c in (f.file or "") for c in complete)]
    assert report.slices == 137 and report.decoded == 137
    assert {f.code for f in report.findings} == {"slice-missing", "run-differs"}
    assert not [f for f in report.findings if f.code == "key-slice-missing"]
    # every other folder holds single key slices: its missing context is reported
    differs = {str(f.file).split("/")[1] for f in report.findings if f.code == "run-differs"}
    assert differs == {d.name for d in images.iterdir()} - set(complete)


def test_partial_download_turns_absence_into_notes(tmp_path: Path) -> None:
    rows = [lesion_row((1, 1, 1), 12, 10, 14, 5.0), lesion_row((2, 1, 1), 20, 18, 22, 5.0)]
    root = build(tmp_path / "partial", rows, {"000001_01_01": [12]})
    catalog = load_catalog(root / "DL_info.csv")
    everything = run_inventory(root, catalog)
    errors = {f.code for f in everything.findings if f.severity is Severity.ERROR}
    assert errors == {"slice-missing", "key-slice-missing"}
    state = root / ".deeplesion"
    state.mkdir()
    (state / "requested.json").write_text(json.dumps({"folders": ["000001_01_01"], "key_slices_only": True}))
    partial = run_inventory(root, catalog)
    assert not [f for f in partial.findings if f.severity is Severity.ERROR]
    assert {f.code for f in partial.findings} == {"not-requested"}


def test_folder_level_checks(tmp_path: Path) -> None:
    rows = [lesion_row((1, 1, 1), 11, 10, 12, 5.0), lesion_row((1, 1, 1), 21, 20, 22, 1.0)]
    root = build(tmp_path / "toy", rows, {"000001_01_01": [9, 10, 11, 12, 20, 21, 22], "000009_01_01": [1]})
    folder = root / "Images_png" / "000001_01_01"
    (folder / "7.png").write_bytes((folder / "009.png").read_bytes())  # slice 7, outside every run
    (folder / "0009.png").write_bytes((folder / "009.png").read_bytes())  # two names for slice 9
    (folder / "notes.txt").write_text("hello")
    (folder / "022.png").write_bytes(encode_slice(np.zeros((32, 32), dtype=np.int16)))
    report = run_inventory(root, load_catalog(root / "DL_info.csv"))
    found = {(f.code, f.file) for f in report.findings}
    assert ("slice-numbers-invalid", "Images_png/000001_01_01/notes.txt") in found
    assert ("slice-numbers-invalid", "Images_png/000001_01_01/7.png") in found  # not %03d: never found
    assert ("slice-numbers-invalid", "Images_png/000001_01_01/009.png") in found or (
        "slice-numbers-invalid",
        "Images_png/000001_01_01/0009.png",
    ) in found
    assert ("image-size-mismatch", "Images_png/000001_01_01/022.png") in found
    assert ("series-mixed-intervals", "Images_png/000001_01_01") in found
    assert ("folder-unannotated", "Images_png/000009_01_01") in found
    assert ("run-differs", "Images_png/000001_01_01") in found  # 7 and 9 extend the run 10-12 downwards


def test_png_header(tmp_path: Path) -> None:
    good = tmp_path / "good.png"
    good.write_bytes(encode_slice(np.zeros((5, 7), dtype=np.int16)))
    assert png_header(str(good))[:2] == ("", (7, 5, 16, 0))
    (tmp_path / "cut.png").write_bytes(good.read_bytes()[:-20])
    assert "truncated" in png_header(str(tmp_path / "cut.png"))[0]
    (tmp_path / "text.png").write_text("not an image at all, but long enough to have a tail......")
    assert "not a PNG" in png_header(str(tmp_path / "text.png"))[0]
    assert inspect_folder(str(tmp_path), None, "absent").findings[0].code == "folder-unannotated"


def test_cli_quick_table(quirky: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "deeplesion.cli.main", "validate", "--root", str(quirky), "--no-progress"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert "png-unreadable" in result.stdout and "slices (headers) checked" in result.stdout


def test_annotations_only_validation_does_not_need_images(tmp_path: Path) -> None:
    rows = [lesion_row((1, 1, 1), 11, 10, 12, 5.0)]
    root = build(tmp_path / "toy", rows, {})
    out = tmp_path / "copy.csv"
    write_dl_info(load_catalog(root / "DL_info.csv"), out)
    command = [sys.executable, "-m", "deeplesion.cli.main", "validate", "-a", str(out), "--json"]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.returncode == 0 and json.loads(result.stdout)["root"] is None
