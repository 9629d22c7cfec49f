"""Box conventions, each named once, with the conversions between them and the one rule for moving
boxes and points (numpy only).

The standard: the catalog's frame
---------------------------------
``xyxy`` float, **0-based pixel coordinates** in which an integer is the centre of a pixel (x = column,
y = row): the DL_info.csv value minus 1 (:func:`from_dl_info`). RECIST endpoints use the same frame.
A box ``[x1, y1, x2, y2]`` reaches from the centre of pixel ``x1`` to the centre of pixel ``x2``: its
pixels are columns ``x1 .. x2`` *inclusive*, so it is ``x2 - x1 + 1`` pixels wide. Worked example, the
real lesion on ``000001_01_01_109.png`` (DL_info ``226.169, 90.0204, 241.252, 111.977``)::

    catalog (standard)   [225.169,  89.0204, 240.252, 110.977]   16.083 px wide (inclusive pixels)
    DL_info.csv          [226.169,  90.0204, 241.252, 111.977]   the file's 1-based frame (+1)
    COCO [x, y, w, h]    [225.169,  89.0204,  15.083,  21.957]   w = x2 - x1 (MVP-Net's conversion)
    torchvision xyxy     [225.169,  89.0204, 241.252, 111.977]   continuous, exclusive end (+1 on x2, y2)

           column:   225      226   ...   240      241
                   |--+--|  |--+--|     |--+--|  |--+--|
    catalog           x1 (a centre)        x2 (a centre)
    torchvision    x1 (an edge)                  x2 (an edge, exclusive)

Why torchvision's frame adds 1 to the ends: torchvision measures areas as ``x2 - x1``, the official FROC
(3DCE/MULAN, from maskrcnn-benchmark's ``TO_REMOVE = 1``) as ``x2 - x1 + 1``; with the +1 the two give the
same IoU for every pair of boxes (:func:`box_iou` with ``inclusive=True`` on catalog boxes equals
``inclusive=False`` on their torchvision form), so a torchvision model trained on :func:`to_torchvision`
targets is scored by the FROC exactly as it was trained.

Moving boxes and points (the one rule)
--------------------------------------
Points move as pixel centres (:class:`deeplesion.geometry.Transform` holds the affine map):

- crop at ``(x0, y0)``: ``x' = x - x0``;
- resize by ``s``: ``x' = (x + 0.5) * s - 0.5`` (the ``reference`` rule of the dataset authors' code,
  recorded on the Transform, is ``x' = s * x``);
- horizontal flip in an image ``W`` pixels wide: ``x' = W - 1 - x``.

A box moves as its two corner points, then its corners are re-ordered (a flip swaps x1 and x2):
:meth:`Transform.boxes <deeplesion.geometry.Transform.boxes>`. Boxes are never clipped here;
:func:`clip` clips to an image when a consumer needs it.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from deeplesion.catalog.records import CSV_PIXEL_ORIGIN

Boxes = npt.NDArray[np.float64]
"""(N, 4) float64 boxes."""


_END_PIXEL = np.array([0.0, 0.0, 1.0, 1.0])
"""What torchvision's exclusive end adds to a catalog box."""


def _as_boxes(boxes: npt.ArrayLike) -> Boxes:
    return np.asarray(boxes, dtype=np.float64).reshape(-1, 4)


def from_dl_info(boxes: npt.ArrayLike) -> Boxes:
    """(N, 4) boxes of ``DL_info.csv`` (1-based) -> the catalog's 0-based frame."""
    return _as_boxes(boxes) - CSV_PIXEL_ORIGIN


def to_dl_info(boxes: npt.ArrayLike) -> Boxes:
    """(N, 4) catalog boxes -> the ``DL_info.csv`` frame (1-based)."""
    return _as_boxes(boxes) + CSV_PIXEL_ORIGIN


def to_coco(boxes: npt.ArrayLike) -> Boxes:
    """(N, 4) ``x1, y1, x2, y2`` -> (N, 4) COCO ``x, y, w, h`` with ``w = x2 - x1`` (same frame)."""
    b = _as_boxes(boxes)
    return np.column_stack([b[:, 0], b[:, 1], b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]])


def from_coco(boxes: npt.ArrayLike) -> Boxes:
    """(N, 4) COCO ``x, y, w, h`` -> (N, 4) ``x1, y1, x2, y2``; inverse of :func:`to_coco`."""
    b = _as_boxes(boxes)
    return np.column_stack([b[:, 0], b[:, 1], b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]])


def to_torchvision(boxes: npt.ArrayLike) -> Boxes:
    """(N, 4) catalog boxes (inclusive pixels) -> torchvision's continuous ``xyxy`` (exclusive end)."""
    return np.asarray(_as_boxes(boxes) + _END_PIXEL, dtype=np.float64)


