"""RECIST measurement of a lesion mask: long axis, then the longest chord perpendicular to it."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


def recist_from_mask(mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.float64]:
    """Measure a 2D lesion mask the way RECIST does.

    The long axis joins the two farthest-apart pixels of the mask; the short axis is the longest chord
    of the mask perpendicular to it (boundary pixels within half a pixel of one perpendicular line).

    Parameters
    ----------
    mask
        (H, W) bool; True on the lesion. Must not be empty.

    Returns
    -------
    ndarray
        (4, 2) float64 pixel centres (x, y), 0-based: long-axis endpoints, then short-axis endpoints.
        All four are boundary pixels of the mask (pixels with a 4-neighbour outside it).
    """
    if not mask.any():
        raise ValueError("recist_from_mask needs a non-empty mask")
    ys, xs = np.nonzero(mask & ~_interior(mask))  # boundary pixels: a 4-neighbour lies outside
    points = np.stack([xs, ys], axis=1).astype(np.float64)
    if len(points) == 1:
        return np.repeat(points, 4, axis=0)
    import cv2

    hull = cv2.convexHull(points.astype(np.int32)).reshape(-1, 2).astype(np.float64)
    distances = np.linalg.norm(hull[:, None, :] - hull[None, :, :], axis=2)
    i, j = np.unravel_index(int(np.argmax(distances)), distances.shape)
    p1, p2 = hull[i], hull[j]
    direction = (p2 - p1) / np.linalg.norm(p2 - p1)
    normal = np.array([-direction[1], direction[0]])
    along = points @ direction
    across = points @ normal
    # boundary pixels grouped into 1 px wide bands perpendicular to the long axis; the band whose two
    # outermost pixels are farthest apart gives the short axis
    bins = np.round(along).astype(np.int64)
    order = np.lexsort((across, bins))
    bins_sorted, across_sorted = bins[order], across[order]
    starts = np.flatnonzero(np.r_[True, bins_sorted[1:] != bins_sorted[:-1]])
    ends = np.r_[starts[1:], bins_sorted.size] - 1
    best = int(np.argmax(across_sorted[ends] - across_sorted[starts]))
    q1, q2 = points[order[starts[best]]], points[order[ends[best]]]
    return np.stack([p1, p2, q1, q2])


def _interior(mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
    """Pixels of ``mask`` whose four neighbours are all in ``mask``."""
    padded = np.pad(mask, 1)
    return padded[1:-1, 1:-1] & padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]


def mask_from_recist(
    recist: npt.ArrayLike, height: int, width: int, *, arc_points: int = 16
) -> npt.NDArray[np.uint8]:
    """The weak lesion mask of MULAN from the RECIST axes: four quarter-ellipse arcs through the four
    endpoints, around the point where the two diameters cross.

    Parameters
    ----------
    recist
        (4, 2) pixel coordinates (x, y): long-axis endpoints, then short-axis endpoints.
    height, width
        The mask's size, pixels.
    arc_points
        Points per quarter arc.

    Returns
    -------
    ndarray
        (height, width) uint8, 1 inside.
    """
    import cv2

    p = np.asarray(recist, dtype=np.float64).reshape(4, 2)
    long_dir, short_dir = p[1] - p[0], p[3] - p[2]
    # where the diameters cross (the middle of the long axis when they are parallel: a degenerate row)
    matrix = np.column_stack([long_dir, -short_dir])
    if abs(np.linalg.det(matrix)) > 1e-9:
        t = np.linalg.solve(matrix, p[2] - p[0])[0]
        centre = p[0] + np.clip(t, 0.0, 1.0) * long_dir
    else:
        centre = (p[0] + p[1]) / 2
    order = [p[0], p[2], p[1], p[3]]  # around the lesion: long end, short end, other long end, other short
    angles = np.linspace(0.0, np.pi / 2, arc_points, endpoint=False)
    outline = []
    for i in range(4):
        u, v = order[i] - centre, order[(i + 1) % 4] - centre
        outline.append(centre + np.cos(angles)[:, None] * u + np.sin(angles)[:, None] * v)
    polygon = np.round(np.concatenate(outline) * 16).astype(np.int32)  # 4 fractional bits
    mask = np.zeros((height, width), dtype=np.uint8)
    cv2.fillPoly(mask, [polygon], 1, lineType=cv2.LINE_8, shift=4)
    return mask
