"""Chain the links between every two scans of a patient into tracks: one track per 3D lesion.

Every pair of a patient's scans is matched (:func:`~deeplesion.tracking.matching.match_scans`); the links
are then merged greedily from the cheapest up, and a link is skipped when it would put two rows of one scan
into one track (one lesion has one row per scan at most). A lesion that is only bookmarked in one scan is
a track of one row. Studies are ordered by ``Study_index``: the release has no dates.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from deeplesion.catalog import Catalog, LesionType
from deeplesion.errors import UsageError
from deeplesion.findings import Finding, make_finding
from deeplesion.tracking.matching import FITTED, LesionFeatures, Link, TrackingParameters, match_scans


@dataclass(frozen=True, slots=True)
class Measurement:
    """A track's lesion in one study: the row measured there and its RECIST diameters (mm)."""

    study: int
    row: int
    long_mm: float
    short_mm: float


@dataclass(frozen=True, slots=True)
class Track:
    """One lesion followed across a patient's studies.

    Attributes
    ----------
    id
        ``PPPPPP-KK``: the patient and the track's number in order of first appearance (01, 02, ...).
    patient
        ``Patient_index``.
    rows
        Catalog positions of every row of the lesion, ordered by study and series (a lesion bookmarked on
        two series of one study has two rows there).
    lesion_type
        The most frequent known ``Coarse_lesion_type`` of the rows, -1 when none is known.
    measurements
        One per study, in study order: the row of the study's first series that holds the lesion.
    """

    id: str
    patient: int
    rows: tuple[int, ...]
    lesion_type: int
    measurements: tuple[Measurement, ...]

    def changes(self, axis: str = "long") -> list[dict[str, float | None]]:
        """Per measurement: the diameter (mm) and its change from the baseline and from the nadir (%).

        The baseline is the track's first measurement; the nadir is the smallest diameter before the
        measurement (baseline included). Changes are None for the baseline and when the reference is 0.
        """
        values = [m.long_mm if axis == "long" else m.short_mm for m in self.measurements]
        out: list[dict[str, float | None]] = []
        for k, value in enumerate(values):
            baseline = values[0]
            nadir = min(values[:k]) if k else None
            out.append(
                {
                    "diameter_mm": value,
                    "change_from_baseline_pct": _percent(value, baseline) if k else None,
                    "change_from_nadir_pct": _percent(value, nadir) if nadir is not None else None,
                }
            )
        return out


def _percent(value: float, reference: float | None) -> float | None:
    if reference is None or reference <= 0:
        return None
    return round(100.0 * (value - reference) / reference, 2)


@dataclass
class TrackingResult:
    """Links and tracks of the selected patients of a catalog (:func:`track_lesions`)."""

    catalog: Catalog
    features: LesionFeatures
    parameters: TrackingParameters
    patients: list[int]
    links: list[Link]
    tracks: list[Track]
    track_of_row: npt.NDArray[np.int64]
    """(N,) index into ``tracks`` for every catalog row; -1 for rows of patients not selected."""
    findings: list[Finding] = field(default_factory=list)

    def links_from(self, row: int) -> list[Link]:
        """Every link that has ``row`` at one end (as stored: ``source`` is the earlier scan)."""
        if self._by_row is None:
            index: dict[int, list[Link]] = {}
            for link in self.links:
                index.setdefault(link.source, []).append(link)
                index.setdefault(link.target, []).append(link)
            self._by_row = index
        return self._by_row.get(row, [])

    _by_row: dict[int, list[Link]] | None = field(default=None, init=False, repr=False, compare=False)
    _by_patient: dict[int, list[Track]] | None = field(default=None, init=False, repr=False, compare=False)

    def tracks_of(self, patient: int) -> list[Track]:
        """The tracks of one patient, in order of first appearance."""
        if self._by_patient is None:
            index: dict[int, list[Track]] = {}
            for track in self.tracks:
                index.setdefault(track.patient, []).append(track)
            self._by_patient = index
        return self._by_patient.get(patient, [])

    _by_study: dict[tuple[int, int], list[int]] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    def rows_of_study(self, row: int) -> list[int]:
        """Every catalog row of the study that ``row`` belongs to (its patient and study), in order."""
        c = self.catalog
        if self._by_study is None:
            index: dict[tuple[int, int], list[int]] = {}
            for i, key in enumerate(zip(c.patient.tolist(), c.study.tolist(), strict=True)):
                index.setdefault(key, []).append(i)
            self._by_study = index
        return self._by_study[(int(c.patient[row]), int(c.study[row]))]


