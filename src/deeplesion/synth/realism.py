"""Measure how CT-like a slice is: the HU peaks of the main tissues, the noise level, how much of the
image the body spans and how flat its back lies on the table, the vessels of the lungs and the liver.

The same functions measure real DeepLesion slices and synthetic ones, so the synthetic release can be
checked against the real range (``tests/test_synth_realism.py``, ``benchmarks/synth_gallery.py``).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

TISSUE_RANGES_HU: dict[str, tuple[float, float]] = {
    "air": (-1100.0, -900.0),
    "lung": (-900.0, -500.0),
    "fat": (-200.0, -30.0),
    "soft_tissue": (-30.0, 100.0),
    "bone": (150.0, 1500.0),
}
"""Where each tissue's histogram peak is looked for, HU (half-open ranges)."""

MIN_PIXELS = 500
LUNG_MIN_PIXELS = 5000
"""A slice without lungs still has a few thousand pixels between -900 and -500 HU: the blurred edges of
the skin, the table and bowel gas, whose histogram has no real peak; real lungs fill tens of thousands."""
BIN_HU = 5.0


def tissue_peaks(hu: npt.NDArray[np.integer | np.floating]) -> dict[str, float | None]:
    """The most frequent value of each tissue range of :data:`TISSUE_RANGES_HU`.

    Parameters
    ----------
    hu
        (H, W) slice in HU, any numeric dtype.

    Returns
    -------
    dict
        Tissue name -> centre of the fullest 5 HU bin, HU; None when the slice has fewer than 500 pixels
        in that range (lung: fewer than 5,000; no lung on a pelvis slice).
    """
    values = np.asarray(hu, dtype=np.float32).ravel()
    peaks: dict[str, float | None] = {}
    for name, (low, high) in TISSUE_RANGES_HU.items():
        inside = values[(values >= low) & (values < high)]
        if inside.size < (LUNG_MIN_PIXELS if name == "lung" else MIN_PIXELS):
            peaks[name] = None
            continue
        counts, edges = np.histogram(inside, bins=np.arange(low, high + BIN_HU, BIN_HU))
        peaks[name] = float(edges[int(np.argmax(counts))] + BIN_HU / 2)
    return peaks


def noise_sigma(hu: npt.NDArray[np.integer | np.floating], *, window_px: int = 7) -> dict[str, float | None]:
    """Noise standard deviation in uniform regions of fat and of soft tissue, HU.

    The local standard deviation is taken in ``window_px`` x ``window_px`` windows; in a uniform region it
    is the noise, elsewhere edges and texture add to it, so the 10th percentile over the windows whose
    mean lies in the tissue's range estimates the noise (real and synthetic slices are measured alike).

    Returns
    -------
    dict
        ``fat`` and ``soft_tissue`` -> HU, None when fewer than 2000 windows fall in the range.
    """
    import cv2

    image = np.asarray(hu, dtype=np.float32)
    mean = cv2.blur(image, (window_px, window_px))
    square = cv2.blur(image * image, (window_px, window_px))
    sd = np.sqrt(np.maximum(square - mean * mean, 0.0))
    result: dict[str, float | None] = {}
    for name, (low, high) in (("fat", (-140.0, -60.0)), ("soft_tissue", (0.0, 90.0))):
        chosen = sd[(mean > low) & (mean < high)]
        result[name] = float(np.percentile(chosen, 10)) if chosen.size >= 2000 else None
    return result


def body_width_fraction(hu: npt.NDArray[np.integer | np.floating], *, body_hu: float = -400.0) -> float:
    """How much of the image width the body spans: the widest run from the first to the last pixel above
    ``body_hu`` along the rows between 30% and 60% of the height (every 4th row; the table, below, and
    anything above the body are left out), as a fraction of the width. Real scans fit the field of view
    to the patient, so their bodies span most of it.

    Parameters
    ----------
    hu
        (H, W) slice in HU.

    Returns
    -------
    float
        In [0, 1]; 0 when no row of that band has a pixel above ``body_hu``.
    """
    image = np.asarray(hu)
    height, width = image.shape
    band = image[int(0.3 * height) : int(0.6 * height) : 4] > body_hu
    widest = 0
    for row in band:
        columns = np.flatnonzero(row)
        if len(columns):
            widest = max(widest, int(columns[-1] - columns[0] + 1))
    return float(widest) / float(width)


