"""The synthetic release: layout, annotations measured from the drawn lesions, zips, determinism, quirks.

They use the test run's shared 6-patient release (zips and quirks on).
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from deeplesion.catalog import Catalog, LesionType, Split, load_catalog
from deeplesion.checks import check_catalog
from deeplesion.errors import ImageError, OutputExistsError
from deeplesion.findings import CODES, has_errors
from deeplesion.slices import decode_slice, encode_slice, read_slice_hu
from deeplesion.synth import QUIRKS, make_synthetic_release, plan_release
from deeplesion.synth.phantom import lesion_mask

from .conftest import SHARED_RELEASE_PATIENTS as PATIENTS
from .conftest import SHARED_RELEASE_SEED as SEED


@pytest.fixture(scope="module")
def release(shared_release: Path) -> Path:
    return shared_release


@pytest.fixture(scope="module")
def catalog(release: Path) -> Catalog:
    return load_catalog(release / "DL_info.csv")


@pytest.fixture(scope="module")
def manifest(release: Path) -> dict:  # type: ignore[type-arg]
    return json.loads((release / "synth-manifest.json").read_text())


def test_layout(release: Path, catalog: Catalog) -> None:
    names = {p.name for p in release.iterdir()}
    assert {"DL_info.csv", "Images_png", "MD5_checksums.txt", "synth-manifest.json"} <= names
    assert {"Images_png_01.zip", "Images_png_02.zip"} <= names
    for folder in (release / "Images_png").iterdir():
        assert len(folder.name) == 12 and folder.name.count("_") == 2
        for png in folder.iterdir():
            assert png.suffix == ".png" and len(png.stem) >= 3 and png.stem.isdigit()
    for lesion in catalog:
        assert (release / lesion.key_slice_path).is_file()


def test_validate_finds_no_errors(catalog: Catalog) -> None:
    findings = check_catalog(catalog)
    assert not has_errors(findings), [f for f in findings if f.severity == "error"]


def test_csv_values_are_plausible(catalog: Catalog) -> None:
    assert set(catalog.slice_interval_mm.tolist()) <= {1.0, 2.0, 2.5, 5.0}
    assert ((catalog.spacing[:, 0] >= 0.6) & (catalog.spacing[:, 0] <= 0.98)).all()
    assert set(catalog.split.tolist()) == {1, 2, 3}  # every split gets a patient when N >= 3
    train = catalog.filter(split="train")
    assert (train.lesion_type == int(LesionType.UNKNOWN)).all()
    assert (catalog.filter(split=["val", "test"]).lesion_type != -1).all()
    assert catalog.noisy.any()
    # sizes follow the real long diameters (0.6-342 mm); a key slice cuts near, not always at, the widest
    assert catalog.long_diameter_mm.min() > 0.5 and catalog.long_diameter_mm.max() < 350.0
    runs_per_folder: dict[str, set[tuple[int, int]]] = {}
    for lesion in catalog:
        runs_per_folder.setdefault(lesion.folder, set()).add(lesion.slice_range)
    assert any(len(runs) > 1 for runs in runs_per_folder.values()), "a folder with several runs"


def test_recist_endpoints_lie_on_the_drawn_lesion_boundary(catalog: Catalog) -> None:
    """Re-draw each annotated lesion's mask from the plan; the CSV endpoints sit on its boundary pixels."""
    plans = plan_release(PATIENTS, SEED, quirks=True)
    checked = 0
    fractions: list[float] = []
    for plan in plans:
        for series in plan.series:
            for index in series.annotated:
                key = series.key_slices[index]
                rows, cols, mask = lesion_mask(series.lesions[index], series.geometry, series.z_of(key))
                if mask.sum() < 4:
                    continue
                padded = np.pad(mask, 1)
                interior = padded[1:-1, 1:-1] & padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2]
                interior &= padded[1:-1, 2:]
                by, bx = np.nonzero(mask & ~interior)
                boundary = np.stack([bx + cols.start, by + rows.start], axis=1).astype(float)
                center = np.array(series.geometry.to_px(*series.lesions[index].center[:2]))
                name = f"{series.folder}_{key:03d}.png"
                candidates = catalog.lesions_on(name)
                assert candidates, name
                row = min(candidates, key=lambda x: float(np.linalg.norm(x.recist.mean(0) - center)))
                for point in row.recist:
                    assert np.linalg.norm(boundary - point, axis=1).min() <= 0.45, (name, point)
                # the box is the RECIST extent + 5 px (the official definition), so a lobe of a large,
                # irregular lesion can stick out; it still holds nearly all of the drawn lesion
                my, mx = np.nonzero(mask)
                mx, my = mx + cols.start, my + rows.start
                inside = (mx >= row.box[0]) & (mx <= row.box[2]) & (my >= row.box[1]) & (my <= row.box[3])
                fractions.append(float(inside.mean()))
                checked += 1
    assert checked == len(catalog)
    assert min(fractions) > 0.85 and np.median(fractions) == 1.0


