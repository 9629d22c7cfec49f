"""Synthetic lesions of the eight coarse types, matched to the real annotations by construction.

The real statistics come from a packaged table (``resources/real_lesion_stats.json``, written by
``benchmarks/real_lesion_stats.py`` from the 9,816 val and test rows): each type's share of the rows, the
quantiles of its long diameter (mm) and of its normalized location, and the short/long ratio.

- Types by the rows' deficit: the next lesion takes the type whose share of the release's rows so far
  is furthest below its real share (a lesion gives a row per study that annotates it, so rows and not
  lesions are dealt; a little jitter keeps the order from being a fixed cycle): :class:`RowHerd`.
- Long diameters dealt by rows: each type's real size distribution is cut into 20 equal bins of
  probability and the next lesion takes the bin with the fewest rows so far, at a random point in it, so
  the rows' sizes cover the real range (0.6-342 mm) in real proportion (:class:`SizeHerd`).
- Locations: the normalized height z is drawn from the type's real quantiles; x and y likewise, moved
  to the nearest point of the type's organ in this body, so every lesion sits where it belongs. Because
  of that move, and because a small type has only a handful of lesions in a small release, the mean
  would wander (bone, kidney and soft tissue by up to 0.17 in 40 patients); so each lesion is placed at
  16 candidate draws (48 for the types under 10% of the rows) and the first that keeps its type's
  running mean within 0.01 of the real mean is taken, else the one that brings it nearest ("herding",
  :class:`RowHerd`), weighted by how many rows the lesion will give.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import numpy as np
import numpy.typing as npt

from deeplesion.synth.anatomy import REGIONS, TISSUE_HU, Body, Tissue, region_mask
from deeplesion.synth.phantom import Lesion3D

GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0
KEY_SLICE_COMPENSATION = 1.05
MIN_LONG_MM = 3.0  # smaller lesions would be under 4 pixels on the key slice: not annotatable here


@cache
def real_stats() -> dict[str, Any]:
    """The packaged real statistics (see the module docstring)."""
    text = resources.files("deeplesion.resources").joinpath("real_lesion_stats.json").read_text("utf-8")
    return json.loads(text)  # type: ignore[no-any-return]


def quantile(levels_percent: list[float], values: list[float], u: float) -> float:
    """The quantile function of a tabulated distribution at probability ``u`` (0-1), piecewise linear."""
    return float(np.interp(u * 100.0, levels_percent, values))


@dataclass
class Strata:
    """Per-type stratified probabilities: the j-th call for a type returns a golden-ratio point."""

    offset: float
    counts: dict[str, int]

    def next(self, kind: str, rng: np.random.Generator) -> float:
        """A probability in (0, 1) for the next lesion of ``kind`` (jittered within a narrow stratum)."""
        j = self.counts.get(kind, 0)
        self.counts[kind] = j + 1
        u = (self.offset + j * GOLDEN) % 1.0
        return float(np.clip(u + rng.uniform(-0.01, 0.01), 0.0005, 0.9995))


SIZE_BINS = 20
"""Equal bins of probability that :class:`SizeHerd` deals a type's long diameters over."""


@dataclass
class SizeHerd:
    """Deals each type's long diameters by rows, across a release (version 24): the probability of the
    type's real size distribution falls in one of :data:`SIZE_BINS` equal bins; the next lesion takes the
    bin furthest below its share of the type's rows so far (ties at random) and a uniform point in it.

    Before, the j-th lesion of a type took the j-th point of a golden-ratio sequence: the lesions' sizes
    were stratified, the rows' not, for a lesion gives a row per study that annotates it (1 to 6): over
    seeds 0-11 of 40 patients of version 24's anatomy the long diameters' KS statistic ran 0.035-0.112,
    mean 0.070 (2 seeds over the issue's 0.1); dealt by rows, 0.039-0.091, mean 0.054.

    Attributes
    ----------
    rows
        Type -> (SIZE_BINS,) rows given (or expected) so far by the lesions of each bin.
    """

    rows: dict[str, npt.NDArray[np.float64]]

    def next(self, kind: str, weight: float, rng: np.random.Generator) -> tuple[float, int]:
        """(probability in (0, 1), its bin) for the next lesion of ``kind``, which is expected to give
        ``weight`` rows (recorded)."""
        rows = self.rows.setdefault(kind, np.zeros(SIZE_BINS))
        deficit = (rows.sum() + weight) / SIZE_BINS - rows
        emptiest = np.flatnonzero(deficit >= deficit.max() - 1e-9)
        chosen = int(emptiest[rng.integers(len(emptiest))])
        rows[chosen] += weight
        u = (chosen + float(rng.random())) / SIZE_BINS
        return float(np.clip(u, 0.0005, 0.9995)), chosen

    def add(self, kind: str, chosen: int, weight: float) -> None:
        """Count ``weight`` more rows (negative: fewer) in bin ``chosen`` of ``kind``: the correction once
        the rows a lesion really gave are known, or a lesion that found no room."""
        self.rows.setdefault(kind, np.zeros(SIZE_BINS))[chosen] += weight