def back_flatness(
    hu: npt.NDArray[np.integer | np.floating], *, at: float = 0.1, body_hu: float = -400.0
) -> float:
    """How flat the back lies on the table: the body's width ``at`` of its depth above its lowest row, as a
    fraction of its widest row. An ellipse gives 0.60 at 0.1; real supine bodies are flattened by the
    table (one slice from each of the 35 series of ``../shared/data/deeplesion/png16``: median 0.73).

    The body is the largest connected region above ``body_hu`` after an opening with a 9-pixel disc,
    which cuts off the table's thin curved plates.

    Parameters
    ----------
    hu
        (H, W) slice in HU, the patient's back toward the bottom of the image (as DeepLesion's slices).
    at
        Height above the lowest row of the body, as a fraction of the body's depth.

    Returns
    -------
    float
        In [0, 1]; NaN when nothing in the slice is above ``body_hu``.
    """
    import cv2

    above = (np.asarray(hu) > body_hu).astype(np.uint8)
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (9, 9))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(cv2.morphologyEx(above, cv2.MORPH_OPEN, disc))
    if count < 2:
        return float("nan")
    body = labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    rows = np.flatnonzero(body.any(axis=1))
    top, bottom = int(rows[0]), int(rows[-1])

    def width(row: int) -> int:
        columns = np.flatnonzero(body[row])
        return int(columns[-1] - columns[0] + 1) if len(columns) else 0

    widest = max(width(row) for row in range(top, bottom + 1))
    return width(round(bottom - at * (bottom - top))) / widest


def _filled_body(values: npt.NDArray[np.float32], above_hu: float) -> npt.NDArray[np.bool_] | None:
    """(H, W) the largest connected region above ``above_hu``, its holes (lungs, bowel gas) filled; None
    when no pixel is above it."""
    from scipy import ndimage

    labels, count = ndimage.label(values > above_hu)
    if count == 0:
        return None
    largest = labels == 1 + int(np.argmax(np.bincount(labels.ravel())[1:]))
    return np.asarray(ndimage.binary_fill_holes(largest), dtype=bool)


VESSEL_HU = -500.0
"""Inside the lungs, pixels above this are vessels (or nodules, or the airway walls)."""
FAINT_VESSEL_HU = -750.0
"""Inside the lungs, pixels from this up to :data:`VESSEL_HU` are mostly the partial volume of vessels
that a thick slice cuts only in part, and their blurred edges."""


def lung_vessels(
    hu: npt.NDArray[np.integer | np.floating], spacing_mm: float
) -> tuple[float, float, float] | None:
    """How much of the lungs the vessels fill, how many separate vessel cuts they show, and how much of the
    lungs is the faint grey of vessels in partial volume.

    The lungs are the regions below :data:`VESSEL_HU` inside the body (the largest region above it, holes
    filled) of at least 10 cm^2, closed over their vessels and eroded by 3 pixels off the pleura. Patient
    1's two chest series in ``../shared/data/deeplesion/png16`` (74 slices with lungs, each series at its
    own pixel spacing): share median 0.031 (5th-95th percentile 0.017-0.041), 32 cuts per 100 cm^2
    (23-41); the faint share is larger in the thicker slices: median 0.17 in the 13 slices of 5 mm, 0.07
    in the 61 of 1 mm.

    Parameters
    ----------
    hu
        (H, W) slice in HU.
    spacing_mm
        In-plane pixel spacing, mm.

    Returns
    -------
    tuple of float or None
        The share of the lung pixels above :data:`VESSEL_HU`, the number of connected vessel cuts per
        100 cm^2 of lung, and the share of the lung pixels from :data:`FAINT_VESSEL_HU` up to
        :data:`VESSEL_HU`; None when the slice has less than 10 cm^2 of lung.
    """
    from scipy import ndimage

    values = np.asarray(hu, dtype=np.float32)
    body = _filled_body(values, VESSEL_HU)
    if body is None:
        return None
    labels = ndimage.label(body & (values < VESSEL_HU))[0]
    sizes = np.bincount(labels.ravel()) * spacing_mm**2
    sizes[0] = 0.0
    lungs = np.isin(labels, np.flatnonzero(sizes >= 1000.0))
    if not lungs.any():
        return None
    closed = ndimage.binary_fill_holes(ndimage.binary_closing(lungs, iterations=3))
    region = ndimage.binary_erosion(closed, iterations=3)
    area_mm2 = float(region.sum()) * spacing_mm**2
    if area_mm2 < 1000.0:
        return None
    vessel = region & (values > VESSEL_HU)
    cuts = ndimage.label(vessel)[1]
    faint = region & (values > FAINT_VESSEL_HU) & (values <= VESSEL_HU)
    lung = float(region.sum())
    return float(vessel.sum()) / lung, cuts / (area_mm2 / 1e4), float(faint.sum()) / lung


LIVER_HU = (85.0, 200.0)
"""The enhanced liver after a 2.5 mm blur, HU: above the muscles (about 60) and below the bones."""
PORTAL_VENOUS_LIVER_HU = 80.0
"""A liver whose parenchyma's median is below this is not in the portal-venous phase (its vessels are not
brighter than it): :func:`liver_vessels` skips it."""
LIVER_VESSEL_RISE_HU = 30.0
"""Liver pixels this far above the parenchyma's median (after a 0.75 mm blur) are vessel."""


