"""Link the annotated lesions of two scans of one patient: an assignment problem on what the rows hold.

A *scan* is one series of one study (``Patient_index, Study_index, Series_ID``): the unit that has one
coordinate frame. Two scans of a patient are compared whether they belong to two studies (follow-up) or
to one study (the same lesion bookmarked on two series, for example a 5 mm and a 1 mm reconstruction).

The cost of linking row ``a`` of scan A to row ``b`` of scan B is

    |loc_a + shift - loc_b|                         normalized body position (x, y, z in [0, 1]), after
                                                    a patient-level shift between the two scans
  + size_weight     * |log(1 + long_a) - log(1 + long_b)|        long diameters in mm
  + type_weight     * [both types known and different]
  + interval_weight * [slice intervals differ]
  + millimetre_weight * |mm_a + shift_mm - mm_b|    in-plane position from the image centre and slice
                                                    position (key slice x interval), mm, after a shift
                                                    (only when 2+ pairs are plausible without it)

The shifts are estimated from all lesions of the two scans (a few rounds of: assign, take the median
displacement of the assigned pairs; the normalized shift is clipped to ``max_shift`` so that one
mismatched pair cannot drag the frame). The assignment is solved with the Hungarian algorithm
(``scipy.optimize.linear_sum_assignment``); assigned pairs costing more than ``max_cost`` stay unlinked.

A link's confidence is the smaller of its row and column softmax probabilities over the alternatives,
with "no link" as one more alternative at ``max_cost``: ``exp(-cost / temperature)`` normalized.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import numpy.typing as npt
from scipy.optimize import linear_sum_assignment

from deeplesion.catalog import Catalog


@dataclass(frozen=True, slots=True)
class TrackingParameters:
    """The weights of the link cost and the link rules (see the module docstring for the formula).

    The defaults (:data:`FITTED`) were fitted on the Deep Lesion Tracker pairs ``valid.json`` by
    ``benchmarks/fit_tracking.py``, which also reports their patient-grouped cross-validated accuracy.
    """

    size_weight: float = 0.05
    """Cost per unit of ``|log(1 + long_a / mm) - log(1 + long_b / mm)|``."""
    type_weight: float = 0.0
    """Cost when both rows carry a lesion type and the types differ (fitted to 0 once ``short_weight``
    was added on 2026-12-07; 0.02 before)."""
    interval_weight: float = 0.0
    """Cost when the two rows' slice intervals differ (a 5 mm and a 1 mm series). Fitted to 0 once
    ``twin_rule`` names twins (it was 0.01 before: a proxy for choosing between twins)."""
    millimetre_weight: float = 1 / 300
    """Cost per mm of the residual distance in scanner millimetres after the mm shift."""
    millimetre_disagreement: float = 0.0
    """When two scans' assigned pairs are two whose scanner-millimetre offsets differ by more than this
    (mm), the offset is the cheaper pair's, not their mean (:func:`_offsets_to_trust`); 0: always the
    median. Added for the synthetic release of version 22, where a lesion bookmarked in one study only
    pulled its neighbour's link 75 mm off; fitted on ``valid.json`` like the weights (0, 25, 50, 100 or
    150 mm): two of five cross-validation folds chose 100 or 150 mm, the fit on all pairs 0 (with
    ``short_weight``; without it, 100 mm and ``max_cost`` 0.35)."""
    short_weight: float = 0.05
    """Cost per unit of ``|log(1 + short_a / mm) - log(1 + short_b / mm)|`` (added 2026-12-07: every
    cross-validation fold chose 0.02-0.1, and the cross-validated accuracy rose from 93.8% to 94.5%)."""
    max_shift: float = 0.0
    """Largest patient-level shift of the normalized position between two scans, per axis (0: none)."""
    max_cost: float = 0.25
    """Assigned pairs costing more stay unlinked (the lesion is absent from, or not bookmarked in, B)."""
    temperature: float = 0.04
    """Softness of the confidence; cost units."""
    alignment_rounds: int = 3
    """Assign-then-shift rounds of the alignment."""
    path_weight: float = 0.05
    """How much a pair's answer (:func:`~deeplesion.tracking.pairs.pair_answers`) trusts the source's
    links through a third study: each candidate row of the target study scores the weight of its link to
    the source plus ``path_weight`` times the sum, over the rows of the patient's other studies, of the
    products of the weights of their links to the source and to the candidate (a weight is
    ``exp(-cost / PATH_COST_SCALE)``). 0: the most confident direct link. It changes no link or track."""
    track_height_gap: float = 0.08
    """A link whose two rows' normalized heights differ by more than this does not join their tracks
    (it stays a link, with its confidence, and pair answers still use it). Not fitted: the largest
    difference among the 906 pairs of ``valid.json`` is 0.058 (99.5th percentile 0.051). Added on
    2026-12-03: where a lesion is not bookmarked in the next study, the assignment may link it to the only
    other lesion there, 0.10-0.16 away in height (synthetic identities, confidence 0.8), and a track
    chaining them would report one lesion's diameter as the other's. 0: no limit."""
    twin_rule: int = 1
    """Which of two *twin* rows a pair's answer names: the same lesion bookmarked on two series of the
    target study (within 0.02 in normalized position and 20% in long diameter). 1: the series next to the
    source in volume order (from an earlier study the lowest series number, from a later one the
    highest), as the Deep Lesion Tracker's pairs join consecutive volumes of a lesion; -1: the other way;
    0: the better link. It changes no link or track, only which row ``pair_answers`` names."""

    def to_dict(self) -> dict[str, float | int]:
        """The parameters as a JSON-ready dict."""
        return asdict(self)


FITTED = TrackingParameters()
"""The parameters the toolkit uses by default: fitted on all 906 pairs of the Deep Lesion Tracker's
``valid.json`` by ``benchmarks/fit_tracking.py`` (its cross-validated accuracy: ``docs/tracking.md``).
The fit set the normalized-position shift to 0 (no gain: the location is already relative to the body);
the millimetre term keeps its own shift, estimated from all lesions of the two scans. It chose
``twin_rule`` 1 and, with it, no cost for differing slice intervals, and ``path_weight`` 0.05 (evidence
through third studies; 2026-12-03); on 2026-12-07 ``short_weight`` 0.05 and, with it, ``type_weight`` 0
and ``millimetre_disagreement`` 0 (off)."""

PATH_COST_SCALE = 0.04
"""Cost units per e-fold of a link's weight in the path evidence (:attr:`TrackingParameters.path_weight`):
the confidence's temperature as fitted when the path evidence was introduced, held fixed so that fitting
the temperature afterwards changes no answer."""

FITTED_ON_SHA256 = "e57b63906118c719794c6b35de8513fe6659159880c020f34572a9c410da76d9"
"""SHA-256 of the pairs file :data:`FITTED` was fitted on; scoring that file again is in-sample."""


@dataclass(frozen=True, slots=True)
class LesionFeatures:
    """What the link cost reads of each row, as arrays of length N (catalog order).

    Attributes
    ----------
    patient, study, series
        (N,) int64 identifiers.
    location
        (N, 3) float64 normalized body position (x, y, z), unitless.
    long_mm, short_mm
        (N,) float64 RECIST diameters, mm.
    lesion_type
        (N,) int64 ``Coarse_lesion_type`` codes, -1 when unknown.
    interval_mm
        (N,) float64 slice interval, mm.
    position_mm
        (N, 3) float64: the RECIST centre from the image centre (x, y) and key slice x interval (z), mm.
    """

    patient: npt.NDArray[np.int64]
    study: npt.NDArray[np.int64]
    series: npt.NDArray[np.int64]
    location: npt.NDArray[np.float64]
    long_mm: npt.NDArray[np.float64]
    short_mm: npt.NDArray[np.float64]
    lesion_type: npt.NDArray[np.int64]
    interval_mm: npt.NDArray[np.float64]
    position_mm: npt.NDArray[np.float64]

    @classmethod
    def from_catalog(cls, catalog: Catalog) -> LesionFeatures:
        """Read the features off a catalog (no copy of the row order)."""
        spacing = catalog.spacing
        centre = catalog.recist.mean(axis=1)
        in_plane = (centre - catalog.image_size / 2.0) * spacing[:, :2]
        along = catalog.key_slice * spacing[:, 2]
        return cls(
            patient=catalog.patient,
            study=catalog.study,
            series=catalog.series,
            location=np.asarray(catalog.location, dtype=np.float64),
            long_mm=catalog.long_diameter_mm,
            short_mm=catalog.short_diameter_mm,
            lesion_type=catalog.lesion_type,
            interval_mm=spacing[:, 2],
            position_mm=np.column_stack([in_plane, along]),
        )

    def scans(self) -> dict[tuple[int, int, int], npt.NDArray[np.int64]]:
        """(patient, study, series) -> the rows of that scan, in catalog order; keys sorted."""
        keys = np.column_stack([self.patient, self.study, self.series])
        order = np.lexsort((np.arange(len(keys)), keys[:, 2], keys[:, 1], keys[:, 0]))
        sorted_keys = keys[order]
        starts = np.flatnonzero(np.r_[True, np.any(sorted_keys[1:] != sorted_keys[:-1], axis=1)])
        ends = np.r_[starts[1:], len(order)]
        return {
            (int(sorted_keys[s, 0]), int(sorted_keys[s, 1]), int(sorted_keys[s, 2])): order[s:e]
            for s, e in zip(starts, ends, strict=True)
        }


@dataclass(frozen=True, slots=True)
class Link:
    """One lesion found again: row ``source`` (the earlier scan) is row ``target`` (the later scan).

    ``cost`` is the link cost (unitless, see the module docstring), ``confidence`` in (0, 1].
    """

    source: int
    target: int
    cost: float
    confidence: float

    def other(self, row: int) -> int:
        """The row at the other end of the link from ``row`` (one of its two ends)."""
        return self.target if self.source == row else self.source


def _distances(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    distances: npt.NDArray[np.float64] = np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(axis=2))
    return distances


def _aligned_shift(
    a: npt.NDArray[np.float64], b: npt.NDArray[np.float64], rounds: int, limit: float | None
) -> npt.NDArray[np.float64]:
    """The median displacement b - a of the assigned pairs, re-assigned ``rounds`` times."""
    shift = np.zeros(a.shape[1])
    if len(a) < 2 or len(b) < 2 or limit == 0:
        return shift
    for _ in range(rounds):
        rows, cols = linear_sum_assignment(_distances(a + shift, b))
        shift = np.median(b[cols] - a[rows], axis=0)
        if limit is not None:
            shift = np.clip(shift, -limit, limit)
    return shift


def _offsets_to_trust(
    offsets: npt.NDArray[np.float64], costs: npt.NDArray[np.float64], tolerance: float
) -> npt.NDArray[np.bool_]:
    """(n,) which of the (n, d) ``offsets`` (mm) of the assigned pairs to take the median of: all, unless
    there are exactly two and they differ by more than ``tolerance`` (mm; 0: never), then the cheaper
    pair's (``costs``).

    Two scans with two lesions each, one of them bookmarked in one scan only, give two assigned pairs
    whose offsets can differ by 150 mm: their median is their mean, wrong for both, and both links then
    cost too much (synthetic release of version 22: one lesion left unlinked in 7 pairs). With three or
    more pairs the median already ignores one stray offset."""
    agree = np.ones(len(offsets), dtype=bool)
    if tolerance > 0.0 and len(offsets) == 2 and np.linalg.norm(offsets[0] - offsets[1]) > tolerance:
        agree[int(np.argmax(costs))] = False
    return agree


def link_cost(
    features: LesionFeatures,
    rows_a: npt.NDArray[np.int64],
    rows_b: npt.NDArray[np.int64],
    parameters: TrackingParameters = FITTED,
) -> npt.NDArray[np.float64]:
    """The cost of linking each row of scan A to each row of scan B.

    Parameters
    ----------
    features
        The catalog's features (:meth:`LesionFeatures.from_catalog`).
    rows_a, rows_b
        (na,) and (nb,) int64 catalog positions of the two scans' rows (one patient).
    parameters
        The weights.

    Returns
    -------
    numpy.ndarray
        (na, nb) float64 costs, unitless.
    """
    p = parameters
    loc_a, loc_b = features.location[rows_a], features.location[rows_b]
    shift = _aligned_shift(loc_a, loc_b, p.alignment_rounds, p.max_shift)
    cost = _distances(loc_a + shift, loc_b)
    for weight, diameter in ((p.size_weight, features.long_mm), (p.short_weight, features.short_mm)):
        if weight:
            log_a, log_b = np.log1p(diameter[rows_a]), np.log1p(diameter[rows_b])
            cost = cost + weight * np.abs(log_a[:, None] - log_b[None, :])
    if p.type_weight:
        type_a, type_b = features.lesion_type[rows_a][:, None], features.lesion_type[rows_b][None, :]
        cost = cost + p.type_weight * ((type_a != type_b) & (type_a > 0) & (type_b > 0))
    if p.interval_weight:
        interval_a, interval_b = features.interval_mm[rows_a], features.interval_mm[rows_b]
        cost = cost + p.interval_weight * (interval_a[:, None] != interval_b[None, :])
    if p.millimetre_weight and len(rows_a) > 1 and len(rows_b) > 1:
        # the mm frames differ by an unknown offset (table position, slice numbering): estimate it from
        # the pairs the cost so far assigns and would link; a lesion bookmarked in one scan only is
        # assigned to some other lesion, and such pairs must not drag the offset
        mm_a, mm_b = features.position_mm[rows_a], features.position_mm[rows_b]
        pairs_a, pairs_b = linear_sum_assignment(cost)
        assigned = cost[pairs_a, pairs_b]
        plausible = assigned <= p.max_cost
        if plausible.sum() >= 2:
            offsets = mm_b[pairs_b[plausible]] - mm_a[pairs_a[plausible]]
            agreeing = _offsets_to_trust(offsets, assigned[plausible], p.millimetre_disagreement)
            shift_mm = np.median(offsets[agreeing], axis=0)
            cost = cost + p.millimetre_weight * _distances(mm_a + shift_mm, mm_b)
    return cost


def _confidence(cost: npt.NDArray[np.float64], parameters: TrackingParameters) -> npt.NDArray[np.float64]:
    """(na, nb) smaller of the row and column softmax over the alternatives and "no link"."""
    t = parameters.temperature
    # shift by the smallest cost before exp so that no weight underflows to 0 for every alternative
    floor = min(float(cost.min()), parameters.max_cost)
    weight = np.exp(-(cost - floor) / t)
    none = np.exp(-(parameters.max_cost - floor) / t)
    by_row = weight / (weight.sum(axis=1, keepdims=True) + none)
    by_column = weight / (weight.sum(axis=0, keepdims=True) + none)
    return np.minimum(by_row, by_column)  # type: ignore[no-any-return]


def match_scans(
    features: LesionFeatures,
    rows_a: npt.NDArray[np.int64],
    rows_b: npt.NDArray[np.int64],
    parameters: TrackingParameters = FITTED,
) -> list[Link]:
    """Assign the rows of scan A to the rows of scan B, leaving unlikely pairs unlinked.

    Parameters
    ----------
    features
        The catalog's features.
    rows_a, rows_b
        (na,) and (nb,) int64 catalog positions; A is the earlier scan (links point from A to B).
    parameters
        The weights and rules.

    Returns
    -------
    list of Link
        At most ``min(na, nb)`` links, each row in at most one.
    """
    if len(rows_a) == 0 or len(rows_b) == 0:
        return []
    cost = link_cost(features, rows_a, rows_b, parameters)
    confidence = _confidence(cost, parameters)
    links = []
    for i, j in zip(*linear_sum_assignment(cost), strict=True):
        if cost[i, j] <= parameters.max_cost:
            links.append(Link(int(rows_a[i]), int(rows_b[j]), float(cost[i, j]), float(confidence[i, j])))
    return links