def normalized_location(body: Body, x: float, y: float, z: float) -> tuple[float, float, float]:
    """(x, y, z) mm -> the normalized location DL_info.csv writes: x and y relative to the semi-axes of
    the body's :meth:`~deeplesion.synth.anatomy.Body.location_frame` at that height, z the normalized
    height.

    The real rows' x and y are not the body's extent: on the shared real slices at zn 0.55-0.75 the
    vertebral body's centre lies at 0.74 of the body's depth, while bone lesions average y 0.61. This
    frame is the outline the per-type location means were matched with up to version 17; version 18 keeps
    it when the fat moved out of it (measured from the drawn skin instead, bone, kidney and soft-tissue
    lesions drifted up to 0.06 from the real means)."""
    frame = body.location_frame(z)
    return (x + frame.a) / (2 * frame.a), (y + frame.b) / (2 * frame.b), body.zn(z)


LESION_FIELD_RADIUS_MM = 215.0
"""How far from the body's axis a lesion may reach (its centre's distance plus :attr:`Lesion3D.reach_mm`
at its planned size). The widest field of view a series gets is 0.98 mm x 512 px (a radius of 250.9 mm,
the real release's largest spacing); a study's shift (up to 20 mm), the 5 mm the field keeps round a
lesion and some growth over the studies must fit in the rest. Version 13: a 267 mm abdominal mass placed
off-centre reached past every field of view the release could give."""


def place(
    body: Body,
    kind: str,
    rng: np.random.Generator,
    u: tuple[float, float, float],
    avoid: list[Lesion3D],
    radius_mm: float,
    z_hint: float | None = None,
    reach_mm: float = 0.0,
) -> tuple[float, float, float] | None:
    """A centre (x, y, z) mm for a lesion of ``kind``.

    The target is the real quantile of each normalized coordinate at the stratified probabilities ``u``
    (x, y, z); ``z_hint`` replaces the target height when given. When the target is not in the type's
    region of this body (or too close to a lesion in ``avoid``, or a lesion reaching ``reach_mm`` from
    its centre would reach past :data:`LESION_FIELD_RADIUS_MM`), the nearest point that is, searched in
    rings of 2.5 mm around it, is taken: a small move that keeps the per-type means near the real ones.
    None when nothing fits within 150 mm (then other heights are tried first).
    """
    stats = real_stats()
    levels = stats["location_levels_percent"]
    quantiles = stats["types"][kind]["location_quantiles"]
    heights = [quantile(levels, quantiles[2], u[2]) * body.height_mm]
    if z_hint is not None:
        heights.insert(0, z_hint)
    heights += [
        quantile(levels, quantiles[2], float(rng.uniform(0.02, 0.98))) * body.height_mm for _ in range(4)
    ]
    xn, yn = quantile(levels, quantiles[0], u[0]), quantile(levels, quantiles[1], u[1])
    angles = np.linspace(0.0, 2.0 * math.pi, 16, endpoint=False) + float(rng.uniform(0.0, math.pi / 8))
    # the target first, then rings of 2.5 mm around it out to 150 mm, nearest ring first
    rings = np.arange(2.5, 150.0, 2.5)
    dx = np.concatenate([[0.0], (rings[:, None] * np.cos(angles)[None, :]).ravel()])
    dy = np.concatenate([[0.0], (rings[:, None] * np.sin(angles)[None, :]).ravel()])
    for z in heights:
        frame = body.location_frame(z)
        x0, y0 = (2.0 * xn - 1.0) * frame.a, (2.0 * yn - 1.0) * frame.b
        xs, ys = x0 + dx, y0 + dy
        fits = np.hypot(xs, ys) + reach_mm <= LESION_FIELD_RADIUS_MM
        for i in np.flatnonzero(region_mask(body, kind, xs, ys, z) & fits):
            if _clear(float(xs[i]), float(ys[i]), z, radius_mm, avoid):
                return float(xs[i]), float(ys[i]), z
    return None


