"""COCO conventions shared by the COCO export and the evaluation of COCO-format predictions.

Image ids are derived from the slice name, so they are the same in every export, whatever subset it
holds: ``000001_01_01_109.png`` -> ``1_01_01_00109`` -> ``1010100109`` (patient, then 2 digits of study,
2 of series, 5 of slice number; at most about 4.4e12, exact in JSON and JavaScript).

Boxes: COCO's ``[x, y, w, h]`` is written from the project's 0-based ``x1, y1, x2, y2`` as
``[x1, y1, x2 - x1, y2 - y1]`` and read back as ``x2 = x + w``, so a round trip is exact.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from deeplesion.catalog import key_file_name
from deeplesion.errors import UsageError


def coco_image_id(file_name: str) -> int:
    """The COCO image id of a slice ``PPPPPP_SS_RR_NNN.png``."""
    stem = file_name.removesuffix(".png")
    parts = stem.split("_")
    if len(parts) != 4 or not all(p.isdigit() for p in parts):
        raise UsageError(f"{file_name!r} is not a DeepLesion slice name like 000001_01_01_109.png")
    patient, study, series, number = (int(p) for p in parts)
    if study > 99 or series > 99 or number > 99999:
        raise UsageError(f"{file_name!r}: study, series or slice number too large for a COCO image id")
    return ((patient * 100 + study) * 100 + series) * 100000 + number


def file_name_of_image_id(image_id: int) -> str:
    """Inverse of :func:`coco_image_id`."""
    rest, number = divmod(int(image_id), 100000)
    rest, series = divmod(rest, 100)
    patient, study = divmod(rest, 100)
    return key_file_name(patient, study, series, number)


def boxes_to_coco(xyxy: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """(N, 4) ``x1, y1, x2, y2`` -> (N, 4) COCO ``x, y, w, h``."""
    b = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
    return np.column_stack([b[:, 0], b[:, 1], b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]])


def boxes_from_coco(xywh: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """(N, 4) COCO ``x, y, w, h`` -> (N, 4) ``x1, y1, x2, y2``."""
    b = np.asarray(xywh, dtype=np.float64).reshape(-1, 4)
    return np.column_stack([b[:, 0], b[:, 1], b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]])