def from_torchvision(boxes: npt.ArrayLike) -> Boxes:
    """(N, 4) torchvision ``xyxy`` -> catalog boxes; inverse of :func:`to_torchvision`.

    A box less than one pixel wide or high (a detector can output one) becomes a box of one pixel there:
    its end is kept at or after its start, as the catalog convention and the evaluation require.
    """
    out = np.asarray(_as_boxes(boxes) - _END_PIXEL, dtype=np.float64)
    out[..., 2:] = np.maximum(out[..., 2:], out[..., :2])
    return out


def area(boxes: npt.ArrayLike, *, inclusive: bool = True) -> npt.NDArray[np.float64]:
    """Areas in square pixels of (..., 4) boxes: ``(x2 - x1 + 1) * (y2 - y1 + 1)`` for catalog boxes
    (``inclusive``), ``(x2 - x1) * (y2 - y1)`` for continuous ones (COCO, torchvision)."""
    b = np.asarray(boxes, dtype=np.float64)
    one = 1.0 if inclusive else 0.0
    return np.maximum(b[..., 2] - b[..., 0] + one, 0.0) * np.maximum(b[..., 3] - b[..., 1] + one, 0.0)


def _intersection(
    p: npt.NDArray[np.float64], q: npt.NDArray[np.float64], one: float
) -> npt.NDArray[np.float64]:
    width = np.maximum(np.minimum(p[..., 2], q[..., 2]) - np.maximum(p[..., 0], q[..., 0]) + one, 0.0)
    height = np.maximum(np.minimum(p[..., 3], q[..., 3]) - np.maximum(p[..., 1], q[..., 1]) + one, 0.0)
    return np.asarray(width * height, dtype=np.float64)


def overlap_pairs(
    a: npt.ArrayLike, b: npt.ArrayLike, *, inclusive: bool = True, over: str = "union"
) -> npt.NDArray[np.float64]:
    """Overlap of boxes paired row by row (any broadcastable (..., 4) shapes).

    Parameters
    ----------
    a, b
        ``xyxy`` boxes; ``a`` is the detection when ``over="first"``.
    inclusive
        True (default): catalog boxes, areas counted in whole pixels as the official FROC does
        (``x2 - x1 + 1``). False: continuous boxes (COCO, torchvision; ``x2 - x1``).
    over
        ``union`` (IoU) or ``first`` (intersection over ``a``'s box: the ``iobb`` hit rule).
    """
    p, q = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    inter = _intersection(p, q, 1.0 if inclusive else 0.0)
    if over == "first":
        denominator = area(p, inclusive=inclusive) + 0.0 * inter
    elif over == "union":
        denominator = area(p, inclusive=inclusive) + area(q, inclusive=inclusive) - inter
    else:
        raise ValueError(f"over must be 'union' or 'first', got {over!r}")
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, inter / np.where(denominator > 0, denominator, 1.0), 0.0)


def box_iou(a: npt.ArrayLike, b: npt.ArrayLike, *, inclusive: bool = True) -> npt.NDArray[np.float64]:
    """(N, M) intersection over union of every box of ``a`` (N, 4) with every box of ``b`` (M, 4);
    ``inclusive`` as in :func:`overlap_pairs`."""
    return overlap_pairs(_as_boxes(a)[:, None, :], _as_boxes(b)[None, :, :], inclusive=inclusive)


def outside_image(boxes: npt.ArrayLike, sizes: npt.ArrayLike) -> npt.NDArray[np.bool_]:
    """(N,) whether catalog boxes reach past their image, given (N, 2) ``(width, height)`` per box (a
    corner beyond the centre of the first or last pixel)."""
    b = _as_boxes(boxes)
    size = np.asarray(sizes, dtype=np.float64).reshape(-1, 2)
    low = (b[:, 0] < 0) | (b[:, 1] < 0)
    return np.asarray(low | (b[:, 2] > size[:, 0] - 1) | (b[:, 3] > size[:, 1] - 1))


def clip(boxes: npt.ArrayLike, width: int, height: int) -> Boxes:
    """Catalog boxes clipped to an image of ``width`` x ``height`` pixels (centres 0 .. size - 1)."""
    b = _as_boxes(boxes).copy()
    b[:, 0::2] = np.clip(b[:, 0::2], 0.0, width - 1.0)
    b[:, 1::2] = np.clip(b[:, 1::2], 0.0, height - 1.0)
    return b


def clip_torchvision(boxes: npt.ArrayLike, width: int, height: int) -> Boxes:
    """torchvision boxes clipped to an image of ``width`` x ``height`` pixels (edges 0 .. size)."""
    b = _as_boxes(boxes).copy()
    b[:, 0::2] = np.clip(b[:, 0::2], 0.0, float(width))
    b[:, 1::2] = np.clip(b[:, 1::2], 0.0, float(height))
    return b
