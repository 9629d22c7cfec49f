"""Model-ready preprocessing as small composable steps over one sample (numpy only).

A :class:`Record` carries the image (a (C, H, W) stack), its in-plane pixel size and the accumulated
:class:`~deeplesion.geometry.Transform` from the key slice's original pixels to the current ones. Steps
change the image and compose their own transform into the record's; boxes and RECIST points are never
moved step by step: they are mapped once, at the end, from the catalog's frame with the whole transform
(:meth:`Record.boxes_of`), and a prediction maps back with its inverse (:meth:`Record.to_original`). How
boxes move is the rule of :mod:`deeplesion.boxes`.

The reference preprocessing of 3DCE/MULAN/LesaNet is the pipeline :data:`REFERENCE`: body crop,
``model`` window, resize to 0.8 mm with the long side at most 512 px. :data:`MULAN_TRAIN` adds MULAN's
training augmentations (random scale 0.8-1.2, a random shift of up to 8 px). :class:`HorizontalFlip`
exists for users who want it but is in no preset: it swaps the patient's left and right.

Random steps draw from the ``numpy.random.Generator`` passed to :meth:`Pipeline.__call__`, so a seed
fixes the whole sample.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np
import numpy.typing as npt

from deeplesion.geometry import (
    REFERENCE_BODY_THRESHOLD_HU,
    REFERENCE_MAX_SIZE,
    REFERENCE_OPENING_PX,
    REFERENCE_SPACING_MM,
    BoxRule,
    Transform,
    body_crop_box,
    crop,
    flip_horizontal,
    resize,
    spacing_scale,
)
from deeplesion.windowing import resolve_window


@dataclass
class Record:
    """One sample on its way to the model.

    Attributes
    ----------
    image
        (C, H, W) float32: HU until a :class:`Window` step, then window units.
    spacing_mm
        In-plane size of the current pixels, mm.
    transform
        Key-slice pixels (0-based, catalog frame) -> current pixels.
    rule
        How resizes move coordinates (``centres``, or ``reference`` as the authors' code).
    key_hu
        (H0, W0) the original key slice in HU, for steps that look at it (the body crop).
    windowed
        Whether a window has been applied (``image`` is no longer HU).
    """

    image: npt.NDArray[np.float32]
    spacing_mm: float
    transform: Transform = field(default_factory=Transform)
    rule: BoxRule = "centres"
    key_hu: npt.NDArray[Any] | None = None
    windowed: bool = False

    def boxes_of(self, boxes: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """(K, 4) catalog boxes of the key slice -> (K, 4) boxes in the current image (not clipped)."""
        return self.transform.boxes(np.asarray(boxes, dtype=np.float64).reshape(-1, 4))

    def points_of(self, points: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """(..., 2) key-slice points (RECIST endpoints) -> current image pixels."""
        return self.transform.points(points)

    def to_original(self, boxes: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """(K, 4) boxes in the current image -> the key slice's catalog frame (what ``evaluate`` reads)."""
        return self.transform.inverse().boxes(np.asarray(boxes, dtype=np.float64).reshape(-1, 4))


class Step(Protocol):
    """A preprocessing step: a new record from a record (random steps draw from ``rng``)."""

    def __call__(self, record: Record, rng: np.random.Generator) -> Record: ...


def _moved(
    record: Record, image: npt.NDArray[Any], step: Transform, spacing_mm: float | None = None
) -> Record:
    return dataclasses.replace(
        record,
        image=np.asarray(image, dtype=np.float32),
        transform=step @ record.transform,
        spacing_mm=record.spacing_mm if spacing_mm is None else spacing_mm,
    )


@dataclass(frozen=True)
class BodyCrop:
    """The reference black-border crop: the bounding box of the opened ``key slice > threshold`` mask."""

    threshold_hu: float = REFERENCE_BODY_THRESHOLD_HU
    opening_px: int = REFERENCE_OPENING_PX

    def box(self, key_hu: npt.NDArray[Any]) -> tuple[int, int, int, int]:
        """``(x0, y0, x1, y1)`` of the crop, exclusive ends."""
        return body_crop_box(key_hu, threshold_hu=self.threshold_hu, opening_px=self.opening_px)

    def __call__(self, record: Record, rng: np.random.Generator) -> Record:
        if record.key_hu is None:
            raise ValueError("BodyCrop needs the record's key slice (key_hu)")
        image, step = crop(record.image, self.box(record.key_hu))
        return _moved(record, np.ascontiguousarray(image), step)


@dataclass(frozen=True)
class Window:
    """HU -> ``[0, 1]`` (``unit``) or ``[0, 255]`` (``float255``), linear between ``low`` and ``high``,
    clipped outside; ``window`` is a preset name or ``(low, high)``."""

    window: str | tuple[float, float] = "model"
    scale: Literal["unit", "float255"] = "float255"

    def gain_offset(self) -> tuple[float, float, float]:
        """``(gain, offset, top)``: ``image * gain + offset``, then clipped to ``[0, top]``."""
        low, high = resolve_window(self.window)
        top = 1.0 if self.scale == "unit" else 255.0
        gain = top / (high - low)
        return gain, -low * gain, top

    def __call__(self, record: Record, rng: np.random.Generator) -> Record:
        if record.windowed:
            raise ValueError("the image is already windowed")
        gain, offset, top = self.gain_offset()
        image = np.clip(record.image * np.float32(gain) + np.float32(offset), 0.0, top)
        return dataclasses.replace(record, image=image.astype(np.float32, copy=False), windowed=True)


@dataclass(frozen=True)
class MultiWindow:
    """Several windows stacked as channels (MVP-Net's multi-window input): a (C, H, W) HU stack becomes
    (len(windows) * C, H, W), window by window (all slices in the first window, then the next)."""

    windows: tuple[str | tuple[float, float], ...] = ("soft_tissue", "lung", "bone")
    scale: Literal["unit", "float255"] = "float255"

    def __call__(self, record: Record, rng: np.random.Generator) -> Record:
        if record.windowed:
            raise ValueError("the image is already windowed")
        planes = [Window(w, self.scale)(record, rng).image for w in self.windows]
        return dataclasses.replace(record, image=np.concatenate(planes, axis=0), windowed=True)


@dataclass(frozen=True)
class Resize:
    """Resize so that pixels become ``target_mm`` wide, the long side at most ``max_size`` (the reference's
    spacing normalisation), by the factor itself as ``cv2.resize(im, None, fx=s, fy=s)``."""

    target_mm: float = REFERENCE_SPACING_MM
    max_size: int = REFERENCE_MAX_SIZE

    def __call__(self, record: Record, rng: np.random.Generator) -> Record:
        shape = (int(record.image.shape[1]), int(record.image.shape[2]))
        factor = spacing_scale(record.spacing_mm, shape, target_mm=self.target_mm, max_size=self.max_size)
        image, step = resize(record.image, factor, rule=record.rule)
        return _moved(record, image, step, record.spacing_mm / factor)


@dataclass(frozen=True)
class RandomScale:
    """Resize by a factor drawn uniformly from ``[low, high]`` (MULAN: 0.8-1.2)."""

    low: float = 0.8
    high: float = 1.2

    def __call__(self, record: Record, rng: np.random.Generator) -> Record:
        factor = float(rng.uniform(self.low, self.high))
        image, step = resize(record.image, factor, rule=record.rule)
        return _moved(record, image, step, record.spacing_mm / factor)


@dataclass(frozen=True)
class RandomShift:
    """Move the image content by whole pixels drawn from ``[-max_px, max_px]`` in x and y, filling with
    ``fill`` (MULAN's random crop offset of -8..7 px); the size stays the same."""

    max_px: int = 8
    fill: float = 0.0

    def __call__(self, record: Record, rng: np.random.Generator) -> Record:
        dx, dy = (int(v) for v in rng.integers(-self.max_px, self.max_px + 1, size=2))
        image = np.full_like(record.image, self.fill)
        height, width = record.image.shape[1:]
        source = record.image[:, max(-dy, 0) : height - max(dy, 0), max(-dx, 0) : width - max(dx, 0)]
        image[:, max(dy, 0) : max(dy, 0) + source.shape[1], max(dx, 0) : max(dx, 0) + source.shape[2]] = (
            source
        )
        return _moved(record, image, Transform(shift_x=float(dx), shift_y=float(dy)))


@dataclass(frozen=True)
class IntensityJitter:
    """``image * (1 + a) + b`` with ``a`` from ``[-contrast, contrast]`` and ``b`` from
    ``[-brightness, brightness]`` (image units: 0-255 after the ``model`` window)."""

    contrast: float = 0.05
    brightness: float = 5.0

    def __call__(self, record: Record, rng: np.random.Generator) -> Record:
        a = float(rng.uniform(-self.contrast, self.contrast))
        b = float(rng.uniform(-self.brightness, self.brightness))
        image = record.image * np.float32(1.0 + a) + np.float32(b)
        return dataclasses.replace(record, image=image.astype(np.float32, copy=False))


@dataclass(frozen=True)
class HorizontalFlip:
    """Mirror left and right with probability ``p``. Anatomy-changing: the patient's left becomes the
    right (the liver on the wrong side), so it is in no preset."""

    p: float = 0.5

    def __call__(self, record: Record, rng: np.random.Generator) -> Record:
        if rng.random() >= self.p:
            return record
        image, step = flip_horizontal(record.image)
        return _moved(record, np.ascontiguousarray(image), step)


@dataclass(frozen=True)
class Pipeline:
    """Named, ordered steps; ``pipeline(record, rng)`` runs them."""

    name: str
    steps: tuple[Step, ...]

    def __call__(self, record: Record, rng: np.random.Generator | None = None) -> Record:
        generator = rng if rng is not None else np.random.default_rng()
        for step in self.steps:
            record = step(record, generator)
        return record

    def then(self, *steps: Step, name: str | None = None) -> Pipeline:
        """This pipeline followed by ``steps``."""
        return Pipeline(name or f"{self.name}+", (*self.steps, *steps))

    @property
    def random(self) -> bool:
        """Whether any step draws random numbers."""
        return any(
            isinstance(s, RandomScale | RandomShift | IntensityJitter | HorizontalFlip) for s in self.steps
        )


def pipeline(
    *,
    crop_body: bool = True,
    window: str | tuple[float, float] = "model",
    scale: Literal["unit", "float255"] = "float255",
    target_mm: float | None = REFERENCE_SPACING_MM,
    max_size: int = REFERENCE_MAX_SIZE,
    name: str = "custom",
) -> Pipeline:
    """A reference-shaped pipeline with other parameters (what :meth:`Release.sample`'s keywords build)."""
    steps: list[Step] = [BodyCrop()] if crop_body else []
    steps.append(Window(window, scale))
    if target_mm is not None:
        steps.append(Resize(target_mm, max_size))
    return Pipeline(name, tuple(steps))


REFERENCE = pipeline(name="reference")
"""3DCE/MULAN/LesaNet's preprocessing: body crop, ``model`` window to 0-255, 0.8 mm, at most 512 px."""

MULAN_TRAIN = REFERENCE.then(RandomScale(0.8, 1.2), RandomShift(8), name="mulan-train")
"""MULAN's training preprocessing: :data:`REFERENCE`, then a random scale 0.8-1.2 and shift of 8 px."""


def split_fusable(steps: Sequence[Step]) -> tuple[BodyCrop | None, Window | None, tuple[Step, ...]]:
    """The leading ``BodyCrop`` and ``Window`` steps that a loader may fuse into building the stack (crop
    before blending, window inside the blend), and the steps left to run on the array."""
    rest = list(steps)
    body = rest[0] if rest and isinstance(rest[0], BodyCrop) else None
    if body is not None:
        rest.pop(0)
    window = rest[0] if rest and isinstance(rest[0], Window) else None
    if window is not None:
        rest.pop(0)
    return body, window, tuple(rest)
