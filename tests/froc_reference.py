"""Slow, independent implementations of the two reference evaluations, written for the tests.

They follow the published algorithm detection by detection (a Python loop, as 3DCE and MULAN do) and read
the curve with ``scipy.interpolate.interp1d`` called the way each reference calls it.
"""

from __future__ import annotations

import numpy as np
from scipy import interpolate


def iou(box: np.ndarray, gts: np.ndarray) -> np.ndarray:
    iw = np.maximum(np.minimum(gts[:, 2], box[2]) - np.maximum(gts[:, 0], box[0]) + 1.0, 0.0)
    ih = np.maximum(np.minimum(gts[:, 3], box[3]) - np.maximum(gts[:, 1], box[1]) + 1.0, 0.0)
    inters = iw * ih
    union = (
        (box[2] - box[0] + 1.0) * (box[3] - box[1] + 1.0)
        + (gts[:, 2] - gts[:, 0] + 1.0) * (gts[:, 3] - gts[:, 1] + 1.0)
        - inters
    )
    return inters / union


def froc(
    boxes_all: list[np.ndarray], gts_all: list[np.ndarray], threshold: float
) -> tuple[np.ndarray, np.ndarray]:
    """boxes_all[i]: (n_i, 5) x1, y1, x2, y2, score; gts_all[i]: (m_i, 4). Scores must be distinct."""
    n_images = len(boxes_all)
    image_of = np.concatenate([[i] * len(b) for i, b in enumerate(boxes_all)]).astype(int)
    pooled = np.vstack([b.reshape(-1, 5) for b in boxes_all])
    order = np.argsort(pooled[:, 4])[::-1]
    found = [np.zeros(len(g), dtype=bool) for g in gts_all]
    hits = misses = 0
    tps, fps = [], []
    for k in order:
        image = image_of[k]
        overlaps = iou(pooled[k, :4], gts_all[image])
        if len(overlaps) == 0 or overlaps.max() < threshold:
            misses += 1
        else:
            for j, value in enumerate(overlaps):
                if value >= threshold and not found[image][j]:
                    found[image][j] = True
                    hits += 1
        tps.append(hits)
        fps.append(misses)
    n_gt = sum(len(g) for g in gts_all)
    return np.array(tps, dtype=float) / n_gt, np.array(fps, dtype=float) / n_images


def mulan_levels(sens: np.ndarray, fp: np.ndarray, levels: list[float]) -> np.ndarray:
    inside = [a for a in levels if a <= fp[-1]]
    outside = [a for a in levels if a > fp[-1]]
    f = interpolate.interp1d(fp, sens)
    return np.hstack([f(np.array(inside)), np.ones(len(outside)) * sens[-1]])


def three_dce_levels(sens: np.ndarray, fp: np.ndarray, levels: list[float]) -> np.ndarray:
    f = interpolate.interp1d(fp, sens, fill_value="extrapolate")
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(f(np.array(levels)), dtype=float)