def _build_tracks(
    patient: int,
    scans: dict[tuple[int, int, int], npt.NDArray[np.int64]],
    links: list[Link],
    features: LesionFeatures,
    height_gap: float,
) -> list[Track]:
    rows = [int(r) for key in sorted(scans) for r in scans[key]]
    scan_of = {int(r): key for key, members in scans.items() for r in members}
    parent = {r: r for r in rows}
    members_scans = {r: {scan_of[r]} for r in rows}

    def root(r: int) -> int:
        while parent[r] != r:
            parent[r] = parent[parent[r]]
            r = parent[r]
        return r

    for link in sorted(links, key=lambda k: (-k.confidence, k.cost, k.source, k.target)):
        gap = abs(features.location[link.source, 2] - features.location[link.target, 2])
        if height_gap and gap > height_gap:
            continue  # TrackingParameters.track_height_gap: too far apart to be one lesion
        a, b = root(link.source), root(link.target)
        if a == b or members_scans[a] & members_scans[b]:
            continue
        parent[b] = a
        members_scans[a] |= members_scans.pop(b)
    groups: dict[int, list[int]] = {}
    for r in rows:  # rows are in (study, series, catalog) order, so groups are too
        groups.setdefault(root(r), []).append(r)
    tracks = []
    for number, members in enumerate(groups.values(), start=1):
        measurements: dict[int, Measurement] = {}
        for r in members:
            study = int(features.study[r])
            if study not in measurements:  # the first series of the study that holds the lesion
                measurements[study] = Measurement(
                    study, r, float(features.long_mm[r]), float(features.short_mm[r])
                )
        known = [int(features.lesion_type[r]) for r in members if features.lesion_type[r] > 0]
        lesion_type = max(set(known), key=known.count) if known else int(LesionType.UNKNOWN)
        tracks.append(
            Track(
                id=f"{patient:06d}-{number:02d}",
                patient=patient,
                rows=tuple(members),
                lesion_type=lesion_type,
                measurements=tuple(measurements[s] for s in sorted(measurements)),
            )
        )
    return tracks


def track_lesions(
    catalog: Catalog,
    *,
    patients: Sequence[int] | None = None,
    parameters: TrackingParameters = FITTED,
    progress: Any = None,
) -> TrackingResult:
    """Link every annotated lesion across each patient's scans and chain the links into tracks.

    Parameters
    ----------
    catalog
        The annotations (any ``DL_info.csv``-format file; a split file works).
    patients
        ``Patient_index`` values to track; None for all. An index absent from the catalog is a
        :class:`~deeplesion.errors.UsageError`.
    parameters
        The link cost's weights and rules (default: :data:`~deeplesion.tracking.matching.FITTED`).
    progress
        Optional callable ``progress(done, total)`` called after each patient.

    Returns
    -------
    TrackingResult
        Links, tracks, each row's track, and findings about the input.
    """
    features = LesionFeatures.from_catalog(catalog)
    present = sorted({int(p) for p in np.unique(features.patient)})
    if patients is None:
        selected = present
    else:
        missing = sorted({int(p) for p in patients} - set(present))
        if missing:
            raise UsageError(
                f"patient {', '.join(map(str, missing))} has no row in {catalog.source or 'the annotations'}"
                f" (its Patient_index values run from {present[0]} to {present[-1]})"
                if present
                else f"{catalog.source or 'the annotations'} has no rows"
            )
        selected = sorted({int(p) for p in patients})
    scans = features.scans()
    by_patient: dict[int, dict[tuple[int, int, int], npt.NDArray[np.int64]]] = {}
    for key, rows in scans.items():
        by_patient.setdefault(key[0], {})[key] = rows
    links: list[Link] = []
    tracks: list[Track] = []
    track_of_row = np.full(len(catalog), -1, dtype=np.int64)
    single_study = []
    for done, patient in enumerate(selected, start=1):
        patient_scans = by_patient[patient]
        keys = sorted(patient_scans)
        if len({k[1] for k in keys}) == 1:
            single_study.append(patient)
        patient_links = []
        for i, key_a in enumerate(keys):
            for key_b in keys[i + 1 :]:
                patient_links.extend(
                    match_scans(features, patient_scans[key_a], patient_scans[key_b], parameters)
                )
        for track in _build_tracks(
            patient, patient_scans, patient_links, features, parameters.track_height_gap
        ):
            track_of_row[list(track.rows)] = len(tracks)
            tracks.append(track)
        links.extend(patient_links)
        if progress is not None:
            progress(done, len(selected))
    return TrackingResult(
        catalog=catalog,
        features=features,
        parameters=parameters,
        patients=selected,
        links=links,
        tracks=tracks,
        track_of_row=track_of_row,
        findings=_input_findings(catalog, selected, single_study),
    )


def _input_findings(catalog: Catalog, selected: Iterable[int], single_study: list[int]) -> list[Finding]:
    source = catalog.source
    findings = []
    if single_study:
        shown = ", ".join(map(str, single_study[:10])) + (" ..." if len(single_study) > 10 else "")
        findings.append(
            make_finding(
                "tracking-one-study",
                f"{len(single_study)} patient(s) have a single study, so there is nothing to follow "
                f"(their lesions are tracks of one study, without a response): {shown}",
                file=source,
                column="Study_index",
                value=len(single_study),
            )
        )
    chosen = np.isin(catalog.patient, list(selected))
    untyped = int(np.count_nonzero(chosen & (catalog.lesion_type <= 0)))
    if untyped:
        findings.append(
            make_finding(
                "tracking-type-unknown",
                f"{untyped} row(s) have no lesion type (-1, as on every training row): links use "
                "position and size only, and the response cannot apply the 2-per-organ target limit",
                file=source,
                column="Coarse_lesion_type",
                value=untyped,
            )
        )
    return findings