def test_annotations_match_the_image(release: Path, catalog: Catalog) -> None:
    """Along the long axis the lesion is homogeneous and differs from what lies just beyond its ends."""
    contrasts = []
    for lesion in catalog:
        if lesion.long_diameter_mm < 8:
            continue
        hu = read_slice_hu(release / lesion.key_slice_path).astype(np.float64)
        p1, p2 = lesion.recist[0], lesion.recist[1]
        axis = (p2 - p1) / np.linalg.norm(p2 - p1)

        def sample(point: np.ndarray, hu: np.ndarray = hu) -> float:
            x, y = np.clip(np.round(point).astype(int), 0, np.array(hu.shape[::-1]) - 1)
            return float(hu[y - 1 : y + 2, x - 1 : x + 2].mean())

        inside = np.mean([sample(p1 + t * (p2 - p1)) for t in (0.3, 0.4, 0.5, 0.6, 0.7)])
        outside = np.mean([sample(p1 - 4 * axis), sample(p2 + 4 * axis)])
        contrasts.append(abs(inside - outside))
    assert len(contrasts) > 10
    assert np.median(contrasts) > 40.0  # HU; noise is about 14 HU per pixel
    assert np.mean(np.array(contrasts) > 20.0) > 0.8


def test_slices_look_like_ct(release: Path, catalog: Catalog) -> None:
    lesion = catalog[0]
    hu = read_slice_hu(release / lesion.key_slice_path)
    assert hu.dtype == np.int16 and hu.shape == (lesion.image_size[1], lesion.image_size[0])
    assert hu[0, 0] in (-1024, -3024) and (hu == hu[0, 0]).mean() > 0.15  # outside the field of view
    body = hu > -950  # soft tissue, bone and lung parenchyma (about -880 HU); not air
    assert 0.25 < body.mean() < 0.9
    assert (hu > 400).sum() > 100  # bone
    fat = (hu > -130) & (hu < -70)
    assert fat.sum() > 2000


def test_png_round_trip_is_exact() -> None:
    rng = np.random.default_rng(3)
    hu = rng.integers(-3024, 3072, size=(64, 80)).astype(np.int16)
    hu[0, :4] = [-32768, 32767, 0, -1]
    decoded = decode_slice(encode_slice(hu))
    assert decoded.dtype == np.int16
    np.testing.assert_array_equal(decoded, hu)


