"""2.5D context: slices at a fixed physical interval around a key slice, interpolated between slices.

A *plan* says, for each output channel, which slices (as offsets from the key slice, in slice-number
units) are blended with which weights. Two modes:

``correct``
    Channel ``k`` (``-(N-1)/2 .. (N-1)/2``) sits ``k * interval_mm`` from the key slice, i.e. at offset
    ``o = k * interval_mm / slice_interval_mm``; it blends ``floor(o)`` and ``ceil(o)`` with weights
    ``ceil(o) - o`` and ``o - floor(o)``.
``reference``
    What 3DCE/MULAN/LesaNet do (``load_multislice_img_16bit_png``): the weights are computed once from
    the first neighbour, ``a = frac(r)``, ``b = ceil(r) - r`` with ``r = interval_mm / slice_interval_mm``,
    and reused for every neighbour ``p * r`` (the same float arithmetic, so float artefacts match too).
    With more than 3 slices and an interval that does not divide ``interval_mm`` the outer channels are
    wrong: at 5 mm and 2 mm the +-2 channels equal the +-1 channels.

Edge rule (both modes, as the reference): a slice that is not available falls back to the nearest
available slice toward the key slice. In ``correct`` mode a slice outside the key slice's run
(``Slice_range``) is not available either, so a neighbouring run with another interval is never mixed in.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from deeplesion.errors import UsageError
from deeplesion.io import describe_array

Mode = Literal["correct", "reference"]
Plan = list[list[tuple[int, float]]]
"""Per channel, the (slice offset, weight) pairs to blend."""


def plan_context(
    num_slices: int, interval_mm: float, slice_interval_mm: float, mode: Mode = "correct"
) -> Plan:
    """Which slices make each channel, and with which weights.

    Parameters
    ----------
    num_slices
        Odd number of output channels (1, 3, 9, 27, ...).
    interval_mm
        Wanted distance between channels, mm (the reference uses 2 mm).
    slice_interval_mm
        The run's slice interval, mm (``Spacing_mm_px_[2]``). Not positive or NaN: every channel is the
        key slice (as the reference does).
    mode
        ``correct`` or ``reference`` (see the module docstring).

    Returns
    -------
    list
        ``num_slices`` lists of ``(offset, weight)``; offsets are relative slice numbers, weights sum to 1.
    """
    if num_slices < 1 or num_slices % 2 == 0:
        raise UsageError(f"the number of context slices must be odd and positive, got {num_slices}")
    if mode not in ("correct", "reference"):
        raise UsageError(f"unknown context mode {mode!r}; use correct or reference")
    half = (num_slices - 1) // 2
    if not slice_interval_mm > 0 or interval_mm <= 0:
        return [[(0, 1.0)] for _ in range(num_slices)]
    if mode == "reference":
        return _reference_plan(half, interval_mm, slice_interval_mm)
    plan: Plan = []
    for k in range(-half, half + 1):
        offset = k * interval_mm / slice_interval_mm
        nearest = round(offset)
        if abs(offset - nearest) < 1e-9:
            plan.append([(nearest, 1.0)])
        else:
            low = math.floor(offset)
            plan.append([(low, low + 1 - offset), (low + 1, offset - low)])
    return plan


def _reference_plan(half: int, interval_mm: float, slice_interval_mm: float) -> Plan:
    rel_pos = float(interval_mm) / slice_interval_mm
    a = rel_pos - np.floor(rel_pos)
    b = np.ceil(rel_pos) - rel_pos
    before: Plan = []
    after: Plan = []
    for p in range(half):
        if a == 0:
            before.insert(0, [(int(-rel_pos * (p + 1)), 1.0)])
            after.append([(int(rel_pos * (p + 1)), 1.0)])
            continue
        intv1 = rel_pos * (p + 1)
        upper, lower = int(np.ceil(intv1)), int(np.floor(intv1))
        before.insert(0, _merge([(-upper, float(a)), (-lower, float(b))]))
        after.append(_merge([(upper, float(a)), (lower, float(b))]))
    return [*before, [(0, 1.0)], *after]


def _merge(terms: list[tuple[int, float]]) -> list[tuple[int, float]]:
    """Add the weights of repeated offsets (``a * S + b * S`` when ``intv`` is a whole number)."""
    merged: dict[int, float] = {}
    for offset, weight in terms:
        merged[offset] = merged.get(offset, 0.0) + weight
    return sorted(merged.items())


def resolve_offset(key: int, offset: int, available: Collection[int]) -> int:
    """Slice number for ``key + offset``, stepping toward the key until one is available (edge rule)."""
    delta = offset
    while delta != 0 and key + delta not in available:
        delta -= 1 if delta > 0 else -1
    return key + delta


@dataclass(frozen=True)
class ContextStack:
    """A 2.5D stack.

    Attributes
    ----------
    hu
        (C, H, W) float32 HU, channel ``(C - 1) // 2`` is the key slice.
    sources
        Per channel, the ``(slice_number, weight)`` pairs actually blended (after the edge rule).
    """

    hu: npt.NDArray[np.float32]
    sources: list[list[tuple[int, float]]]

    @property
    def key_slice_only(self) -> bool:
        """True when the stack has neighbour channels but no neighbour was available: every channel is
        the key slice (a run of one slice on disk, say), so the stack holds no 3D context."""
        key = self.sources[len(self.sources) // 2]
        return len(self.sources) > 1 and all(terms == key for terms in self.sources)

    def __repr__(self) -> str:
        numbers = sorted({n for terms in self.sources for n, _ in terms})
        note = ", key slice only: no neighbour available" if self.key_slice_only else ""
        return f"ContextStack({describe_array(self.hu)}, slices {numbers}{note})"


def build_stack(
    key: int,
    plan: Plan,
    available: Collection[int],
    read: Callable[[int], npt.NDArray[np.int16]],
    *,
    crop_box: tuple[int, int, int, int] | None = None,
    preloaded: dict[int, npt.NDArray[np.int16]] | None = None,
    gain: float = 1.0,
    offset: float = 0.0,
) -> ContextStack:
    """Blend the slices of ``plan`` around ``key``; every needed PNG is decoded once.

    Parameters
    ----------
    key
        Key slice number (1-based).
    plan
        From :func:`plan_context`.
    available
        Slice numbers that may be used (on disk; in ``correct`` mode also inside the run).
    read
        Slice number -> (H, W) int16 HU.
    crop_box
        ``(x0, y0, x1, y1)``: blend only this region (cheaper when the caller crops anyway).
    preloaded
        Slices already decoded by the caller (full size), by slice number.
    gain, offset
        Return ``gain * HU + offset`` instead of HU, fused into the blend (one pass; a window without its
        clipping). Blending is linear, so this equals applying them after the blend.
    """
    # each slice region once as contiguous float32 (exact for int16): the per-channel sums then run on
    # contiguous same-type arrays (0.85 ms instead of 1.09 for a 9-channel 321 x 417 stack)
    decoded: dict[int, npt.NDArray[np.float32]] = {}
    given = preloaded or {}

    def get(number: int) -> npt.NDArray[np.float32]:
        if number not in decoded:
            image = given[number] if number in given else read(number)
            if crop_box is not None:
                x0, y0, x1, y1 = crop_box
                image = image[y0:y1, x0:x1]
            decoded[number] = image.astype(np.float32)
        return decoded[number]

    sources = [
        _merge([(resolve_offset(key, offset, available), weight) for offset, weight in channel])
        for channel in plan
    ]
    first = get(sources[len(sources) // 2][0][0])
    out = np.empty((len(plan), *first.shape), dtype=np.float32)
    term = np.empty(first.shape, dtype=np.float32)
    # numpy, not cv2.addWeighted: OpenCV splits a large array into stripes across its threads, and where
    # a stripe ends inside a vector its scalar tail rounds the last float digit differently, so the same
    # stack differed by 3e-6 between a DataLoader worker (one OpenCV thread) and the main process
    for channel, terms in enumerate(sources):
        (n1, w1), *rest = terms
        np.multiply(get(n1), np.float32(w1 * gain), out=out[channel])
        for n2, w2 in rest:
            np.multiply(get(n2), np.float32(w2 * gain), out=term)
            out[channel] += term
        out[channel] += np.float32(offset)
    return ContextStack(out, sources)
