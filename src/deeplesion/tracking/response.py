"""RECIST 1.1 response per follow-up study, from a patient's tracks: an approximation.

DeepLesion's rows are bookmarks a radiologist left while reading, not declared target lesions, so the
response here is what RECIST 1.1 would say *if* the bookmarked lesions were the targets. The rules:

- The baseline is the patient's first study (lowest ``Study_index``; the release has no dates) that
  bookmarks a measurable lesion; earlier studies get no response. (RECIST takes the first scan; with
  bookmarks, a first study holding only a small node would leave every follow-up without targets.)
- Measurable at baseline: a lymph node with a short axis >= 15 mm, any other lesion with a long axis
  >= 10 mm. DeepLesion has no lymph-node type; mediastinal lesions (type 3, mostly nodes) are taken as
  nodes and followed on the short axis, every other type on the long axis.
- Targets: the largest measurable lesions, at most 5, at most 2 per organ where the organ (the lesion
  type) is known; lesions without a type are not held to the organ limit.
- The sum: long axes of the non-nodal targets plus short axes of the nodal ones, mm.
- A follow-up study measures the targets that it bookmarks. When some targets have no row there (not
  bookmarked, or gone), the response compares the same subset of targets: its sum now, at baseline, and
  at the nadir; the study is marked ``complete: false``. A study that measures none of the targets is
  ``NE`` (not evaluable), unless a new lesion makes it ``PD``.
- PD: the sum is at least 20% and at least 5 mm above the nadir (the smallest sum so far, baseline
  included), or a new lesion appears (a track first seen in this study). PD is checked first.
- CR: every target measured, every non-nodal target gone (0 mm) and every nodal target < 10 mm short axis.
  A lesion that is gone has no row in DeepLesion, so CR is practically never reached from its rows.
- PR: the sum at least 30% below the baseline sum. SD: anything else.

Because a lesion first bookmarked in a later study may have been there before (a radiologist bookmarks
what matters to that reading), "new lesion" over-calls PD; the JSON names the new tracks so that a reader
can judge; ``sum_response`` is the verdict of the sums alone.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from deeplesion.catalog import LesionType
from deeplesion.tracking.tracks import Track

NODAL_TYPES = frozenset({int(LesionType.MEDIASTINUM)})
"""Lesion types followed as lymph nodes (short axis)."""
MEASURABLE_LONG_MM = 10.0
MEASURABLE_NODE_SHORT_MM = 15.0
NORMAL_NODE_SHORT_MM = 10.0
MAX_TARGETS = 5
MAX_TARGETS_PER_ORGAN = 2
PR_DECREASE = 0.30
PD_INCREASE = 0.20
PD_INCREASE_MM = 5.0


@dataclass(frozen=True, slots=True)
class TargetLesion:
    """A baseline target: its track, organ (lesion type name, None when unknown), axis and baseline size."""

    track: str
    organ: str | None
    nodal: bool
    axis: str
    baseline_mm: float


@dataclass(frozen=True, slots=True)
class StudyResponse:
    """The response of one follow-up study (sums in mm over ``measured``, changes in %)."""

    study: int
    response: str
    sum_response: str
    """The verdict of the target sums alone, without the new-lesion rule (NE when no target is measured)."""
    complete: bool
    measured: list[str]
    missing: list[str]
    new_lesions: list[str]
    sum_mm: float | None
    baseline_sum_mm: float | None
    nadir_sum_mm: float | None
    change_from_baseline_pct: float | None
    change_from_nadir_pct: float | None
    reason: str


@dataclass
class PatientResponse:
    """A patient's baseline targets and the response of each follow-up study."""

    patient: int
    baseline_study: int
    targets: list[TargetLesion]
    follow_ups: list[StudyResponse] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


def _axis_value(track: Track, study: int, nodal: bool) -> float | None:
    for m in track.measurements:
        if m.study == study:
            return m.short_mm if nodal else m.long_mm
    return None


def _pct(value: float, reference: float) -> float | None:
    return round(100.0 * (value - reference) / reference, 2) if reference > 0 else None