def test_zips_hold_the_same_tree(release: Path) -> None:
    on_disk = {str(p.relative_to(release)) for p in (release / "Images_png").rglob("*.png")}
    in_zips: dict[str, bytes] = {}
    for archive_path in sorted(release.glob("Images_png_*.zip")):
        with zipfile.ZipFile(archive_path) as archive:
            names = archive.namelist()
            assert names == sorted(names)
            folders = {n.split("/")[1] for n in names}
            for info in archive.infolist():
                assert info.date_time == (2018, 7, 27, 0, 0, 0)
                in_zips[info.filename] = archive.read(info)
        assert folders
    assert set(in_zips) == on_disk
    for name, data in in_zips.items():
        assert data == (release / name).read_bytes()
    seen: dict[str, str] = {}
    for archive_path in sorted(release.glob("Images_png_*.zip")):
        for name in zipfile.ZipFile(archive_path).namelist():
            folder = name.split("/")[1]
            assert seen.setdefault(folder, archive_path.name) == archive_path.name


def test_md5_list(release: Path) -> None:
    lines = (release / "MD5_checksums.txt").read_text().split("\n")
    listed = dict(reversed(line.split("  ")) for line in lines)  # type: ignore[misc]
    assert set(listed) == {"Images_png_01.zip", "Images_png_02.zip", "DL_info.csv"}
    for name, digest in listed.items():
        assert hashlib.md5((release / name).read_bytes()).hexdigest() == digest


def test_every_quirk_is_planted(release: Path, catalog: Catalog, manifest: dict) -> None:  # type: ignore[type-arg]
    planted = {q["quirk"]: q for q in manifest["quirks"]}
    assert set(planted) == set(QUIRKS)
    for quirk in manifest["quirks"]:
        assert quirk["code"] in CODES
    by_line = {int(row) + 2: catalog[i] for i, row in enumerate(catalog.row)}
    assert by_line[planted["nan-age"]["line"]].age is None
    assert by_line[planted["fractional-window"]["line"]].window == (-177.5, 307.5)
    big = by_line[planted["size-768"]["line"]]
    assert big.image_size == (768, 768)
    assert read_slice_hu(release / big.key_slice_path).shape == (768, 768)
    wide = by_line[planted["slice-number-1000"]["line"]]
    assert wide.key_slice >= 1000 and (release / wide.key_slice_path).name == f"{wide.key_slice}.png"
    edge = by_line[planted["box-past-edge"]["line"]]
    assert edge.box[2] > edge.image_size[0] - 1
    missing = release / planted["missing-slice"]["path"]
    assert not missing.exists()
    folder, number = missing.parent.name, int(missing.stem)
    assert any(x.folder == folder and x.slice_range[0] < number < x.slice_range[1] for x in catalog)
    with pytest.raises(ImageError, match="not a readable PNG"):
        read_slice_hu(release / planted["unreadable-png"]["path"])
    with pytest.raises(ImageError, match="8-bit"):
        read_slice_hu(release / planted["png-8bit"]["path"])
    codes = {f.code for f in check_catalog(catalog)}
    assert {"age-missing", "window-fractional", "size-not-512", "box-outside-image"} <= codes


def test_context_runs_are_on_disk(release: Path, catalog: Catalog, manifest: dict) -> None:  # type: ignore[type-arg]
    missing = {q["path"] for q in manifest["quirks"] if q["quirk"] == "missing-slice"}
    for lesion in catalog:
        first, last = lesion.slice_range
        for number in range(first, last + 1):
            path = f"Images_png/{lesion.folder}/{number:03d}.png"
            assert (release / path).exists() or path in missing


