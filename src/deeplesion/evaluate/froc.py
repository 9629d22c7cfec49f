"""The FROC of the official DeepLesion evaluation, vectorised (no per-detection Python loop).

Matching (as 3DCE and MULAN, ``FROC`` in their ``evaluation`` code): detections of all images are pooled
and sorted by score, descending. A detection whose overlap with some not-yet-found lesion of its image
is >= the threshold finds *every* not-yet-found lesion it overlaps that much; one that overlaps only
already-found lesions is neither a hit nor a false positive; one that overlaps no lesion enough is a false
positive. Overlap is the inclusive-pixel IoU (width = x2 - x1 + 1), or with ``iobb`` the intersection over
the detection's own box.

Because a lesion is found by the *first* detection (in sorted order) that overlaps it enough, the
sequential walk reduces to array operations: ``first[g] = min(position of detections covering g)``; a
detection's hit count is the number of lesions whose ``first`` it is; it is a false positive when it
covers nothing.

Reading the curve at a false-positive level (the two reference variants):

``mulan``
    ``scipy.interpolate.interp1d(fp, sens)`` without extrapolation, which SciPy delegates to
    ``numpy.interp``: a level on a flat step takes the *last* point of the step; levels beyond the curve
    get the final sensitivity (MULAN's ``sens_at_FP``).
``3dce``
    ``interp1d(fp, sens, fill_value="extrapolate")``: a level on a flat step takes the *first* point of
    the step; a level beyond the curve is extrapolated on the line through the last point of the
    second-to-last step and the first point of the last step (the reference divides by zero instead when
    the last step has several points).

Defined answers (the references return inf/nan or clamp oddly): no detections -> 0 at every level; no
false positive at all -> the final sensitivity at every level; a level below the first point of the curve
-> linear from (0, 0) to that point.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

Protocol = Literal["mulan", "3dce"]
PROTOCOLS: tuple[str, ...] = ("mulan", "3dce")
DEFAULT_FP_LEVELS: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
HEADLINE_LEVELS: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0)
"""The levels averaged into the headline ``mean_sensitivity_0.5_4`` (MULAN and later papers)."""


def overlaps(
    detections: npt.NDArray[np.float64], lesions: npt.NDArray[np.float64], *, iobb: bool = False
) -> npt.NDArray[np.float64]:
    """Element-wise overlap of paired boxes, inclusive-pixel convention.

    Parameters
    ----------
    detections, lesions
        (P, 4) float64 ``x1, y1, x2, y2`` (pixels), paired row by row.
    iobb
        Intersection over the detection's box instead of intersection over union.

    Returns
    -------
    ndarray
        (P,) float64.
    """
    from deeplesion.boxes import overlap_pairs

    return overlap_pairs(detections, lesions, inclusive=True, over="first" if iobb else "union")


@dataclass(frozen=True)
class Events:
    """What each detection does, in evaluation order (score descending, then the tie rule).

    Attributes
    ----------
    image
        (D,) int64 image index of each detection.
    hits
        (D,) int64 number of lesions the detection finds first.
    false_positive
        (D,) bool.
    lesion_found_by
        (G,) int64 position (in this order) of the detection that finds each lesion, -1 if none.
    """

    image: npt.NDArray[np.int64]
    hits: npt.NDArray[np.int64]
    false_positive: npt.NDArray[np.bool_]
    lesion_found_by: npt.NDArray[np.int64]


def match(
    det_image: npt.NDArray[np.int64],
    det_boxes: npt.NDArray[np.float64],
    gt_image: npt.NDArray[np.int64],
    gt_boxes: npt.NDArray[np.float64],
    num_images: int,
    *,
    threshold: float = 0.5,
    iobb: bool = False,
) -> Events:
    """Match detections (already in evaluation order) to lesions.

    Parameters
    ----------
    det_image, det_boxes
        (D,) image index and (D, 4) boxes of the detections, sorted in evaluation order.
    gt_image, gt_boxes
        (G,) image index and (G, 4) boxes of the lesions.
    num_images
        Number of evaluated images (indices run from 0).
    threshold
        Minimum overlap for a hit.
    """
    d = len(det_image)
    g = len(gt_image)
    order = np.argsort(gt_image, kind="stable")
    gt_sorted_image = gt_image[order]
    counts = np.bincount(gt_sorted_image, minlength=num_images)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    per_det = counts[det_image]
    # every (detection, lesion of its image) pair, as flat arrays
    pair_det = np.repeat(np.arange(d), per_det)
    first_of_det = np.repeat(np.cumsum(per_det) - per_det, per_det)
    pair_gt = order[np.repeat(starts[det_image], per_det) + (np.arange(len(pair_det)) - first_of_det)]
    ok = overlaps(det_boxes[pair_det], gt_boxes[pair_gt], iobb=iobb) >= threshold
    pair_det, pair_gt = pair_det[ok], pair_gt[ok]
    found_by = np.full(g, d, dtype=np.int64)
    np.minimum.at(found_by, pair_gt, pair_det)
    hits = np.bincount(found_by[found_by < d], minlength=d).astype(np.int64)
    covers = np.bincount(pair_det, minlength=d) > 0
    found_by[found_by == d] = -1
    return Events(det_image, hits, ~covers, found_by)


@dataclass(frozen=True)
class Curve:
    """The FROC curve: one point per detection.

    Attributes
    ----------
    fp_per_image
        (D,) float64, non-decreasing.
    sensitivity
        (D,) float64.
    num_images, num_lesions
        The denominators.
    """

    fp_per_image: npt.NDArray[np.float64]
    sensitivity: npt.NDArray[np.float64]
    num_images: int
    num_lesions: int

    @property
    def max_fp_per_image(self) -> float:
        """False positives per image after the last detection (0 without detections)."""
        return float(self.fp_per_image[-1]) if len(self.fp_per_image) else 0.0

    @property
    def final_sensitivity(self) -> float:
        """Sensitivity after the last detection."""
        return float(self.sensitivity[-1]) if len(self.sensitivity) else 0.0


def curve_from_events(
    hits: npt.NDArray[np.int64], false_positive: npt.NDArray[np.bool_], num_images: int, num_lesions: int
) -> Curve:
    """Cumulate events into the curve, as the references do (``tps / nGt``, ``fps / nImg``)."""
    tps = np.cumsum(hits)
    fps = np.cumsum(false_positive)
    sens = tps.astype(np.float64) / num_lesions if num_lesions else np.zeros(len(tps))
    fp = fps.astype(np.float64) / num_images if num_images else np.zeros(len(fps))
    return Curve(fp, sens, num_images, num_lesions)


@dataclass
class LevelReading:
    """Sensitivities at the requested levels, and which levels needed a defined answer."""

    sensitivity: dict[float, float]
    extrapolated: list[float] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def read_levels(curve: Curve, levels: tuple[float, ...], protocol: Protocol) -> LevelReading:
    """Sensitivity at each false-positive level, by the rules of ``protocol`` (see the module docstring)."""
    fp, sens = curve.fp_per_image, curve.sensitivity
    result = LevelReading({})
    if len(fp) == 0:
        result.notes.append("no predictions on the evaluated images: sensitivity 0 at every level")
        result.sensitivity = dict.fromkeys(levels, 0.0)
        return result
    if fp[-1] == 0:
        result.notes.append("no false positive at all: every level gets the final sensitivity")
        result.sensitivity = dict.fromkeys(levels, float(sens[-1]))
        return result
    below: list[float] = []
    for level in levels:
        if level < fp[0]:
            below.append(level)
            result.sensitivity[level] = float(sens[0] * level / fp[0])  # from (0, 0)
        elif protocol == "mulan":
            result.sensitivity[level] = _mulan(fp, sens, level)
        else:
            value, extrapolated = _three_dce(fp, sens, level)
            result.sensitivity[level] = value
            if extrapolated:
                result.extrapolated.append(level)
    if below:
        shown = ", ".join(format(v, "g") for v in below)
        result.notes.append(f"level(s) {shown} below the first curve point: interpolated from (0, 0)")
    return result


def _interpolate(x_lo: float, y_lo: float, x_hi: float, y_hi: float, x: float) -> float:
    # the expression of numpy.interp and scipy's _call_linear, so results agree to the last bits
    slope = (y_hi - y_lo) / (x_hi - x_lo)
    return float(slope * (x - x_lo) + y_lo)


def _mulan(fp: npt.NDArray[np.float64], sens: npt.NDArray[np.float64], level: float) -> float:
    if level >= fp[-1]:
        return float(sens[-1])
    j = int(np.searchsorted(fp, level, side="right")) - 1  # last point with fp <= level
    if fp[j] == level:
        return float(sens[j])
    return _interpolate(fp[j], sens[j], fp[j + 1], sens[j + 1], level)


def _three_dce(
    fp: npt.NDArray[np.float64], sens: npt.NDArray[np.float64], level: float
) -> tuple[float, bool]:
    i = int(np.searchsorted(fp, level, side="left"))  # first point with fp >= level
    if i < len(fp):
        if fp[i] == level:
            return float(sens[i]), False
        return _interpolate(fp[i - 1], sens[i - 1], fp[i], sens[i], level), False
    last_step = int(np.searchsorted(fp, fp[-1], side="left"))
    if last_step == 0:
        x_lo, y_lo = 0.0, 0.0
    else:
        x_lo, y_lo = float(fp[last_step - 1]), float(sens[last_step - 1])
    return _interpolate(x_lo, y_lo, float(fp[last_step]), float(sens[last_step]), level), True
