"""What the detector trains and validates on: preprocessed stacks, lesion-centred crops, whole slices.

Training stacks are prepared once per run (in worker processes) and held in memory as float16: the
reference preprocessing (body crop, the config's window to 0-255, 0.8 mm/px, long side at most 512 px) of
each training key slice's stack and, with ``key_shift_fraction``, of the stacks centred one slice above
and below it where every lesion of the slice still reaches that far (MULAN's key-slice shift within the
lesion's extent; the key slice's boxes are used there). Each training step then draws, per image, a crop
of ``train_crop`` px: with probability ``positive_fraction`` around a random lesion (at a random place in
the crop), else anywhere in the body, after a random scale. Whole slices are used when ``train_crop`` is
0 (the paper preset) and always for validation and prediction.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from deeplesion import boxes as box_convention
from deeplesion.catalog import Lesion
from deeplesion.errors import ImageError
from deeplesion.transforms import Pipeline


@dataclass
class Stack:
    """One preprocessed stack.

    Attributes
    ----------
    image
        (S, H, W) float16, the ``model`` window mapped to 0-255, 0.8 mm/px.
    boxes
        (K, 4) float32 torchvision boxes (continuous ``x1, y1, x2, y2``) in the image's pixels.
    file_name
        The key slice the boxes belong to.
    shift
        Slices between the stack's centre and the key slice.
    """

    image: npt.NDArray[np.float16]
    boxes: npt.NDArray[np.float32]
    file_name: str
    shift: int = 0


@functools.lru_cache(maxsize=4)
def _open(root: str):  # type: ignore[no-untyped-def]
    from deeplesion.release import open_release

    return open_release(root)


def prepare_stack(
    root: str, file_name: str, shift: int, slices: int, interval_mm: float, preprocessing: Pipeline
) -> Stack | str:
    """The preprocessed stack of a key slice, centred ``shift`` slices away (a worker's task), or the
    message of the :class:`~deeplesion.errors.ImageError` that spoils it (a broken slice skips one stack,
    not the run)."""
    release = _open(root)
    lesion = release.catalog.lesions_on(file_name)[0]
    centred = dataclasses.replace(lesion, key_slice=lesion.key_slice + shift) if shift else lesion
    try:
        sample = release.sample(centred, slices=slices, interval_mm=interval_mm, pipeline=preprocessing)
    except ImageError as exc:
        return str(exc)
    height, width = sample.image.shape[1:]
    network = box_convention.clip_torchvision(box_convention.to_torchvision(sample.boxes), width, height)
    return Stack(sample.image.astype(np.float16), network.astype(np.float32), file_name, shift)


def stack_tasks(
    groups: dict[str, list[Lesion]], key_shift_fraction: float, available: Callable[[str, int], bool]
) -> list[tuple[str, int]]:
    """(file_name, shift) of every stack to prepare: the key slices, and the shifted ones that qualify.

    A shift of one slice qualifies when ``interval * 1 <= key_shift_fraction * short diameter`` for every
    lesion of the slice, the slice lies inside the run, and ``available(folder, number)`` says it is on disk.
    """
    tasks = []
    for file_name, lesions in groups.items():
        tasks.append((file_name, 0))
        if key_shift_fraction <= 0:
            continue
        first = lesions[0]
        interval = first.spacing[2]
        reach = min(x.short_diameter_mm for x in lesions) * key_shift_fraction
        if not interval > 0 or interval > reach:
            continue
        for shift in (-1, 1):
            number = first.key_slice + shift
            if first.slice_range[0] <= number <= first.slice_range[1] and available(first.folder, number):
                tasks.append((file_name, shift))
    return tasks


def random_crop(
    stack: Stack, size: int, positive: bool, scale: float, rng: np.random.Generator, fill: float = 0.0
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """A ``size`` x ``size`` crop of ``stack`` after resizing by ``scale``.

    Positive crops hold one lesion chosen at random, placed at a random position inside the crop (a
    lesion larger than 85% of the crop is scaled down to that first); the others are placed anywhere.
    Boxes are clipped to the crop and kept when at least half of their area remains.

    Returns
    -------
    image, boxes
        (S, size, size) float32 and (K, 4) float32 torchvision boxes in the crop's pixels.
    """
    image = stack.image.astype(np.float32)
    boxes = stack.boxes.astype(np.float64)
    chosen = int(rng.integers(len(boxes))) if positive and len(boxes) else None
    if chosen is not None:  # a lesion larger than the crop is scaled down until it fits (with a margin)
        x1, y1, x2, y2 = boxes[chosen]
        scale = min(scale, 0.85 * size / max(x2 - x1, y2 - y1, 1.0))
    if abs(scale - 1.0) > 1e-3:
        channels = [cv2.resize(c, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR) for c in image]
        image = np.stack(channels)
        boxes = boxes * scale
    _, height, width = image.shape
    if chosen is not None:
        x1, y1, x2, y2 = boxes[chosen]
        low_x, high_x = x2 - size, x1  # crop origins that keep the box inside
        low_y, high_y = y2 - size, y1
        x0 = rng.uniform(min(low_x, high_x), max(low_x, high_x))
        y0 = rng.uniform(min(low_y, high_y), max(low_y, high_y))
    else:
        x0 = rng.uniform(0, max(width - size, 0))
        y0 = rng.uniform(0, max(height - size, 0))
    x0 = int(np.clip(round(x0), 0, max(width - size, 0)))
    y0 = int(np.clip(round(y0), 0, max(height - size, 0)))
    crop = np.full((image.shape[0], size, size), fill, dtype=np.float32)
    piece = image[:, y0 : y0 + size, x0 : x0 + size]
    crop[:, : piece.shape[1], : piece.shape[2]] = piece
    moved = boxes - np.array([x0, y0, x0, y0], dtype=np.float64)
    clipped = box_convention.clip_torchvision(moved, size, size)
    area = (moved[:, 2] - moved[:, 0]) * (moved[:, 3] - moved[:, 1])
    kept = (clipped[:, 2] - clipped[:, 0]) * (clipped[:, 3] - clipped[:, 1]) >= 0.5 * np.maximum(area, 1e-6)
    return crop, clipped[kept].astype(np.float32)


def training_batch(
    stacks: Sequence[Stack],
    indices: Sequence[int],
    *,
    crop: int,
    positive_fraction: float,
    scale_range: Sequence[float],
    rng: np.random.Generator,
) -> tuple[list[npt.NDArray[np.float32]], list[npt.NDArray[np.float32]]]:
    """Images and boxes of one training step (crops, or whole stacks when ``crop`` is 0)."""
    images, targets = [], []
    for i in indices:
        stack = stacks[i]
        scale = float(rng.uniform(scale_range[0], scale_range[1]))
        if crop:
            image, boxes = random_crop(stack, crop, rng.random() < positive_fraction, scale, rng)
        else:
            image, boxes = _whole(stack, scale)
        images.append(image)
        targets.append(boxes)
    return images, targets


def _whole(stack: Stack, scale: float) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    image = stack.image.astype(np.float32)
    if abs(scale - 1.0) <= 1e-3:
        return image, stack.boxes
    resized = np.stack(
        [cv2.resize(c, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR) for c in image]
    )
    return resized, (stack.boxes * scale).astype(np.float32)


def steps_per_epoch(count: int, batch: int, configured: int) -> int:
    """Configured steps, or one pass over ``count`` stacks."""
    return configured if configured > 0 else max(math.ceil(count / batch), 1)