LOCATION_CANDIDATES = 16
"""Candidate places per lesion: the stratified draw and 15 free draws from the real quantiles."""
SMALL_TYPE_CANDIDATES = 48
"""Candidate places per lesion of a type under :data:`SMALL_TYPE_SHARE` of the real rows (version 24).
Such a type has 2-10 lesions in 40 patients, one of them may give 6 of its 20 rows, and its organs lie at
the body's edge (soft tissue, bone), so few places are near the real mean on all three axes at once: with
16 candidates, seeds 0-11 of version 24's anatomy ended a small type up to 0.073 from the real mean location
on 3 of them (0.060 on 1 with 48; planning 40 patients takes 10 s instead of 8)."""
SMALL_TYPE_SHARE = 0.1


HERD_TOLERANCE = 0.01
"""How far (normalized units, largest axis) a type's running mean location may be from the real mean
before the herd picks a candidate other than the first."""
TYPE_JITTER_ROWS = 1.5
"""Random slack (rows) added to each type's deficit before the largest is dealt."""


@dataclass
class RowHerd:
    """Keeps each type's share of the rows and its mean normalized location near the real ones, across a
    release: each lesion's type and place are chosen to correct what the rows so far got wrong.

    Attributes
    ----------
    sums
        Type -> (3,) weighted sum of the normalized locations chosen so far.
    weights
        Type -> rows so far (expected rows of lesions whose studies are not planned yet).
    """

    sums: dict[str, npt.NDArray[np.float64]]
    weights: dict[str, float]

    def next_type(self, weight: float, rng: np.random.Generator) -> str:
        """The type of a lesion that will give about ``weight`` rows: the one whose share of the rows so
        far (counting this lesion) falls furthest below its real share, give or take
        :data:`TYPE_JITTER_ROWS`."""
        types = real_stats()["types"]
        names = [n for n in REGIONS if n in types]
        total = sum(self.weights.values()) + weight
        deficit = [
            types[n]["share"] * total - self.weights.get(n, 0.0) + float(rng.uniform(0.0, TYPE_JITTER_ROWS))
            for n in names
        ]
        return names[int(np.argmax(deficit))]

    def choose(self, kind: str, locations: Sequence[tuple[float, float, float]], weight: float) -> int:
        """The index of the first candidate that keeps ``kind``'s running mean within
        :data:`HERD_TOLERANCE` of the real mean (largest per-axis gap), else of the one that brings it
        nearest; records it with ``weight`` (the rows it is expected to give). Taking the first that
        will do, not the best, leaves the spread of the locations alone: the best would be the candidate
        nearest the mean, every time."""
        target = np.asarray(real_stats()["types"][kind]["location_mean"], dtype=np.float64)
        total = self.sums.get(kind, np.zeros(3))
        done = self.weights.get(kind, 0.0)
        means = [(total + weight * np.asarray(x)) / (done + weight) for x in locations]
        gaps = np.array([float(np.abs(mean - target).max()) for mean in means])
        good = np.flatnonzero(gaps <= HERD_TOLERANCE)
        chosen = int(good[0]) if len(good) else int(np.argmin(gaps))
        self.add(kind, locations[chosen], weight)
        return chosen

    def add(self, kind: str, location: tuple[float, float, float], weight: float) -> None:
        """Count ``location`` ``weight`` more times for ``kind`` (negative: fewer): how the release
        corrects the expected rows of :meth:`choose` once it knows the rows a lesion really gave."""
        self.sums[kind] = self.sums.get(kind, np.zeros(3)) + weight * np.asarray(location)
        self.weights[kind] = self.weights.get(kind, 0.0) + weight


def _clear(x: float, y: float, z: float, radius_mm: float, avoid: list[Lesion3D]) -> bool:
    return all(math.dist((x, y, z), other.center) > radius_mm + other.reach_mm + 3.0 for other in avoid)


