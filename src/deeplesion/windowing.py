"""Intensity windows: HU -> display or model values. Pure functions; the presets are defined here only.

A window is ``(low, high)`` in HU, as ``DL_info.csv`` writes DICOM windows (not centre/width), so a
lesion's own window is simply ``apply_window(hu, lesion.window)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import numpy.typing as npt

from deeplesion.errors import UsageError

Window = tuple[float, float]

PRESETS: dict[str, Window] = {
    "model": (-1024.0, 3071.0),
    "soft_tissue": (-175.0, 275.0),
    "lung": (-1500.0, 500.0),
    "bone": (-500.0, 1300.0),
}
"""Named windows (HU). ``model`` is the single input window of the reference detectors (3DCE, MULAN,
LesaNet); the others are the display windows of the dataset authors' tools."""


def resolve_window(window: str | Sequence[float]) -> Window:
    """A preset name (``soft_tissue``, ``soft-tissue``, ``lung``, ...) or a ``(low, high)`` pair -> window.

    Raises
    ------
    UsageError
        Unknown name, or ``low >= high``.
    """
    if isinstance(window, str):
        key = window.strip().lower().replace("-", "_").replace(" ", "_")
        if key not in PRESETS:
            raise UsageError(f"unknown window {window!r}; presets: {', '.join(PRESETS)} (or give low,high)")
        return PRESETS[key]
    low, high = (float(v) for v in window)
    if not low < high:
        raise UsageError(f"window low {low:g} HU must be below high {high:g} HU")
    return low, high


def apply_window(
    hu: npt.ArrayLike,
    window: str | Sequence[float],
    *,
    scale: Literal["unit", "uint8", "float255"] = "unit",
    out: npt.NDArray[np.float32] | None = None,
) -> npt.NDArray[np.float32] | npt.NDArray[np.uint8]:
    """Map HU linearly so that ``low -> 0`` and ``high -> 1`` (or 255), clipping outside.

    Parameters
    ----------
    hu
        Any shape, HU (int16 or float).
    window
        A preset name or ``(low, high)`` in HU.
    scale
        ``unit``: float32 in [0, 1]; ``float255``: float32 in [0, 255] (what the reference detectors feed,
        before subtracting their pixel mean); ``uint8``: rounded to uint8 (for display and files).
    out
        Optional float32 array of the same shape to write into (not for ``uint8``).

    Returns
    -------
    ndarray
        Same shape as ``hu``; float32, or uint8 for ``scale="uint8"``.
    """
    low, high = resolve_window(window)
    top = 1.0 if scale == "unit" else 255.0
    gain = np.float32(top / (high - low))
    result = np.subtract(hu, np.float32(low), out=out, dtype=np.float32)
    result *= gain
    np.clip(result, 0.0, top, out=result)
    if scale == "uint8":
        return np.rint(result).astype(np.uint8)
    return result


def multi_window(hu: npt.ArrayLike, windows: Sequence[str | Sequence[float]]) -> npt.NDArray[np.float32]:
    """Stack several windows of one image as channels.

    Parameters
    ----------
    hu
        (H, W) HU.
    windows
        C windows (names or pairs), for example ``["lung", "soft_tissue", "bone"]``.

    Returns
    -------
    ndarray
        (C, H, W) float32 in [0, 1].
    """
    image = np.asarray(hu)
    stack = np.empty((len(windows), *image.shape), dtype=np.float32)
    for channel, window in enumerate(windows):
        apply_window(image, window, out=stack[channel])
    return stack