def liver_vessels(hu: npt.NDArray[np.integer | np.floating], spacing_mm: float) -> dict[str, float] | None:
    """How many vessel cuts a portal-venous liver shows, how large they are and how bright.

    The liver is the largest region of :data:`LIVER_HU` (after a 2.5 mm blur, opened by 3 mm) on the
    image's left half (the patient's right), of at least 40 cm^2, holes filled, eroded by 6 mm off its
    edges. Its vessels are the pixels :data:`LIVER_VESSEL_RISE_HU` above its median after a 0.75 mm blur;
    a cut is a connected region of them of at least 3 mm^2. The 16 shared real series at zn 0.50-0.62
    with such a liver (the middle slice of each, at its own pixel spacing): 9.8 cuts per 100 cm^2
    (interquartile 7.7-16.7), median area 13.2 mm^2, peaks 62 HU above the parenchyma (57-75).

    Parameters
    ----------
    hu
        (H, W) slice in HU.
    spacing_mm
        In-plane pixel spacing, mm.

    Returns
    -------
    dict or None
        ``cuts_per_100cm2``, ``median_area_mm2`` (NaN without cuts) and ``peak_hu``: the median over cuts
        of at least 10 mm^2 of their brightest pixel above the parenchyma's median (NaN without such
        cuts); None when the slice shows no liver of 20 cm^2 after the erosion or its median is below
        :data:`PORTAL_VENOUS_LIVER_HU`.
    """
    from scipy import ndimage

    values = np.asarray(hu, dtype=np.float32)
    smooth = ndimage.gaussian_filter(values, 2.5 / spacing_mm)
    candidate = (smooth > LIVER_HU[0]) & (smooth < LIVER_HU[1])
    candidate[:, values.shape[1] // 2 :] = False
    candidate = ndimage.binary_opening(candidate, iterations=max(1, int(3.0 / spacing_mm)))
    labels, count = ndimage.label(candidate)
    if count == 0:
        return None
    sizes = np.bincount(labels.ravel())[1:] * spacing_mm**2
    if sizes.max() < 4000.0:
        return None
    liver = ndimage.binary_fill_holes(labels == 1 + int(np.argmax(sizes)))
    region = ndimage.binary_erosion(liver, iterations=int(6.0 / spacing_mm))
    area_mm2 = float(region.sum()) * spacing_mm**2
    if area_mm2 < 2000.0:
        return None
    fine = ndimage.gaussian_filter(values, 0.75 / spacing_mm)
    parenchyma = float(np.median(fine[region]))
    if parenchyma < PORTAL_VENOUS_LIVER_HU:
        return None
    cuts, count = ndimage.label(region & (fine > parenchyma + LIVER_VESSEL_RISE_HU))
    areas = np.bincount(cuts.ravel(), minlength=count + 1)[1:] * spacing_mm**2
    kept = areas >= 3.0
    large = np.flatnonzero(areas >= 10.0) + 1
    peaks = np.asarray(ndimage.maximum(fine, cuts, large)) - parenchyma if len(large) else np.array([np.nan])
    return {
        "cuts_per_100cm2": float(kept.sum()) / (area_mm2 / 1e4),
        "median_area_mm2": float(np.median(areas[kept])) if kept.any() else float("nan"),
        "peak_hu": float(np.median(peaks)),
    }


def deep_tissue_shares(
    hu: npt.NDArray[np.integer | np.floating], spacing_mm: float, *, depth_mm: float = 45.0
) -> dict[str, float] | None:
    """What fills the body deeper than ``depth_mm`` from the skin: shares of fat (-200 to -30 HU), gas
    (below -400) and soft tissue (-30 to 150) of those pixels. On abdominal slices this is mostly the
    abdominal cavity, so the fat share says how much room the organs and bowel leave empty.

    The body is the largest region above -400 HU, holes filled; the depth is the Euclidean distance to
    its edge.

    Parameters
    ----------
    hu
        (H, W) slice in HU.
    spacing_mm
        In-plane pixel spacing, mm.
    depth_mm
        How far from the skin a pixel must lie, mm.

    Returns
    -------
    dict or None
        ``fat``, ``gas``, ``soft_tissue`` shares in [0, 1]; None when no pixel lies that deep.
    """
    from scipy import ndimage

    values = np.asarray(hu, dtype=np.float32)
    body = _filled_body(values, -400.0)
    if body is None:
        return None
    deep = values[ndimage.distance_transform_edt(body) * spacing_mm > depth_mm]
    if deep.size == 0:
        return None
    return {
        "fat": float(np.mean((deep >= -200.0) & (deep < -30.0))),
        "gas": float(np.mean(deep < -400.0)),
        "soft_tissue": float(np.mean((deep >= -30.0) & (deep < 150.0))),
    }