# type -> [(look, probability)]
LOOKS: dict[str, list[tuple[str, float]]] = {
    "lung": [("solid", 0.72), ("part-solid", 0.2), ("cavitary", 0.08)],
    "liver": [("hypodense", 0.6), ("rim", 0.25), ("cyst", 0.15)],
    "kidney": [("cyst", 0.55), ("solid", 0.45)],
    "mediastinum": [("node", 0.85), ("necrotic", 0.15)],
    "abdomen": [("node", 0.55), ("necrotic", 0.25), ("hypodense", 0.2)],
    "pelvis": [("node", 0.45), ("necrotic", 0.35), ("cyst", 0.2)],
    "soft_tissue": [("node", 0.45), ("solid", 0.35), ("necrotic", 0.2)],
    "bone": [("lytic", 0.6), ("sclerotic", 0.4)],
}


def _phases(values: tuple[float, float, float], jitter: float) -> tuple[float, float, float]:
    return (values[0] + jitter, values[1] + jitter, values[2] + jitter)


def appearance(kind: str, rng: np.random.Generator) -> dict[str, Any]:
    """Look, HU per contrast phase, rim/core and texture of a new lesion of ``kind``."""
    looks = LOOKS[kind]
    look = looks[int(rng.choice(len(looks), p=[p for _, p in looks]))][0]
    j = float(rng.uniform(-10.0, 10.0))
    liver = TISSUE_HU[Tissue.LIVER]
    out: dict[str, Any] = {"look": look, "rim_hu": None, "core_hu": None, "texture": 8.0}
    if look == "solid":
        out["hu"] = _phases((35.0, 85.0, 80.0) if kind != "lung" else (32.0, 60.0, 62.0), j)
        out["texture"] = 10.0
    elif look == "part-solid":
        out.update(
            hu=_phases((-560.0, -550.0, -550.0), 4 * j),
            core_hu=_phases((30.0, 50.0, 55.0), j),
            core_fraction=float(rng.uniform(0.3, 0.55)),
            texture=30.0,
        )
    elif look == "cavitary":
        out.update(
            hu=_phases((35.0, 60.0, 62.0), j),
            core_hu=(-950.0, -950.0, -950.0),
            core_fraction=float(rng.uniform(0.25, 0.45)),
        )
    elif look == "hypodense":
        drop = float(rng.uniform(35.0, 70.0))
        out.update(hu=(liver[0] - 0.5 * drop, liver[1] - 0.8 * drop, liver[2] - drop), texture=9.0)
    elif look == "rim":
        drop = float(rng.uniform(45.0, 75.0))
        out.update(
            hu=(liver[0] - 0.5 * drop, liver[1] - drop, liver[2] - drop),
            rim_hu=(liver[0] - 10.0, liver[1] + 40.0, liver[2] + 25.0),
            rim_width=float(rng.uniform(0.12, 0.22)),
        )
    elif look == "cyst":
        out.update(hu=_phases((8.0, 9.0, 10.0), 0.4 * j), texture=3.0)
    elif look == "node":
        out.update(hu=_phases((40.0, 70.0, 78.0), j), texture=6.0)
    elif look == "necrotic":
        out.update(
            hu=_phases((42.0, 80.0, 85.0), j),
            core_hu=_phases((20.0, 22.0, 25.0), 0.5 * j),
            core_fraction=float(rng.uniform(0.35, 0.6)),
            texture=12.0,
        )
    elif look == "lytic":
        out.update(hu=_phases((45.0, 65.0, 70.0), j), texture=10.0)
    else:  # sclerotic
        out.update(hu=_phases((850.0, 850.0, 850.0), 10 * j), texture=60.0)
    return out


P_SPICULATED = 0.4
"""Share of solid and part-solid lung lesions with spicules."""
P_CALCIFIED_NODE = 0.1
"""Share of lymph nodes with a calcified core."""
P_CALCIFIED_GRANULOMA = 0.06
"""Share of solid lung nodules with a calcified core (granulomas)."""
CALCIFIED_HU = (480.0, 480.0, 480.0)


