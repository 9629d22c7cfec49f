"""2.5D context plans (hand-computed weights), the edge rule, and stacks on exact constant slices."""

from __future__ import annotations

import math
import pickle
from pathlib import Path

import numpy as np
import pytest

import deeplesion
from deeplesion.context import plan_context, resolve_offset
from deeplesion.errors import ImageError, UsageError

from .release_builder import build, lesion_row


def weights(plan: list[list[tuple[int, float]]]) -> list[list[tuple[int, float]]]:
    return [[(o, round(w, 10)) for o, w in channel] for channel in plan]


def test_correct_weights_at_5mm() -> None:
    # channels at -8, -6, ..., 8 mm = offsets -1.6, -1.2, -0.8, -0.4, 0, ... slices of 5 mm
    assert weights(plan_context(9, 2.0, 5.0)) == [
        [(-2, 0.6), (-1, 0.4)],
        [(-2, 0.2), (-1, 0.8)],
        [(-1, 0.8), (0, 0.2)],
        [(-1, 0.4), (0, 0.6)],
        [(0, 1.0)],
        [(0, 0.6), (1, 0.4)],
        [(0, 0.2), (1, 0.8)],
        [(1, 0.8), (2, 0.2)],
        [(1, 0.4), (2, 0.6)],
    ]


def test_reference_weights_at_5mm_reuse_the_first_neighbours() -> None:
    # a = frac(0.4) = 0.4 on ceil, b = 0.6 on floor, for every neighbour p * 0.4 (0.4, 0.8, 1.2, 1.6):
    # +-2 equal +-1 and +-4 equal +-3
    assert weights(plan_context(9, 2.0, 5.0, "reference")) == [
        [(-2, 0.4), (-1, 0.6)],
        [(-2, 0.4), (-1, 0.6)],
        [(-1, 0.4), (0, 0.6)],
        [(-1, 0.4), (0, 0.6)],
        [(0, 1.0)],
        [(0, 0.6), (1, 0.4)],
        [(0, 0.6), (1, 0.4)],
        [(1, 0.6), (2, 0.4)],
        [(1, 0.6), (2, 0.4)],
    ]


def test_modes_agree_at_3_slices_and_on_dividing_intervals() -> None:
    for interval in (5.0, 2.5, 3.0, 1.0, 0.5, 2.0, 0.6):
        assert weights(plan_context(3, 2.0, interval)) == weights(plan_context(3, 2.0, interval, "reference"))
    for interval in (1.0, 2.0, 0.5, 0.25):
        assert weights(plan_context(27, 2.0, interval)) == weights(
            plan_context(27, 2.0, interval, "reference")
        )
    assert plan_context(5, 2.0, 1.0)[0] == [(-4, 1.0)]


def test_2_5mm_weights() -> None:
    # r = 0.8: second neighbour at 1.6 slices; correct 0.4 / 0.6, reference a=0.8 on ceil, b=0.2 on floor
    assert weights(plan_context(5, 2.0, 2.5))[4] == [(1, 0.4), (2, 0.6)]
    assert weights(plan_context(5, 2.0, 2.5, "reference"))[4] == [(1, 0.2), (2, 0.8)]


def test_unknown_interval_uses_the_key_slice() -> None:
    assert plan_context(3, 2.0, math.nan) == [[(0, 1.0)]] * 3
    assert plan_context(3, 2.0, 0.0, "reference") == [[(0, 1.0)]] * 3
    with pytest.raises(UsageError, match="odd"):
        plan_context(4, 2.0, 5.0)


def test_edge_rule_steps_toward_the_key() -> None:
    available = {10, 11, 13}
    assert resolve_offset(11, 2, available) == 13
    assert resolve_offset(11, 3, available) == 13  # 14 missing -> 13
    assert resolve_offset(11, 1, available) == 11  # 12 missing -> 11 (the key)
    assert resolve_offset(11, -3, available) == 10


@pytest.fixture
def toy(tmp_path: Path) -> deeplesion.Release:
    """000001_01_01: a 5 mm run 10-14 (12 missing) and a 1 mm run 20-30.
    000002_01_01: a 5 mm run 10-14 directly followed by a 1 mm run 15-25 (numbers touch)."""
    rows = [
        lesion_row((1, 1, 1), 11, 10, 14, 5.0),
        lesion_row((1, 1, 1), 21, 20, 30, 1.0),
        lesion_row((2, 1, 1), 14, 10, 14, 5.0),
        lesion_row((2, 1, 1), 20, 15, 25, 1.0),
    ]
    slices = {"000001_01_01": [10, 11, 13, 14, *range(20, 31)], "000002_01_01": list(range(10, 26))}
    return deeplesion.open(build(tmp_path / "toy", rows, slices))


