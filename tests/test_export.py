"""NIfTI sub-volumes (real series, layouts, readers, reruns, pools, Dask) and the COCO export."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path

import cv2
import nibabel as nib
import numpy as np
import pytest

from deeplesion.catalog import load_catalog
from deeplesion.coco import coco_document, write_key_slice_images
from deeplesion.errors import UsageError
from deeplesion.names import coco_image_id, parse_subvolume_name
from deeplesion.nifti import (
    export_nifti,
    file_layout,
    index_to_slice,
    read_nifti_display,
    read_subvolume,
    slice_to_index,
    subvolume_complete,
)
from deeplesion.release import open_release

from .conftest import DL_INFO_DIR, PNG16_DIR, SHARED_DATA, require
from .release_builder import build, lesion_row

COMPLETE = ("000001_01_01", "000001_02_01", "000001_03_01")


@pytest.fixture
def toy(tmp_path: Path) -> Path:
    """000001_01_01: a 5 mm run 10-14 and a 1 mm run 20-30 (mixed intervals); 000002_01_01: 5-7."""
    rows = [
        lesion_row((1, 1, 1), 12, 10, 14, 5.0),
        lesion_row((1, 1, 1), 21, 20, 30, 1.0),
        lesion_row((2, 1, 1), 6, 5, 7, 2.5),
    ]
    slices = {"000001_01_01": [*range(10, 15), *range(20, 31)], "000002_01_01": [5, 6, 7]}
    return build(tmp_path / "toy", rows, slices)


def test_real_series_export_to_the_official_names_and_voxels(tmp_path: Path) -> None:
    require(PNG16_DIR)
    catalog = load_catalog(require(DL_INFO_DIR / "DL_info_union.csv"))
    rows = catalog.filter(
        file_names=[f"{f}_{p.stem}.png" for f in COMPLETE for p in (PNG16_DIR / "Images_png" / f).iterdir()]
    )
    summary = export_nifti(PNG16_DIR, rows, out=tmp_path / "nifti", series=list(COMPLETE))
    names = sorted(p.name for p in (tmp_path / "nifti").iterdir())
    assert names == [
        "000001_01_01_103-115.nii.gz",
        "000001_02_01_008-023.nii.gz",
        "000001_03_01_058-118.nii.gz",
    ]
    assert summary.written == 3 and summary.slices == 13 + 16 + 61
    release = open_release(PNG16_DIR, catalog=rows)
    for name in names:
        folder, first, last = parse_subvolume_name(name)
        image = nib.load(str(tmp_path / "nifti" / name))
        assert image.get_data_dtype() == np.int16
        data = np.asarray(image.dataobj)  # (H, W, Z) as the official converter stores it
        for z, number in enumerate(range(first, last + 1)):
            np.testing.assert_array_equal(data[:, :, z], release.read_slice(folder, number))
        lesion = next(x for x in rows if x.folder == folder)
        sx, _, sz = lesion.spacing
        np.testing.assert_allclose(image.affine[:3, :3], [[0, -sx, 0], [-sx, 0, 0], [0, 0, -sz]], rtol=1e-6)
        assert not image.affine[:3, 3].any()  # official: origin 0
        back = read_subvolume(tmp_path / "nifti" / name)
        assert back.layout == "official" and back.slice_numbers[0] == first
        np.testing.assert_array_equal(back.data, release.volume(lesion).data)


def test_world_layout_places_runs_and_warns_on_mixed_intervals(toy: Path, tmp_path: Path) -> None:
    summary = export_nifti(toy, load_catalog(toy / "DL_info.csv"), layout="world")
    out = toy / "Images_nifti_world"
    assert sorted(p.name for p in out.iterdir()) == [
        "000001_01_01_010-014.nii.gz",
        "000001_01_01_020-030.nii.gz",
        "000002_01_01_005-007.nii.gz",
    ]
    late = nib.load(str(out / "000001_01_01_020-030.nii.gz"))
    assert late.affine[2, 3] == pytest.approx(-(20 - 1) * 1.0) and late.affine[2, 2] == -1.0
    early = nib.load(str(out / "000001_01_01_010-014.nii.gz"))
    assert early.affine[2, 3] == pytest.approx(-(10 - 1) * 5.0)
    assert any("different slice intervals" in w for w in summary.warnings)
    assert read_subvolume(out / "000002_01_01_005-007.nii.gz").layout == "world"


def test_reruns_skip_complete_files_and_protect_others(toy: Path) -> None:
    catalog = load_catalog(toy / "DL_info.csv")
    first = export_nifti(toy, catalog)
    assert first.written == 3
    again = export_nifti(toy, catalog)
    assert again.written == 0 and again.skipped == 3
    world_into_official = export_nifti(toy, catalog, layout="world", out=toy / "Images_nifti")
    assert world_into_official.written == 0 and len(world_into_official.conflicts) == 3
    forced = export_nifti(toy, catalog, layout="world", out=toy / "Images_nifti", force=True)
    assert forced.written == 3
    assert not list((toy / "Images_nifti").glob(".*"))  # no temporary files left


@pytest.mark.slow
@pytest.mark.parametrize("layouts", [("official", "official"), ("official", "world")])
def test_concurrent_exports_into_one_folder_leave_only_complete_files(
    shared_release: Path, tmp_path: Path, layouts: tuple[str, str]
) -> None:
    out = tmp_path / "nifti"
    base = [sys.executable, "-m", "deeplesion.cli.main", "export", "nifti", "--root", str(shared_release)]
    runs = [
        subprocess.Popen(
            [*base, "--out", str(out), "--layout", layout, "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for layout in layouts
    ]
    results = [(run.communicate(timeout=600), run.returncode) for run in runs]
    for (stdout, stderr), code in results:
        assert "Traceback" not in stderr, stderr
        assert code in (0, 1), stderr  # 1: the other layout's files are conflicts, or a quirk slice failed
        json.loads(stdout)
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # no temporary file left
    files = sorted(out.glob("*.nii.gz"))
    assert files
    for path in files:  # every file is whole: its gzip stream reads to the end, its data decodes
        layout = file_layout(path)
        assert layout in layouts
        _, first, last = parse_subvolume_name(path.name)
        assert subvolume_complete(path, layout, last - first + 1), path.name  # type: ignore[arg-type]
        assert read_subvolume(path).data.shape[0] == last - first + 1


def test_an_incomplete_file_is_not_taken_as_complete(toy: Path) -> None:
    catalog = load_catalog(toy / "DL_info.csv")
    export_nifti(toy, catalog)
    victim = toy / "Images_nifti" / "000002_01_01_005-007.nii.gz"
    whole = victim.read_bytes()
    victim.write_bytes(whole[: len(whole) - 40])  # cut short: the header still reads, the data does not
    assert file_layout(victim) == "official"
    again = export_nifti(toy, catalog)
    assert again.written == 1 and again.skipped == 2
    assert any("incomplete or corrupt" in w for w in again.warnings)
    assert victim.read_bytes() == whole


def test_pool_and_dask_write_the_same_files(toy: Path, tmp_path: Path) -> None:
    catalog = load_catalog(toy / "DL_info.csv")
    export_nifti(toy, catalog, out=tmp_path / "serial")
    export_nifti(toy, catalog, out=tmp_path / "pool", jobs=2)
    distributed = pytest.importorskip("distributed", reason="Dask is an optional extra")
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    ) as cluster:
        export_nifti(toy, catalog, out=tmp_path / "dask", scheduler=cluster.scheduler_address)
    for name in (p.name for p in (tmp_path / "serial").iterdir()):
        reference = read_subvolume(tmp_path / "serial" / name).data
        for other in ("pool", "dask"):
            np.testing.assert_array_equal(read_subvolume(tmp_path / other / name).data, reference)


def test_any_orientation_reads_back_to_display(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    volume = rng.integers(-1000, 1000, size=(5, 6, 7)).astype(np.int16)  # (Z, H, W)
    official = np.transpose(volume, (1, 2, 0))  # (H, W, Z)
    affine = np.array([[0, -0.7, 0, 0], [-0.7, 0, 0, 0], [0, 0, -2.0, 0], [0, 0, 0, 1]])
    nib.save(nib.Nifti1Image(official, affine), str(tmp_path / "a.nii.gz"))
    # the z-reversed variant: slices stored in the other order, the affine says so
    flipped = affine.copy()
    flipped[2, 2], flipped[2, 3] = 2.0, -2.0 * 4
    nib.save(nib.Nifti1Image(official[:, :, ::-1], flipped), str(tmp_path / "b.nii.gz"))
    # another tool's (W, H, Z) RAS-ish storage
    other = np.array([[-0.7, 0, 0, 0], [0, -0.7, 0, 0], [0, 0, -2.0, 0], [0, 0, 0, 1]])
    nib.save(nib.Nifti1Image(np.transpose(volume, (2, 1, 0)), other), str(tmp_path / "c.nii.gz"))
    for name in ("a", "b", "c"):
        data, spacing = read_nifti_display(tmp_path / f"{name}.nii.gz")
        np.testing.assert_array_equal(data, volume, err_msg=name)
        assert spacing == pytest.approx((0.7, 0.7, 2.0))


def test_z_frames() -> None:
    assert slice_to_index(109, 103) == 6 and index_to_slice(6, 103) == 109
    # the manual 1K 3D boxes use whole-series slice numbers: every z lies inside its sub-volume's name
    path = require(SHARED_DATA / "manual_1k" / "DeepLesion_manual_1K_test_release.pkl")
    with path.open("rb") as handle:
        data = pickle.load(handle, encoding="latin1")
    for split in data.values():
        for name, boxes in split.items():
            _, first, last = parse_subvolume_name(name)
            assert ((boxes[:, 2] >= first) & (boxes[:, 5] <= last)).all(), name


def test_coco_export_agrees_with_an_independent_conversion() -> None:
    reference = json.loads(require(SHARED_DATA / "coco_mvpnet" / "deeplesion_test.json").read_text())
    ours = coco_document(load_catalog(DL_INFO_DIR / "DL_info_test.csv"), split="test")
    assert len(ours["images"]) == len(reference["images"]) == 4831
    assert len(ours["annotations"]) == len(reference["annotations"]) == 4927
    theirs_by_id = {im["id"]: im for im in reference["images"]}
    ours_by_name = {im["file_name"]: im for im in ours["images"]}
    assert set(ours_by_name) == {im["file_name"] for im in reference["images"]}
    for image in reference["images"]:
        mine = ours_by_name[image["file_name"]]
        for key in ("width", "height", "slice_no", "spacing", "slice_intv", "z_position", "windows"):
            assert mine[key] == image[key], (image["file_name"], key)

    def boxes_by_file(document: dict, images: dict) -> dict[str, list]:  # type: ignore[type-arg]
        out: dict[str, list] = {}  # type: ignore[type-arg]
        for a in document["annotations"]:
            out.setdefault(images[a["image_id"]]["file_name"], []).append(
                (tuple(round(v, 6) for v in a["bbox"]), a["noisy"])
            )
        return {k: sorted(v) for k, v in out.items()}

    ours_by_id = {im["id"]: im for im in ours["images"]}
    assert boxes_by_file(ours, ours_by_id) == boxes_by_file(reference, theirs_by_id)
    for a in ours["annotations"]:
        assert a["area"] == pytest.approx(a["bbox"][2] * a["bbox"][3]) and a["id"] == a["row"] + 1
        assert a["image_id"] == coco_image_id(ours_by_id[a["image_id"]]["file_name"].replace("/", "_"))
    assert min(im["id"] for im in ours["images"]) >= 1


def test_coco_options(sample_csv: Path) -> None:
    catalog = load_catalog(sample_csv)
    project = coco_document(catalog)
    csv_frame = coco_document(catalog, frame="csv")
    assert csv_frame["annotations"][0]["bbox"][0] == pytest.approx(project["annotations"][0]["bbox"][0] + 1)
    assert len(project["annotations"]) == 158
    with pytest.raises(UsageError, match="types exist on val and test rows only"):
        coco_document(catalog, categories="type")
    typed = coco_document(catalog, split="test", categories="type")
    assert [c["id"] for c in typed["categories"]] == list(range(1, 9))
    assert {a["category_id"] for a in typed["annotations"]} <= set(range(1, 9))


def test_key_slice_pngs_are_8bit_with_context(toy: Path, tmp_path: Path) -> None:
    catalog = load_catalog(toy / "DL_info.csv").filter(file_names=["000001_01_01_021.png"])
    assert write_key_slice_images(toy, catalog, tmp_path / "png8") == 1
    image = cv2.imread(str(tmp_path / "png8" / "000001_01_01" / "021.png"), cv2.IMREAD_UNCHANGED)
    assert image.dtype == np.uint8 and image.shape == (64, 64, 3)
    red, green, blue = image[0, 0, 2], image[0, 0, 1], image[0, 0, 0]  # RGB: key - 2 mm, key, key + 2 mm
    # key 21 of the 1 mm run 20-30: slices 19 (-> 20, the run's edge), 21 and 23 hold 200, 210, 230 HU
    expected = [round((hu + 1024) / 4095 * 255) for hu in (200, 210, 230)]
    assert [int(red), int(green), int(blue)] == expected


def test_cli_export(toy: Path, tmp_path: Path) -> None:
    base = [sys.executable, "-m", "deeplesion.cli.main", "export"]
    nifti = subprocess.run(
        [*base, "nifti", "--root", str(toy), "--json"], capture_output=True, text=True, check=False
    )
    assert nifti.returncode == 0, nifti.stderr
    assert json.loads(nifti.stdout)["written"] == 3
    out = tmp_path / "coco.json"
    coco = subprocess.run(
        [
            *base,
            "coco",
            "-a",
            str(toy / "DL_info.csv"),
            "--out",
            str(out),
            "--images-dir",
            str(tmp_path / "png8"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert coco.returncode == 0, coco.stderr
    assert (
        len(json.loads(out.read_text())["images"]) == 3 and len(list((tmp_path / "png8").rglob("*.png"))) == 3
    )
    again = subprocess.run(
        [*base, "coco", "-a", str(toy / "DL_info.csv"), "--out", str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert again.returncode == 2 and "--force" in again.stderr


def test_lesion_frames(sample_csv: Path) -> None:
    from deeplesion.nifti import lesion_frames

    lesion = load_catalog(sample_csv)[0]  # 000089_01_01_037.png, Slice_range 31-43
    frames = lesion_frames(lesion)
    assert frames["subvolume"] == "000089_01_01_031-043.nii.gz"
    assert frames["slice_number"] == 37 and frames["subvolume_index"] == 6
    assert frames["box_csv"][0] == pytest.approx(frames["box"][0] + 1)