def details(kind: str, look: dict[str, Any], radius_mm: float, rng: np.random.Generator) -> dict[str, Any]:
    """Spicules and calcification for a lesion of ``kind`` with appearance ``look`` (see
    :func:`appearance`) and in-plane semi-axis ``radius_mm``: the fields of
    :class:`~deeplesion.synth.phantom.Lesion3D` to change."""
    out: dict[str, Any] = {}
    if kind == "lung" and look["look"] in ("solid", "part-solid") and rng.random() < P_SPICULATED:
        count = int(rng.integers(6, 15))
        directions = rng.standard_normal((count, 3))
        directions[:, 2] *= 0.5  # mostly in the axial plane, where they show
        directions /= np.linalg.norm(directions, axis=1, keepdims=True)
        lengths = np.minimum(rng.uniform(0.4, 1.0, count) * radius_mm, 14.0) + 2.0
        out["spicules"] = tuple(
            tuple(float(v) for v in (*d, n)) for d, n in zip(directions, lengths, strict=True)
        )
    calcified = (
        P_CALCIFIED_NODE
        if look["look"] == "node"
        else P_CALCIFIED_GRANULOMA
        if kind == "lung" and look["look"] == "solid"
        else 0.0
    )
    if rng.random() < calcified:
        out.update(core_hu=CALCIFIED_HU, core_fraction=float(rng.uniform(0.2, 0.4)))
    return out


def make_lesion(
    body: Body,
    kind: str,
    long_mm: float,
    rng: np.random.Generator,
    u: tuple[float, float, float],
    avoid: list[Lesion3D],
    *,
    z_hint: float | None = None,
    herd: RowHerd | None = None,
    weight: float = 1.0,
    pick: int | None = None,
    options: list[tuple[float, float, float]] | None = None,
) -> Lesion3D | None:
    """A lesion of ``kind`` whose key-slice long diameter is about ``long_mm``, placed in its organ
    (:func:`place`; ``z_hint`` puts it at that height when it fits there). With ``herd``, the place is
    chosen among :data:`LOCATION_CANDIDATES` draws by :meth:`RowHerd.choose` (``weight``: the rows the
    lesion is expected to give). ``pick`` takes the candidate of that index instead (when there is one;
    the herd records it); ``options``, when given, receives the normalized locations of the candidates in
    order. Neither changes a random draw."""
    stats = real_stats()
    # the key slice passes up to half a slice interval from the centre, where the section is smaller:
    # measured on 4 seeds x 40 patients, the rows' median long diameter came out 5% under the target
    long_mm = max(long_mm * KEY_SLICE_COMPENSATION, MIN_LONG_MM)
    # the ratio's quantiles are tabulated at the same 21 levels as the locations'
    ratio = quantile(
        stats["location_levels_percent"], stats["short_over_long_quantiles"], float(rng.random())
    )
    ratio = max(ratio, 0.35)
    lumpy = 0.12 if kind == "lung" else 0.07
    bumps = tuple(
        (
            *_unit(rng),
            float(rng.uniform(2.0, 5.5)),
            float(rng.uniform(0.0, 2 * math.pi)),
            float(rng.uniform(0.2, 1.0)) * lumpy,
        )
        for _ in range(int(rng.integers(2, 5)))
    )
    a, b = long_mm / 2.0, ratio * long_mm / 2.0
    c = max(0.5 * (a + b) * float(rng.uniform(0.75, 1.2)), 1.5)
    draft = Lesion3D((0.0, 0.0, 0.0), (a, b, c), float(rng.uniform(0.0, math.pi)), kind, bumps=bumps)
    scale = long_mm / feret_at_centre(draft)
    a, b, c = a * scale, b * scale, c * scale
    reach = draft.reach_mm * scale
    draws = [u]
    if herd is not None:
        small = stats["types"][kind]["share"] < SMALL_TYPE_SHARE
        for _ in range((SMALL_TYPE_CANDIDATES if small else LOCATION_CANDIDATES) - 1):
            x, y, z = (float(v) for v in rng.uniform(0.02, 0.98, 3))
            draws.append((x, y, z))
    found = (place(body, kind, rng, d, avoid, max(a, b), z_hint, reach) for d in draws)
    centres = [c for c in found if c is not None]
    if not centres:
        return None
    centre = centres[0]
    if herd is not None or options is not None:
        normalized = [normalized_location(body, *c) for c in centres]
        if options is not None:
            options.extend(normalized)
        if pick is not None and pick < len(centres):
            centre = centres[pick]
            if herd is not None:
                herd.add(kind, normalized[pick], weight)
        elif herd is not None:
            centre = centres[herd.choose(kind, normalized, weight)]
    look = appearance(kind, rng)
    # spicules and calcifications came after the statistics were fitted: a child generator draws them
    # (spawning does not advance `rng`, so the plan and its measured numbers stay as they were)
    look.update(details(kind, look, max(a, b), rng.spawn(1)[0]))
    return Lesion3D(centre, (a, b, c), draft.angle, kind, bumps=bumps, **look)


