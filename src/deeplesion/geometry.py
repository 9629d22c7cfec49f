"""Image geometry like the reference pipeline, as separate steps that also move boxes and points.

Each step returns the new image and a :class:`Transform` that maps 0-based pixel coordinates (x, y) of
the input to the output, and back with :meth:`Transform.inverse`. Steps compose with ``@``.

Steps (the reference order: crop, then spacing normalisation):

1. :func:`body_crop_box` + :func:`crop`: the black-border crop of 3DCE/MULAN (raw value > 32000, i.e.
   HU > -768, a 7x7 binary opening, the mask's bounding box; the whole image when the mask is empty).
2. :func:`spacing_scale` + :func:`resize`: scale so that pixels become ``target_mm`` (reference 0.8 mm),
   reduced so that the long side is at most ``max_size`` (512), linear interpolation.

Resizing is by the factor itself, as the reference does (``cv2.resize(im, None, None, fx=s, fy=s)``):
OpenCV then samples the input at exactly ``1 / s`` per output pixel and rounds only the output size.
(Resizing to a rounded target size instead makes OpenCV map by ``new_w / w``, which drifts from ``s`` by up
to half a pixel at the far edge: 114 of 255 grey levels on a real slice.)

Coordinates under a resize by ``s``, the two rules (:data:`BoxRule`), recorded on the :class:`Transform`:

``"centres"`` (correct mode)
    Pixel centres move as OpenCV moves them: ``x' = (x + 0.5) * s - 0.5``, exact for the resized pixels.
``"reference"`` (reference mode)
    The reference code multiplies coordinates by ``s``: ``x' = s * x``. The two differ by
    ``0.5 * (s - 1)`` px (0.1 px at s = 1.2).

A crop shifts by its offset under both rules, so a reference-mode sample maps a box as
``x' = s * (x - x0)`` and a correct-mode one as ``x' = (x - x0 + 0.5) * s - 0.5``; either inverts exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

REFERENCE_BODY_THRESHOLD_HU = -768.0  # raw 32000 - 32768
REFERENCE_OPENING_PX = 7
REFERENCE_SPACING_MM = 0.8
REFERENCE_MAX_SIZE = 512

BoxRule = Literal["centres", "reference"]
"""How coordinates follow a resize: pixel centres (correct) or multiplied by the factor (reference)."""


@dataclass(frozen=True)
class Transform:
    """``x' = x * scale_x + shift_x``, ``y' = y * scale_y + shift_y`` on 0-based pixel coordinates.

    ``rule`` records how a resize inside it moved coordinates (``None`` until a resize is composed in:
    crops and shifts are the same under both rules).
    """

    scale_x: float = 1.0
    scale_y: float = 1.0
    shift_x: float = 0.0
    shift_y: float = 0.0
    rule: BoxRule | None = None

    def __matmul__(self, first: Transform) -> Transform:
        """``self @ first``: apply ``first``, then ``self``.

        Raises
        ------
        ValueError
            The two were made under different box rules (a mix has no meaning).
        """
        if self.rule and first.rule and self.rule != first.rule:
            raise ValueError(f"cannot compose a {self.rule!r} transform with a {first.rule!r} one")
        return Transform(
            self.scale_x * first.scale_x,
            self.scale_y * first.scale_y,
            self.scale_x * first.shift_x + self.shift_x,
            self.scale_y * first.shift_y + self.shift_y,
            self.rule or first.rule,
        )

    def inverse(self) -> Transform:
        """The transform that undoes this one."""
        return Transform(
            1 / self.scale_x,
            1 / self.scale_y,
            -self.shift_x / self.scale_x,
            -self.shift_y / self.scale_y,
            self.rule,
        )

    def points(self, xy: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """(..., 2) points (x, y) -> transformed (..., 2) float64."""
        p = np.asarray(xy, dtype=np.float64)
        return p * (self.scale_x, self.scale_y) + (self.shift_x, self.shift_y)

    def boxes(self, xyxy: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """(..., 4) boxes ``x1, y1, x2, y2`` -> transformed (..., 4) float64 (never clipped): the two
        corners move as points, then are re-ordered so that ``x1 <= x2`` (a flip swaps them)."""
        b = np.asarray(xyxy, dtype=np.float64)
        scale = (self.scale_x, self.scale_y, self.scale_x, self.scale_y)
        moved = b * scale + (self.shift_x, self.shift_y, self.shift_x, self.shift_y)
        if self.scale_x < 0:
            moved[..., [0, 2]] = moved[..., [2, 0]]
        if self.scale_y < 0:
            moved[..., [1, 3]] = moved[..., [3, 1]]
        return np.asarray(moved, dtype=np.float64)


def body_crop_box(
    hu: npt.NDArray[np.integer] | npt.NDArray[np.floating],
    *,
    threshold_hu: float = REFERENCE_BODY_THRESHOLD_HU,
    opening_px: int = REFERENCE_OPENING_PX,
) -> tuple[int, int, int, int]:
    """The reference black-border crop: bounding box of the opened ``hu > threshold`` mask.

    Parameters
    ----------
    hu
        (H, W) key slice in HU.

    Returns
    -------
    tuple
        ``(x0, y0, x1, y1)`` with exclusive ends, in pixels; the whole image when the mask is empty.
    """
    import cv2

    mask = (np.asarray(hu) > threshold_hu).astype(np.uint8)
    kernel = np.ones((opening_px, opening_px), dtype=np.uint8)
    # scipy's binary_opening (the reference) treats pixels beyond the border as background
    eroded = cv2.erode(mask, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0)
    opened = cv2.dilate(eroded, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0)
    rows = np.flatnonzero(opened.any(axis=1))
    cols = np.flatnonzero(opened.any(axis=0))
    if rows.size == 0:
        return 0, 0, mask.shape[1], mask.shape[0]
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def crop(
    image: npt.NDArray[np.generic], box: tuple[int, int, int, int]
) -> tuple[npt.NDArray[np.generic], Transform]:
    """Crop the last two axes of ``image`` (..., H, W) to ``box`` = ``(x0, y0, x1, y1)`` (a view)."""
    x0, y0, x1, y1 = box
    return image[..., y0:y1, x0:x1], crop_transform(box)


def crop_transform(box: tuple[int, int, int, int]) -> Transform:
    """The transform of :func:`crop` to ``box`` = ``(x0, y0, x1, y1)``, without an image."""
    return Transform(shift_x=-box[0], shift_y=-box[1])


def flip_horizontal(image: npt.NDArray[Any]) -> tuple[npt.NDArray[Any], Transform]:
    """Mirror the last axis of ``image`` (..., H, W): left and right swap, ``x' = W - 1 - x``.

    An anatomy-changing augmentation: the patient's left becomes the right (the liver appears on the
    wrong side), so use it only where that does not matter to the model.
    """
    width = image.shape[-1]
    return image[..., ::-1], Transform(scale_x=-1.0, shift_x=width - 1.0)


def spacing_scale(
    spacing_mm: float,
    shape: tuple[int, int],
    *,
    target_mm: float = REFERENCE_SPACING_MM,
    max_size: int = REFERENCE_MAX_SIZE,
) -> float:
    """Resize factor that makes pixels ``target_mm`` wide, reduced so the long side is <= ``max_size``.

    Parameters
    ----------
    spacing_mm
        In-plane pixel spacing of the image, mm.
    shape
        (H, W) of the image about to be resized (after any crop).
    """
    scale = spacing_mm / target_mm
    longest = max(shape) * scale
    if longest > max_size:
        scale *= max_size / longest
    return scale


def resize(
    image: npt.NDArray[Any], scale: float, *, channels_last: bool = False, rule: BoxRule = "centres"
) -> tuple[npt.NDArray[Any], Transform]:
    """Resize by the factor ``scale`` with linear interpolation, as the reference does.

    ``cv2.resize(image, None, fx=scale, fy=scale)``: the output size is the input size times ``scale``,
    rounded, and OpenCV samples the input at exactly ``1 / scale`` per output pixel.

    Parameters
    ----------
    image
        (H, W), (C, H, W), or (H, W, C) with ``channels_last``; float32 or float64.
    scale
        Factor for both axes (> 0).
    rule
        How the returned transform moves coordinates (see the module docstring). ``reference`` also
        resizes a (C, H, W) stack as the reference does, in one call on channels-last data (its pixels
        equal the reference's; plane by plane they differ by up to 0.006 of 255).

    Returns
    -------
    (image, transform)
        The resized image in the same layout and dtype (with ``reference``, a planar result is a view of
        channels-last memory: call ``np.ascontiguousarray`` where C order matters), and the transform
        (scale exactly ``scale``).
    """
    import cv2

    if not scale > 0:
        raise ValueError(f"resize factor must be positive, got {scale}")
    shift = 0.5 * scale - 0.5 if rule == "centres" else 0.0
    transform = Transform(scale, scale, shift, shift, rule)
    if scale == 1.0:
        return image, transform
    planar = image.ndim == 3 and not channels_last
    if planar and rule == "centres":
        # plane by plane into one (C, H', W') array: no interleaving, no copies
        first = cv2.resize(image[0], None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
        out = np.empty((image.shape[0], *first.shape), dtype=first.dtype)
        out[0] = first
        for channel in range(1, image.shape[0]):
            cv2.resize(
                image[channel], None, dst=out[channel], fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR
            )
        return out, transform
    # The reference rule reproduces the reference's arithmetic too: one call on the channels-last stack,
    # as it resizes its (H, W, C) array. OpenCV's path for more than 4 channels rounds its weights
    # differently from its 1-4 channel path (up to 0.006 of 255 apart), so plane by plane would not equal
    # the reference. (cv2.merge interleaves the planes about twice as fast as a transposed numpy copy.)
    source = cv2.merge(list(image)) if planar else np.ascontiguousarray(image)
    out = cv2.resize(source, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
    if out.ndim == 2 and image.ndim == 3:  # OpenCV drops a single channel axis
        out = out[..., None]
    if planar:  # a (C, H', W') view of the channels-last result: copying it back would cost 2 ms a sample
        out = np.moveaxis(out, -1, 0)
    return out, transform