def test_stack_values_are_the_blended_slices(toy: deeplesion.Release) -> None:
    stack = toy.context(1, slices=5, interval_mm=2.0)  # key 21 of the 1 mm run 20-30
    assert stack.hu.shape == (5, 64, 64) and stack.hu.dtype == np.float32
    # offsets -4, -2, 0, 2, 4 -> 17 and 19 are not in the run: both fall back to 20
    assert [s[0][0] for s in stack.sources] == [20, 20, 21, 23, 25]
    np.testing.assert_array_equal(stack.hu[:, 0, 0], [200, 200, 210, 230, 250])


def test_stack_with_missing_slice_and_run_edges(toy: deeplesion.Release) -> None:
    stack = toy.context(0, slices=5, interval_mm=2.0)  # key 11 of the 5 mm run 10-14, 12 is missing
    # offsets -0.8, -0.4, 0, 0.4, 0.8 slices; 12 is missing, so the + side falls back to 11
    expected = [0.8 * 100 + 0.2 * 110, 0.4 * 100 + 0.6 * 110, 110, 110, 110]
    np.testing.assert_allclose(stack.hu[:, 5, 5], expected, rtol=1e-6)
    wide = toy.context(0, slices=9, interval_mm=5.0)  # offsets -4..4: 7-9 -> 10, 12 -> 11, 15 -> 14
    assert [s[0][0] for s in wide.sources] == [10, 10, 10, 10, 11, 11, 13, 14, 14]


def test_correct_mode_never_crosses_into_another_run(toy: deeplesion.Release) -> None:
    correct = toy.context(2, slices=3, interval_mm=5.0)  # key 14, the last slice of the 5 mm run
    reference = toy.context(2, slices=3, interval_mm=5.0, mode="reference")
    assert correct.sources[2] == [(14, 1.0)]
    assert reference.sources[2] == [(15, 1.0)]  # the reference takes the first slice of the 1 mm run


def test_reference_stack_on_real_5mm_series(png16_release: deeplesion.Release) -> None:
    key = "000001_01_01_109.png"  # 5 mm run 103-115
    three = png16_release.context(key, slices=3)
    three_ref = png16_release.context(key, slices=3, mode="reference")
    np.testing.assert_allclose(three.hu, three_ref.hu, atol=1e-3)
    nine = png16_release.context(key, slices=9)
    nine_ref = png16_release.context(key, slices=9, mode="reference")
    # the reference's +-2 channels repeat its +-1 channels; the correct ones do not
    np.testing.assert_array_equal(nine_ref.hu[2], nine_ref.hu[3])
    np.testing.assert_array_equal(nine_ref.hu[5], nine_ref.hu[6])
    assert np.abs(nine.hu[2] - nine.hu[3]).mean() > 5.0
    # both agree on the channels whose weights coincide (+-1) and on the key slice
    for channel in (3, 4, 5):
        np.testing.assert_allclose(nine.hu[channel], nine_ref.hu[channel], atol=1e-3)
    # correct +2 channel (offset 0.8) = 0.2 * slice 109 + 0.8 * slice 110
    s109 = png16_release.read_slice("000001_01_01", 109).astype(np.float64)
    s110 = png16_release.read_slice("000001_01_01", 110).astype(np.float64)
    np.testing.assert_allclose(nine.hu[6], 0.2 * s109 + 0.8 * s110, atol=1e-3)


def test_release_pickles_small_and_reads_only(toy: deeplesion.Release) -> None:
    before = sorted(p.relative_to(toy.root) for p in toy.root.rglob("*"))
    _ = toy.catalog, toy.context(0, slices=3), toy.volume(1)
    blob = pickle.dumps(toy)
    assert len(blob) < 1000
    clone = pickle.loads(blob)
    np.testing.assert_array_equal(clone.key_slice(1), toy.key_slice(1))
    assert sorted(p.relative_to(toy.root) for p in toy.root.rglob("*")) == before