def _unit(rng: np.random.Generator) -> tuple[float, float, float]:
    v = rng.standard_normal(3)
    v /= max(float(np.linalg.norm(v)), 1e-9)
    return float(v[0]), float(v[1]), float(v[2])


def feret_at_centre(lesion: Lesion3D) -> float:
    """The largest in-plane extent (mm) of the lesion's central section: the long axis RECIST would
    measure on a slice through its centre."""
    phi = np.linspace(0.0, 2.0 * math.pi, 360, endpoint=False)
    nu, nv = np.cos(phi), np.sin(phi)
    surface = lesion.surface(nu, nv, 0.0)
    a, b = lesion.semi_axes[0], lesion.semi_axes[1]
    points = np.column_stack([a * surface * nu, b * surface * nv])
    return float(np.linalg.norm(points[:, None, :] - points[None, :, :], axis=2).max())


def type_height_range(kind: str) -> tuple[float, float]:
    """The 5th and 95th percentiles of the real normalized height of type ``kind``."""
    stats = real_stats()
    heights = stats["types"][kind]["location_quantiles"][2]
    levels = stats["location_levels_percent"]
    return quantile(levels, heights, 0.05), quantile(levels, heights, 0.95)


def draw_long_mm(kind: str, u: float) -> float:
    """The long diameter (mm) of type ``kind`` at probability ``u`` of its real distribution."""
    stats = real_stats()
    return quantile(stats["diameter_levels_percent"], stats["types"][kind]["long_mm_quantiles"], u)


def ks_statistic(sample: npt.ArrayLike, levels_percent: list[float], quantiles: list[float]) -> float:
    """Kolmogorov-Smirnov distance between a sample and a distribution given by its quantile table.

    The tabulated CDF is piecewise linear between the quantiles; the statistic is the largest gap between
    it and the sample's empirical CDF (checked on both sides of every sample point).
    """
    values = np.sort(np.asarray(sample, dtype=np.float64))
    n = len(values)
    if n == 0:
        raise ValueError("empty sample")
    cdf = np.interp(values, quantiles, np.asarray(levels_percent) / 100.0)
    above = np.arange(1, n + 1) / n - cdf
    below = cdf - np.arange(0, n) / n
    return float(max(above.max(), below.max()))


def compare_to_real(kinds: Sequence[str], long_mm: npt.ArrayLike, locations: npt.ArrayLike) -> dict[str, Any]:
    """How a set of annotated rows compares with the real val+test rows.

    Parameters
    ----------
    kinds
        (N,) lesion type names.
    long_mm
        (N,) long diameters, mm.
    locations
        (N, 3) normalized locations.

    Returns
    -------
    dict
        ``share_points``: type -> (synthetic - real) share, percentage points; ``ks_long``: the KS statistic
        of the long diameters against the real ones; ``location_error``: type -> largest per-axis
        difference of the mean normalized location; ``rows``: N.
    """
    stats = real_stats()
    kinds = list(kinds)
    long_array = np.asarray(long_mm, dtype=np.float64)
    where = np.asarray(locations, dtype=np.float64).reshape(-1, 3)
    shares, errors = {}, {}
    for name, entry in stats["types"].items():
        chosen = np.array([k == name for k in kinds])
        shares[name] = round(100.0 * (float(chosen.mean()) - entry["share"]), 2)
        if chosen.any():
            errors[name] = round(
                float(np.abs(where[chosen].mean(0) - np.array(entry["location_mean"])).max()), 4
            )
    return {
        "rows": len(kinds),
        "share_points": shares,
        "ks_long": round(
            ks_statistic(long_array, stats["diameter_levels_percent"], stats["long_mm_quantiles"]), 4
        ),
        "location_error": errors,
    }