def select_targets(tracks: list[Track], baseline_study: int) -> list[TargetLesion]:
    """The baseline targets: the largest measurable lesions, at most 5 and 2 per known organ."""
    candidates = []
    for track in tracks:
        nodal = track.lesion_type in NODAL_TYPES
        value = _axis_value(track, baseline_study, nodal)
        if value is None:
            continue
        if value >= (MEASURABLE_NODE_SHORT_MM if nodal else MEASURABLE_LONG_MM):
            candidates.append((value, track, nodal))
    candidates.sort(key=lambda c: (-c[0], c[1].id))
    per_organ: Counter[int] = Counter()
    targets = []
    for value, track, nodal in candidates:
        known = track.lesion_type > 0
        if known and per_organ[track.lesion_type] >= MAX_TARGETS_PER_ORGAN:
            continue
        per_organ[track.lesion_type] += known
        organ = LesionType(track.lesion_type).label if known else None
        targets.append(TargetLesion(track.id, organ, nodal, "short" if nodal else "long", round(value, 2)))
        if len(targets) == MAX_TARGETS:
            break
    return targets


def recist_response(tracks: list[Track]) -> PatientResponse | None:
    """The RECIST 1.1 response of each follow-up study of one patient (rules: module docstring).

    Parameters
    ----------
    tracks
        All tracks of one patient (:meth:`TrackingResult.tracks_of`).

    Returns
    -------
    PatientResponse or None
        None when there are no tracks.
    """
    if not tracks:
        return None
    studies = sorted({m.study for t in tracks for m in t.measurements})
    baseline, targets = studies[0], []
    for study in studies:
        targets = select_targets(tracks, study)
        if targets:
            baseline = study
            break
    studies = [s for s in studies if s >= baseline]
    by_id = {t.id: t for t in tracks}
    first_seen = {t.id: t.measurements[0].study for t in tracks}
    # a lesion first bookmarked before the baseline is not new afterwards
    result = PatientResponse(patient=tracks[0].patient, baseline_study=baseline, targets=targets)
    for k, study in enumerate(studies[1:], start=1):
        values = {}
        for target in targets:
            value = _axis_value(by_id[target.track], study, target.nodal)
            if value is not None:
                values[target.track] = value
        measured = [t.track for t in targets if t.track in values]
        missing = [t.track for t in targets if t.track not in values]
        new = sorted(track_id for track_id, first in first_seen.items() if first == study)
        if not measured:
            why = "no baseline target is measurable" if not targets else "no target is bookmarked here"
            result.follow_ups.append(
                StudyResponse(
                    study,
                    "PD" if new else "NE",
                    "NE",
                    False,
                    [],
                    missing,
                    new,
                    None,
                    None,
                    None,
                    None,
                    None,
                    f"{why}; new lesion(s) {', '.join(new)}" if new else why,
                )
            )
            continue
        target_of = {t.track: t for t in targets}
        current = sum(values.values())
        baseline_sum = sum(target_of[t].baseline_mm for t in measured)
        earlier = [baseline_sum]
        for previous in studies[1:k]:
            sizes = [_axis_value(by_id[t], previous, target_of[t].nodal) for t in measured]
            if all(s is not None for s in sizes):
                earlier.append(sum(s for s in sizes if s is not None))
        nadir = min(earlier)
        complete = not missing
        # the verdict of the sums alone first; a new lesion then overrides it with PD
        if current >= nadir * (1 + PD_INCREASE) and current - nadir >= PD_INCREASE_MM:
            by_sums, reason = (
                "PD",
                f"sum {current:.1f} mm is >= 20% and >= 5 mm above the nadir {nadir:.1f} mm",
            )
        elif complete and all(
            (values[t.track] < NORMAL_NODE_SHORT_MM) if t.nodal else values[t.track] == 0 for t in targets
        ):
            by_sums, reason = "CR", "all targets gone, nodes below 10 mm short axis"
        elif current <= baseline_sum * (1 - PR_DECREASE):
            by_sums, reason = "PR", f"sum {current:.1f} mm is >= 30% below the baseline {baseline_sum:.1f} mm"
        else:
            by_sums, reason = "SD", "neither 30% below the baseline nor 20% (and 5 mm) above the nadir"
        response = "PD" if new else by_sums
        if new:
            reason = f"new lesion(s): {', '.join(new)} (by the sums alone: {by_sums}, {reason})"
        if missing:
            absent = ", ".join(missing)
            reason += f"; over {len(measured)} of {len(targets)} targets (not bookmarked here: {absent})"
        result.follow_ups.append(
            StudyResponse(
                study,
                response,
                by_sums,
                complete,
                measured,
                missing,
                new,
                round(current, 2),
                round(baseline_sum, 2),
                round(nadir, 2),
                _pct(current, baseline_sum),
                _pct(current, nadir),
                reason,
            )
        )
    return result
