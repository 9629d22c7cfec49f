"""Box conventions: the worked example, the conversions, IoU in both conventions, and the moving rule."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deeplesion import boxes
from deeplesion.evaluate.froc import overlaps
from deeplesion.geometry import Transform, crop, flip_horizontal, resize


def test_the_worked_example_of_the_docstring() -> None:
    dl_info = [226.169, 90.0204, 241.252, 111.977]  # 000001_01_01_109.png
    catalog = boxes.from_dl_info(dl_info)
    np.testing.assert_allclose(catalog, [[225.169, 89.0204, 240.252, 110.977]])
    assert boxes.area(catalog)[0] == pytest.approx(16.083 * 22.9566)
    np.testing.assert_allclose(boxes.to_coco(catalog), [[225.169, 89.0204, 15.083, 21.9566]])
    np.testing.assert_allclose(boxes.to_torchvision(catalog), [[225.169, 89.0204, 241.252, 111.977]])
    np.testing.assert_allclose(boxes.to_dl_info(catalog), [dl_info])


def _pixels(box: np.ndarray, size: int = 40) -> np.ndarray:
    """The pixels whose centres lie inside an inclusive catalog box, as a mask (an independent count)."""
    grid = np.arange(size)
    cols = (grid >= box[0]) & (grid <= box[2])
    rows = (grid >= box[1]) & (grid <= box[3])
    return rows[:, None] & cols[None, :]


integer_box = st.tuples(st.integers(0, 30), st.integers(0, 30), st.integers(0, 9), st.integers(0, 9)).map(
    lambda t: np.array([t[0], t[1], t[0] + t[2], t[1] + t[3]], dtype=float)
)


@settings(deadline=None, max_examples=200)
@given(integer_box, integer_box)
def test_inclusive_iou_counts_pixels_and_equals_torchvisions_on_converted_boxes(
    a: np.ndarray, b: np.ndarray
) -> None:
    pa, pb = _pixels(a), _pixels(b)
    counted = (pa & pb).sum() / (pa | pb).sum()
    assert boxes.box_iou(a, b)[0, 0] == pytest.approx(counted)
    continuous = boxes.box_iou(boxes.to_torchvision(a), boxes.to_torchvision(b), inclusive=False)
    assert continuous[0, 0] == pytest.approx(counted)
    assert overlaps(a[None], b[None])[0] == pytest.approx(counted)  # the FROC uses the same rule
    assert boxes.overlap_pairs(a, b, over="first") == pytest.approx((pa & pb).sum() / pa.sum())


def test_pairwise_shapes_and_round_trips() -> None:
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 400, (7, 2))
    many = np.column_stack([xy, xy + rng.uniform(1, 60, (7, 2))])
    iou = boxes.box_iou(many, many[:3])
    assert iou.shape == (7, 3) and np.allclose(np.diag(iou[:3]), 1.0)
    np.testing.assert_allclose(boxes.from_coco(boxes.to_coco(many)), many, atol=1e-12)
    np.testing.assert_allclose(boxes.from_torchvision(boxes.to_torchvision(many)), many)
    assert (boxes.clip(many, 100, 80)[:, 2] <= 99).all() and (
        boxes.clip_torchvision(many, 100, 80) <= 100
    ).all()
    with pytest.raises(ValueError, match="over"):
        boxes.overlap_pairs(many, many, over="other")


def test_a_detection_thinner_than_a_pixel_stays_a_valid_catalog_box() -> None:
    # a detector returned [471.04, 414.52, 475.97, 415.48]: 0.96 px high; minus the exclusive end it was
    # [.., 414.52, 474.97, 414.48], which the evaluation rightly refuses (y2 < y1)
    out = boxes.from_torchvision([[471.04, 414.52, 475.97, 415.48], [10.0, 20.0, 10.5, 40.0]])
    np.testing.assert_allclose(out, [[471.04, 414.52, 474.97, 414.52], [10.0, 20.0, 10.0, 39.0]])


def test_boxes_move_with_crop_resize_and_flip_like_their_pixels() -> None:
    # a bright rectangle in an image: after each step the box must still frame the bright pixels
    image = np.zeros((60, 80), dtype=np.float32)
    image[20:31, 10:25] = 1.0  # columns 10..24, rows 20..30 inclusive
    box = np.array([10.0, 20.0, 24.0, 30.0])
    cropped, to_crop = crop(image, (5, 8, 70, 58))
    flipped, to_flip = flip_horizontal(cropped)
    total = to_flip @ to_crop
    moved = total.boxes(box)
    rows, cols = np.nonzero(flipped > 0.5)
    np.testing.assert_allclose(moved, [cols.min(), rows.min(), cols.max(), rows.max()])
    assert moved[0] <= moved[2]  # the flip swapped the corners back into order
    np.testing.assert_allclose(total.inverse().boxes(moved), box)
    np.testing.assert_allclose(flip_horizontal(flipped)[0], cropped)
    # a resize by 2 maps pixel centres: the box spans the same physical extent, centres kept
    big, to_big = resize(cropped, 2.0)
    x1, _, x2, _ = to_big.boxes(to_crop.boxes(box))
    assert (x1, x2) == pytest.approx(((10 - 5 + 0.5) * 2 - 0.5, (24 - 5 + 0.5) * 2 - 0.5))
    inside = big[:, int(np.ceil(x1)) : int(np.floor(x2)) + 1].max(axis=0)
    assert inside.min() > 0.5 and big[:, int(x1) - 2].max() < 0.5  # bright inside the box, dark outside
    _, reference = resize(cropped, 2.0, rule="reference")
    assert reference.boxes(to_crop.boxes(box))[0] == pytest.approx((10 - 5) * 2)
    assert Transform(-1.0, -1.0, 9.0, 9.0).boxes([1, 2, 3, 4]).tolist() == [6, 5, 8, 7]
