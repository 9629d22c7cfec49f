"""Preprocessing steps: the fused reference path equals the step-by-step one, augmentations are seeded,
and every box maps back to its original pixels."""

from __future__ import annotations

import numpy as np
import pytest

import deeplesion
from deeplesion.evaluate import evaluate
from deeplesion.evaluate.predictions import Predictions
from deeplesion.transforms import (
    MULAN_TRAIN,
    REFERENCE,
    BodyCrop,
    HorizontalFlip,
    IntensityJitter,
    Pipeline,
    RandomShift,
    Record,
    Window,
)

KEY = "000001_03_01_088.png"  # a real 1 mm series


def _full_record(release: deeplesion.Release, file_name: str, mode: str = "correct") -> Record:
    lesion = release.lesion(file_name)
    stack = release.context(lesion, slices=9, interval_mm=2.0, mode=mode)  # type: ignore[arg-type]
    return Record(
        stack.hu,
        lesion.spacing[0],
        rule="reference" if mode == "reference" else "centres",
        key_hu=release.key_slice(lesion),
    )


@pytest.mark.parametrize("mode", ["correct", "reference"])
def test_fused_sample_equals_the_steps_one_by_one(png16_release: deeplesion.Release, mode: str) -> None:
    fused = png16_release.sample(KEY, mode=mode)  # type: ignore[arg-type]
    stepwise = REFERENCE(_full_record(png16_release, KEY, mode), np.random.default_rng(0))
    assert fused.image.shape == stepwise.image.shape
    assert np.abs(fused.image - stepwise.image).max() <= 1e-3  # of 255: float32 rounding of the fusion
    assert fused.transform == stepwise.transform


def test_augmentations_are_seeded_and_boxes_map_back(png16_release: deeplesion.Release) -> None:
    first = png16_release.sample(KEY, pipeline=MULAN_TRAIN, seed=3)
    again = png16_release.sample(KEY, pipeline=MULAN_TRAIN, seed=3)
    other = png16_release.sample(KEY, pipeline=MULAN_TRAIN, seed=4)
    np.testing.assert_array_equal(first.image, again.image)
    assert first.transform == again.transform and first.transform != other.transform
    lesion = png16_release.lesion(KEY)
    back = first.transform.inverse().boxes(first.boxes)
    np.testing.assert_allclose(back[0], lesion.box, atol=1e-4)


def test_round_trip_through_augmented_samples_scores_perfectly(png16_release: deeplesion.Release) -> None:
    # every real key slice with context: sample with augmentations, map the boxes back, evaluate them
    catalog = png16_release.catalog.filter(noisy=False)
    names, boxes = [], []
    for i, file_name in enumerate(sorted(set(catalog.file_name.tolist()))):
        sample = png16_release.sample(file_name, pipeline=MULAN_TRAIN, seed=i, slices=3)
        original = sample.transform.inverse().boxes(sample.boxes)
        for lesion, box in zip(sample.lesions, original, strict=True):
            np.testing.assert_allclose(box, lesion.box, atol=1e-4)
            names.append(lesion.file_name)
            boxes.append(box)
    scores = np.linspace(1.0, 0.5, len(names))
    predictions = Predictions(
        np.array(names, dtype=str), np.array(boxes), scores, np.arange(len(names)) + 2, "round trip"
    )
    for split in sorted({x.split.label for x in catalog}):
        on_split = np.isin(predictions.file_name, catalog.filter(split=split).file_name.astype(str))
        result = evaluate(catalog, predictions.take(on_split), split=split).result
        assert result["max_fp_per_image"] == 0.0
        assert set(result["sensitivity"].values()) == {1.0}


def test_shift_flip_and_jitter_keep_boxes_on_their_pixels() -> None:
    image = np.zeros((1, 50, 60), dtype=np.float32)
    image[0, 10:21, 30:41] = 100.0  # columns 30..40, rows 10..20
    box = np.array([[30.0, 10.0, 40.0, 20.0]])
    record = Record(image, 0.8, key_hu=image[0])
    steps = Pipeline("t", (RandomShift(6), HorizontalFlip(p=1.0), IntensityJitter(0.1, 3.0)))
    for seed in range(20):
        out = steps(record, np.random.default_rng(seed))
        rows, cols = np.nonzero(out.image[0] > 50)
        np.testing.assert_allclose(out.boxes_of(box)[0], [cols.min(), rows.min(), cols.max(), rows.max()])
        np.testing.assert_allclose(out.to_original(out.boxes_of(box)), box)
    assert not Pipeline("p", (BodyCrop(), Window())).random and MULAN_TRAIN.random
    with pytest.raises(ValueError, match="key slice"):
        BodyCrop()(Record(image, 0.8), np.random.default_rng(0))