def test_each_row_names_its_3d_lesion(catalog: Catalog, manifest: dict) -> None:  # type: ignore[type-arg]
    """Every row names its 3D lesion; the manifest's per-study centre lies inside the row's box, and
    undoing each study's recorded pose gives the same body position in every study."""
    ids = manifest["lesion_ids"]
    assert len(ids) == len(catalog) == manifest["rows"]
    truth, series_truth = manifest["lesions"], manifest["series"]
    followed = 0
    by_id: dict[str, list[int]] = {}
    for row, lesion_id in enumerate(ids):
        by_id.setdefault(lesion_id, []).append(row)
        lesion = catalog[row]
        assert lesion_id.startswith(f"{lesion.patient:06d}-")  # an identity never crosses patients
        entry = truth[lesion_id]
        study = entry["studies"][str(lesion.study)]
        assert study["series"] == lesion.folder and study["annotated"]
        col, row_px = study["centre_px"]
        x1, y1, x2, y2 = lesion.box
        assert x1 <= col <= x2 and y1 <= row_px <= y2, (lesion.file_name, study["centre_px"], lesion.box)
        assert abs(study["centre_slice"] - lesion.key_slice) <= 0.5 + 1e-6  # the key slice is the nearest
        # the row measures that lesion: at most its largest in-plane extent (plus a pixel either end)
        assert lesion.long_diameter_mm <= study["diameters_mm"][0] + 2 * lesion.spacing[0]
        if lesion.split.label != "train":
            assert lesion.lesion_type.label == entry["type"]
        # image position -> body frame with the recorded pose: the same anatomical place in every study
        pose = series_truth[lesion.folder]
        angle = np.radians(pose["rotation_deg"])
        sx, sy = np.array(study["centre_mm"][:2]) - np.array(pose["shift_mm"])
        body_x, body_y = sx * np.cos(angle) + sy * np.sin(angle), -sx * np.sin(angle) + sy * np.cos(angle)
        body_z = study["centre_mm"][2] + pose["slice1_body_z_mm"]
        np.testing.assert_allclose([body_x, body_y, body_z], entry["body_centre_mm"], atol=0.02)
    shifts = []
    for rows in by_id.values():
        studies = {catalog[r].study for r in rows}
        assert len(studies) == len(rows)  # one row per lesion and study
        if len(studies) > 1:
            followed += 1
            centres = [truth[ids[rows[0]]]["studies"][str(s)]["centre_mm"][:2] for s in sorted(studies)]
            shifts.append(float(np.linalg.norm(np.subtract(centres[0], centres[1]))))
    assert followed >= 3  # some lesions are annotated in more than one study
    assert max(shifts) > 1.0  # and they move in the image between studies (patient shift and rotation)


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    def tree(root: Path) -> dict[str, str]:
        return {
            str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*"))
            if p.is_file()
        }

    make_synthetic_release(tmp_path / "a", patients=2, seed=5, quirks=True)
    make_synthetic_release(tmp_path / "b", patients=2, seed=5, quirks=True, jobs=2)  # workers: same files
    make_synthetic_release(tmp_path / "c", patients=1, seed=6)
    assert tree(tmp_path / "a") == tree(tmp_path / "b")
    assert tree(tmp_path / "a")["DL_info.csv"] != tree(tmp_path / "c")["DL_info.csv"]


def test_non_empty_output_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    with pytest.raises(OutputExistsError, match="force=True"):
        make_synthetic_release(out, patients=1)
    assert [p.name for p in out.iterdir()] == ["precious.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["mine"]  # no staging folder left behind


def test_splits_for_any_patient_count() -> None:
    for n in (1, 2, 3, 7, 20):
        splits = [p.split for p in plan_release(n, 1)]
        assert len(splits) == n
        if n >= 3:
            assert set(splits) == set(Split)


def test_a_terminated_synth_leaves_no_half_written_release(tmp_path: Path) -> None:
    """SIGTERM (``kill``, a scheduler's time limit) stops a command as Ctrl-C does: a synth killed while
    writing leaves neither the release nor its hidden staging folder (before, Python ended without
    unwinding and the ``.release.*.part`` folder stayed, up to gigabytes)."""
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "release"
    command = [sys.executable, "-m", "deeplesion.cli.main", "synth", "--out", str(out), "--patients", "6"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for _ in range(1200):  # until the first slices are written into the staging folder
        if any(tmp_path.glob(".release.*.part/**/*.png")) or process.poll() is not None:
            break
        time.sleep(0.05)
    assert process.poll() is None, "the synth ended before it could be terminated"
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130 and "interrupted" in stderr and "Traceback" not in stderr, stderr
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []
