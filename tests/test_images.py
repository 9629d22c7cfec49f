"""Slices as HU, windows, and the reference geometry, checked on real slices and independent renderings."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

import deeplesion
from deeplesion.errors import ImageError, UsageError
from deeplesion.geometry import Transform, body_crop_box, crop, resize, spacing_scale
from deeplesion.slices import encode_slice, hu_to_png, png_to_hu, read_slice_hu
from deeplesion.windowing import PRESETS, apply_window, multi_window, resolve_window

from .conftest import PNG16_DIR, SHARED_DATA, require

JPG8_DIR = SHARED_DATA / "deeplesion" / "jpg8_ozymandias"


def test_real_slices_are_16bit_hu_in_range() -> None:
    pngs = sorted(require(PNG16_DIR / "Images_png").rglob("*.png"))
    assert len(pngs) == 137
    for path in pngs:
        hu = read_slice_hu(path, expected_size=(512, 512))
        assert hu.dtype == np.int16
        assert hu.min() >= -3024 and hu.max() <= 3071, path
    outside = read_slice_hu(PNG16_DIR / "Images_png/000001_01_01/109.png")
    assert outside[0, 0] == -3024  # this slice marks outside the field of view with -3024


def test_hu_conversion_is_the_offset() -> None:
    raw = np.array([[0, 32768, 65535, 32000]], dtype=np.uint16)
    np.testing.assert_array_equal(png_to_hu(raw), [[-32768, 0, 32767, -768]])
    np.testing.assert_array_equal(hu_to_png(png_to_hu(raw)), raw)


def test_model_window_matches_independent_8bit_renderings() -> None:
    jpgs = sorted(require(JPG8_DIR).glob("*.jpg"))
    assert len(jpgs) == 4
    for jpg in jpgs:
        folder, number = jpg.stem.rsplit("_", 1)
        hu = read_slice_hu(PNG16_DIR / "Images_png" / folder / f"{number}.png")
        ours = apply_window(hu, "model", scale="uint8").astype(np.float64)
        theirs = cv2.imread(str(jpg), cv2.IMREAD_GRAYSCALE).astype(np.float64)
        assert np.abs(ours - theirs).mean() < 1.0, jpg.name


def test_read_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="not found"):
        read_slice_hu(tmp_path / "001.png")
    good = tmp_path / "002.png"
    good.write_bytes(encode_slice(np.zeros((8, 6), dtype=np.int16)))
    with pytest.raises(ImageError, match=r"6x8 px but Image_size says 512x512"):
        read_slice_hu(good, expected_size=(512, 512))
    cut = tmp_path / "003.png"
    cut.write_bytes(good.read_bytes()[:40])
    with pytest.raises(ImageError, match=r"003\.png: not a readable PNG"):
        read_slice_hu(cut)
    eight = tmp_path / "004.png"
    cv2.imwrite(str(eight), np.zeros((8, 8), dtype=np.uint8))
    with pytest.raises(ImageError, match="8-bit"):
        read_slice_hu(eight)
    rgb = tmp_path / "005.png"
    cv2.imwrite(str(rgb), np.zeros((8, 8, 3), dtype=np.uint16))
    with pytest.raises(ImageError, match="3 colour channels"):
        read_slice_hu(rgb)


def test_window_values() -> None:
    hu = np.array([-2000, -175, 50, 275, 3000], dtype=np.int16)
    np.testing.assert_allclose(apply_window(hu, "soft_tissue"), [0, 0, 0.5, 1, 1])
    np.testing.assert_array_equal(apply_window(hu, (-175, 275), scale="uint8"), [0, 0, 128, 255, 255])
    assert apply_window(hu, "model", scale="float255").max() <= 255.0
    assert resolve_window("Soft-Tissue") == PRESETS["soft_tissue"] == (-175.0, 275.0)
    assert PRESETS["model"] == (-1024.0, 3071.0) and PRESETS["lung"] == (-1500.0, 500.0)
    assert PRESETS["bone"] == (-500.0, 1300.0)
    stack = multi_window(np.zeros((4, 5), dtype=np.int16), ["lung", "soft_tissue", (-10.0, 10.0)])
    assert stack.shape == (3, 4, 5) and stack.dtype == np.float32
    np.testing.assert_allclose(stack[:, 0, 0], [0.75, 175 / 450, 0.5], rtol=1e-6)
    with pytest.raises(UsageError, match="presets"):
        resolve_window("brain")
    with pytest.raises(UsageError, match="below"):
        resolve_window((10, 10))


def test_transform_algebra() -> None:
    t = Transform(2.0, 3.0, -5.0, 1.0)
    u = Transform(0.5, 0.5, 0.25, 0.25)
    point = np.array([[10.0, 20.0]])
    np.testing.assert_allclose((u @ t).points(point), u.points(t.points(point)))
    np.testing.assert_allclose(t.inverse().points(t.points(point)), point)
    np.testing.assert_allclose(t.boxes([1, 2, 3, 4]), [-3, 7, 1, 13])


def test_resize_transform_maps_pixel_centres() -> None:
    # a horizontal ramp: linear interpolation reproduces it exactly, so the value at an output pixel
    # is the input x that the transform's inverse gives for that pixel
    ramp = np.tile(np.arange(100, dtype=np.float32), (40, 1))
    out, transform = resize(ramp, 1.37)
    assert out.shape == (round(40 * 1.37), round(100 * 1.37))
    cols = np.arange(5, out.shape[1] - 5)
    source_x = transform.inverse().points(np.stack([cols, np.zeros_like(cols)], 1))[:, 0]
    np.testing.assert_allclose(out[20, 5:-5], source_x, atol=1e-3)
    planar, _ = resize(np.stack([ramp, ramp * 2]), 0.5)
    assert planar.shape == (2, 20, 50)


def test_spacing_scale_like_the_reference() -> None:
    assert spacing_scale(0.8, (512, 512)) == pytest.approx(1.0)
    assert spacing_scale(0.6, (400, 300)) == pytest.approx(0.75)
    # 0.98 mm would make a 480 px crop 588 px: reduced to 512
    assert spacing_scale(0.98, (480, 300)) * 480 == pytest.approx(512)


def test_body_crop_keeps_every_real_lesion(png16_release: deeplesion.Release) -> None:
    for lesion in png16_release.catalog:
        hu = png16_release.key_slice(lesion)
        x0, y0, x1, y1 = body_crop_box(hu)
        assert 0 <= x0 < x1 <= 512 and 0 <= y0 < y1 <= 512
        assert (x1 - x0) * (y1 - y0) < 512 * 512  # something was cropped
        box = lesion.box
        assert x0 <= box[0] and box[2] <= x1 and y0 <= box[1] and box[3] <= y1, lesion.file_name
    assert body_crop_box(np.full((20, 30), -1000, dtype=np.int16)) == (0, 0, 30, 20)


def test_sample_is_model_ready(png16_release: deeplesion.Release) -> None:
    key = "000001_03_01_088.png"
    sample = png16_release.sample(key, slices=9)
    lesion = png16_release.lesion(key)
    assert sample.image.dtype == np.float32 and sample.image.shape[0] == 9
    assert max(sample.image.shape[1:]) <= 512
    assert sample.image.min() >= 0.0 and sample.image.max() <= 255.0
    # the boxes move with crop and resize: mapping them back gives the CSV boxes (0-based)
    np.testing.assert_allclose(sample.transform.inverse().boxes(sample.boxes)[0], lesion.box, atol=1e-9)
    # the key channel equals the key slice, windowed, cropped and resized by the same transform
    key_hu = png16_release.key_slice(key)
    box = body_crop_box(key_hu)
    cropped, _ = crop(key_hu, box)
    windowed = apply_window(cropped, "model", scale="float255")
    factor = spacing_scale(lesion.spacing[0], windowed.shape)
    expected, _ = resize(windowed, factor)
    np.testing.assert_allclose(sample.image[4], expected, atol=0.01)  # of 255: float32 resize rounding


# --- the dataset authors' loader, written out from their code (MULAN's load_prep_img and helpers) -----
# Independent of the package on purpose: scipy's binary_opening for the mask, float64 windowing,
# channels-last OpenCV resize by the factor, the reference's neighbour fallback and blend weights.


def _reference_slice_name(folder: Path, key: int, delta: float) -> Path:
    delta = int(delta)
    while delta != 0 and not (folder / f"{key + delta:03d}.png").exists():
        delta -= int(np.sign(delta))  # a missing slice: the neighbour toward the key slice
    return folder / f"{key + delta:03d}.png"


def _reference_load(folder: Path, key: int, slice_intv: float, num_slice: int):  # type: ignore[no-untyped-def]
    def load(delta: float = 0.0) -> np.ndarray:
        return cv2.imread(str(_reference_slice_name(folder, key, delta)), -1)

    im_cur = load()
    ims = [im_cur]
    rel_pos = 2.0 / slice_intv
    a = rel_pos - np.floor(rel_pos)
    b = 1 - a
    for p in range((num_slice - 1) // 2):
        intv1 = rel_pos * (p + 1)
        if a == 0:
            im_prev, im_next = load(-intv1), load(intv1)
        else:  # the reference's bug: a and b of the first neighbour for every neighbour
            im_prev = a * load(-np.ceil(intv1)) + b * load(-np.floor(intv1))
            im_next = a * load(np.ceil(intv1)) + b * load(np.floor(intv1))
        ims = [im_prev, *ims, im_next]
    im = cv2.merge([x.astype(float) for x in ims]).astype(np.float32, copy=False) - 32768
    return im.reshape(*im_cur.shape, num_slice), im_cur


def _reference_prep(folder: Path, key: int, spacing: float, slice_intv: float, num_slice: int):  # type: ignore[no-untyped-def]
    from scipy.ndimage import binary_opening

    im, im_cur = _reference_load(folder, key, slice_intv, num_slice)
    im1 = im.astype(float)  # windowing: float64, [-1024, 3071] -> 0..255
    im1 -= -1024
    im1 /= 3071 - -1024
    im1[im1 > 1] = 1
    im1[im1 < 0] = 0
    im1 *= 255
    mask = binary_opening(im_cur > 32000, structure=np.ones((7, 7)))
    rows, cols = np.nonzero(mask)
    c = [rows.min(), rows.max(), cols.min(), cols.max()]
    im1 = im1[c[0] : c[1] + 1, c[2] : c[3] + 1, :]
    im_scale = float(spacing) / 0.8
    max_shape = np.max(im1.shape[0:2]) * im_scale
    if max_shape > 512:
        im_scale *= 512.0 / max_shape
    if im_scale != 1:
        im1 = cv2.resize(im1, None, None, fx=im_scale, fy=im_scale, interpolation=cv2.INTER_LINEAR)
    return im1.reshape(*im1.shape[:2], num_slice), im_scale, c


@pytest.mark.parametrize("slices", [3, 9])
def test_reference_sample_equals_the_reference_loader(png16_release: deeplesion.Release, slices: int) -> None:
    checked = 0
    for folder in ("000001_01_01", "000001_02_01", "000001_03_01"):  # the three complete real series
        for lesion in [x for x in png16_release.catalog if x.folder == folder]:
            expected, im_scale, c = _reference_prep(
                PNG16_DIR / "Images_png" / folder,
                lesion.key_slice,
                lesion.spacing[0],
                lesion.slice_interval_mm,
                slices,
            )
            sample = png16_release.sample(lesion, slices=slices, mode="reference")
            got = np.transpose(sample.image, (1, 2, 0))
            assert got.shape == expected.shape, lesion.file_name
            assert np.abs(got - expected).max() <= 1e-3, lesion.file_name
            assert sample.transform.scale_x == im_scale and sample.transform.rule == "reference"
            # boxes as the reference moves them: (box - crop offset) * scale
            offset = np.array([c[2], c[0], c[2], c[0]], dtype=float)
            expected_box = (np.asarray(lesion.box) - offset) * im_scale
            np.testing.assert_allclose(sample.boxes[0], expected_box, atol=1e-9)
            back = sample.transform.inverse().boxes(sample.boxes)[0]
            np.testing.assert_allclose(back, lesion.box, atol=1e-9)
            checked += 1
    assert checked >= 3


def test_resize_maps_by_the_factor_like_opencv_fx() -> None:
    # 000001_01_01's key slice 109: a 502 px crop at 0.488 mm; by a rounded target size OpenCV would map
    # by 306/502, not by the factor, and drift by up to half a pixel at the right edge
    rng = np.random.default_rng(0)
    image = rng.uniform(0, 255, size=(2, 511, 502)).astype(np.float32)
    scale = 0.488281 / 0.8
    out, transform = resize(image, scale)
    by_fx = cv2.resize(image[1], None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
    assert out.shape == (2, 312, 306)
    np.testing.assert_array_equal(out[1], by_fx)  # correct mode: plane by plane, by the factor
    channels_last = np.ascontiguousarray(image.transpose(1, 2, 0))
    as_reference = cv2.resize(channels_last, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
    np.testing.assert_array_equal(resize(image, scale, rule="reference")[0], as_reference.transpose(2, 0, 1))
    by_size = cv2.resize(image[1], (306, 312), interpolation=cv2.INTER_LINEAR)
    assert np.abs(out[1] - by_size).max() > 10  # what resizing to a rounded size did: not the factor
    assert transform.scale_x == scale and transform.rule == "centres"
    assert transform.shift_x == pytest.approx(0.5 * scale - 0.5)
    _, reference = resize(image, scale, rule="reference")
    assert (reference.scale_x, reference.shift_x) == (scale, 0.0)
    with pytest.raises(ValueError, match="compose"):
        _ = reference @ transform


def test_reprs_summarise_and_lone_key_slices_are_flagged(
    png16_release: deeplesion.Release, caplog: pytest.LogCaptureFixture
) -> None:
    lesion = png16_release.lesion("000001_01_01_109.png")
    assert repr(lesion).startswith("Lesion(000001_01_01_109.png, row ") and "\n" not in repr(lesion)
    stack = png16_release.context(lesion, slices=3)
    assert repr(stack) == "ContextStack(float32 (3, 512, 512), slices [108, 109, 110])"
    assert not stack.key_slice_only
    volume = png16_release.volume(lesion)
    assert repr(volume) == (
        "Volume(000001_01_01, slices 103-115, int16 (13, 512, 512) HU, spacing (0.488281, 0.488281, 5) mm)"
    )
    assert repr(png16_release.sample(lesion)).startswith("Sample(000001_01_01_109.png, image float32 (9, ")
    # a key slice staged without its neighbours: the stack says so, and the library logs it
    alone = next(x for x in png16_release.catalog if len(png16_release.slice_numbers(x.folder)) == 1)
    deeplesion.release._WARNED_LONE_FOLDERS.discard(alone.folder)  # warned once per series and process
    with caplog.at_level("WARNING", logger="deeplesion.release"):
        lonely = png16_release.context(alone, slices=3)
    assert lonely.key_slice_only and "key slice only" in repr(lonely)
    assert any("no neighbour slice" in r.getMessage() for r in caplog.records)


def test_star_import_keeps_the_builtin_open() -> None:
    namespace: dict[str, object] = {}
    exec("from deeplesion import *", namespace)
    assert "open" not in namespace and "Release" in namespace
    assert deeplesion.open is deeplesion.release.open_release