def test_volume_of_a_run(toy: deeplesion.Release) -> None:
    volume = toy.volume(1)
    assert volume.data.shape == (11, 64, 64) and volume.data.dtype == np.int16
    assert volume.slice_numbers.tolist() == list(range(20, 31)) and volume.spacing == (0.8, 0.8, 1.0)
    np.testing.assert_array_equal(volume.data[:, 0, 0], np.arange(20, 31) * 10)
    with pytest.raises(ImageError, match=r"012\.png"):
        toy.volume(0)
    partial = toy.volume(0, missing="skip")
    assert partial.slice_numbers.tolist() == [10, 11, 13, 14]


def test_runs_and_paths(toy: deeplesion.Release) -> None:
    runs = toy.runs("000001_01_01")
    assert [(r.first, r.last, r.spacing[2]) for r in runs] == [(10, 14, 5.0), (20, 30, 1.0)]
    assert toy.folders() == ["000001_01_01", "000002_01_01"]
    assert toy.path_of("000001_01_01_011.png") == toy.root / "Images_png/000001_01_01/011.png"
    with pytest.raises(UsageError, match="not a DeepLesion slice name"):
        toy.path_of("scan.png")


def test_real_series_match_their_slice_range(png16_release: deeplesion.Release) -> None:
    for key in ("000001_01_01_109.png", "000001_02_01_014.png", "000001_03_01_088.png"):
        lesion = png16_release.lesion(key)
        first, last = lesion.slice_range
        assert png16_release.slice_numbers(lesion.folder) == frozenset(range(first, last + 1)), key
        volume = png16_release.volume(key)
        assert volume.data.shape[0] == last - first + 1


def test_stack_values_do_not_depend_on_how_the_slices_are_laid_out_in_memory() -> None:
    """The same pixels give the same stack whether a slice arrives whole and is cropped, or as a cropped
    region that fills its own array (the cache) or is a view into a larger one (with OpenCV's blend, its
    vector and scalar loops covered different pixels in each layout and rounded differently: 1e-5 apart)."""
    from deeplesion.context import build_stack

    rng = np.random.default_rng(3)
    slices = {n: rng.integers(-1024, 2000, size=(512, 512)).astype(np.int16) for n in range(1, 12)}
    box = (52, 105, 469, 420)  # 417 columns: not a multiple of any vector width
    plan = plan_context(9, 2.0, 1.3, "correct")
    available = set(slices)
    gain, offset = 255.0 / 4095.0, 1024.0 * 255.0 / 4095.0

    def whole(n: int) -> np.ndarray:
        return slices[n]

    def region(n: int) -> np.ndarray:
        x0, y0, x1, y1 = box
        return slices[n][y0:y1, x0:x1].copy()

    def view(n: int) -> np.ndarray:
        x0, y0, x1, y1 = box
        return slices[n][y0 - 5 : y1 + 5, x0 - 7 : x1 + 3][5:-5, 7:-3]

    expected = build_stack(6, plan, available, whole, crop_box=box, gain=gain, offset=offset).hu
    for read in (region, view):
        got = build_stack(6, plan, available, read, gain=gain, offset=offset).hu
        assert np.array_equal(got, expected), np.abs(got - expected).max()


def test_stack_values_do_not_depend_on_opencv_threads() -> None:
    """A DataLoader worker runs one OpenCV thread, the main process several: the stack must not change
    (with cv2.addWeighted, each thread's stripe ended in a scalar tail that rounded differently: the same
    batch differed by 3e-6 between ``num_workers=0`` and ``2``)."""
    import cv2

    from deeplesion.context import build_stack

    rng = np.random.default_rng(4)
    slices = {n: rng.integers(-1024, 2000, size=(329, 401)).astype(np.int16) for n in range(1, 12)}
    plan = plan_context(9, 2.0, 1.3, "correct")
    gain, offset = 255.0 / 1500.0, 1100.0 * 255.0 / 1500.0
    before = cv2.getNumThreads()
    try:
        stacks = []
        for threads in (1, 4):
            cv2.setNumThreads(threads)
            stacks.append(build_stack(6, plan, set(slices), slices.__getitem__, gain=gain, offset=offset).hu)
    finally:
        cv2.setNumThreads(before)
    assert np.array_equal(stacks[0], stacks[1]), np.abs(stacks[0] - stacks[1]).max()
